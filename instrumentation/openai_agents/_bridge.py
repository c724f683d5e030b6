"""The OpenAI Agents SDK's tracing processor that turns its spans into OpenTelemetry spans.

The SDK calls a registered processor synchronously where its span starts and ends, in the task
that runs it; agent and function spans are made current there, so the model calls inside them
(traced by the openai instrumentor, the priced spans) become their children.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from agents.exceptions import InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered
from agents.tracing import Span as AgentsSpan
from agents.tracing import Trace as AgentsTrace
from agents.tracing import TracingProcessor
from genai_otel.instrumentation._agentic import (
    OTHER_ERROR,
    AgentTelemetry,
    Operation,
    start_agent,
    start_tool,
)
from opentelemetry import trace

from genai_otel import semconv

logger = logging.getLogger(__name__)

# The SDK's span types mapped here; generation and response spans are not (the openai
# instrumentor's spans are those calls, priced), nor are speech and transcription spans.
AGENT, FUNCTION, HANDOFF, GUARDRAIL, CUSTOM = "agent", "function", "handoff", "guardrail", "custom"
WORKFLOW = "invoke_workflow"  # the conventions' operation for a run of several agents
MAX_OPEN = 10_000  # spans open at once (a span the SDK never ends is forgotten beyond it)


def _in_flight() -> BaseException | None:
    """The exception propagating where the SDK ends a span, if any: its `with` blocks and
    `finally` clauses end spans (and call this processor) while the exception is being handled."""
    return sys.exc_info()[1]


class OpenTelemetryBridge(TracingProcessor):
    """agents.tracing.TracingProcessor: agent -> invoke_agent, function -> execute_tool,
    handoff -> a `handoff {to agent}` span, guardrail -> `apply_guardrail {name}`, custom -> a
    span of its name."""

    def __init__(self, telemetry: AgentTelemetry) -> None:
        self.telemetry = telemetry
        self.enabled = True
        self._open: dict[str, Operation] = {}  # SDK span id -> its OpenTelemetry operation
        # OpenTelemetry span ids of agent spans under which a guardrail tripped (a guardrail's SDK
        # parent may be a turn span, which has no span of its own: its span's parent is the agent's)
        self._tripped: set[int] = set()
        self._lock = threading.Lock()

    # -- TracingProcessor ---------------------------------------------------------------
    def on_trace_start(self, trace: AgentsTrace) -> None:
        """The SDK's trace (one `Runner.run`, or the caller's `with trace(...)`) is the workflow
        span: every agent of the run (one hands off to the next) is in one OpenTelemetry trace."""
        if not self.enabled:
            return
        try:
            name = trace.name or "workflow"
            operation = Operation(
                self.telemetry,
                f"{WORKFLOW} {name}",
                {semconv.GEN_AI_OPERATION_NAME: WORKFLOW},
                {},
                agent=False,
                current=True,
                record=False,
            )
        except Exception:
            logger.debug("could not start a span for an agents SDK trace", exc_info=True)
            return
        self._remember(trace.trace_id, operation)

    def on_trace_end(self, trace: AgentsTrace) -> None:
        with self._lock:
            operation = self._open.pop(trace.trace_id, None)
        if operation is not None:
            operation.end()

    def on_span_start(self, span: AgentsSpan[Any]) -> None:
        if not self.enabled:
            return
        try:
            operation = self._start(span)
        except Exception:  # telemetry never changes what the application sees
            logger.debug("could not start a span for an agents SDK span", exc_info=True)
            return
        if operation is not None:
            self._remember(span.span_id, operation)

    def _remember(self, key: str, operation: Operation) -> None:
        with self._lock:
            if len(self._open) >= MAX_OPEN:
                self._open.clear()
            self._open[key] = operation

    def on_span_end(self, span: AgentsSpan[Any]) -> None:
        with self._lock:
            operation = self._open.pop(span.span_id, None)
        if operation is None:
            return
        try:
            self._end(span, operation)
        except Exception:
            logger.debug("could not end the span of an agents SDK span", exc_info=True)

    def shutdown(self) -> None:
        return None

    def force_flush(self) -> None:
        return None

    # -- mapping --------------------------------------------------------------------------
    def _parent(self, span: AgentsSpan[Any]) -> trace.Span | None:
        """The OpenTelemetry span of the SDK span's parent, if this bridge made one."""
        parent_id = span.parent_id or span.trace_id  # a top-level span's parent: the trace
        with self._lock:
            parent = self._open.get(parent_id)
        return None if parent is None else parent.span

    def _start(self, span: AgentsSpan[Any]) -> Operation | None:
        data = span.span_data
        kind = data.type
        telemetry = self.telemetry
        if kind == AGENT:
            return start_agent(
                telemetry,
                data.name,
                provider=semconv.Provider.OPENAI.value,
                current=True,
                parent=self._parent(span),
            )
        if kind == FUNCTION:  # an MCP server's tool is known as one only at the end (_end)
            return start_tool(
                telemetry,
                data.name,
                tool_type=semconv.ToolType.FUNCTION.value,
                current=True,
                parent=self._parent(span),
            )
        if kind == HANDOFF:
            parent = self._parent(span)
            attributes: dict[str, Any] = {}
            if data.from_agent:
                attributes[semconv.GENAI_OTEL_HANDOFF_FROM_AGENT] = data.from_agent
            if data.to_agent:
                attributes[semconv.GENAI_OTEL_HANDOFF_TO_AGENT] = data.to_agent
            # the target is known only when the SDK ends the span: named then
            return Operation(
                telemetry,
                semconv.HANDOFF_SPAN_PREFIX,
                attributes,
                {},
                agent=False,
                current=False,
                parent=parent,
                record=False,
            )
        if kind == GUARDRAIL:  # current: a guardrail that runs an agent or a model has it inside
            return Operation(
                telemetry,
                f"{semconv.Operation.APPLY_GUARDRAIL.value} {data.name}",
                {
                    semconv.GEN_AI_OPERATION_NAME: semconv.Operation.APPLY_GUARDRAIL.value,
                    semconv.GENAI_OTEL_GUARDRAIL_NAME: data.name,
                },
                {},
                agent=False,
                current=True,
                parent=self._parent(span),
                record=False,
            )
        if kind == CUSTOM:
            return Operation(
                telemetry,
                data.name,
                self._custom_data(data.data),
                {},
                agent=False,
                current=True,
                parent=self._parent(span),
                record=False,
            )
        return None

    def _agent_error(self, operation: Operation, error_type: str | None) -> str | None:
        """The agent span's error.type: the exception its run raises names the failure, which the
        SDK's error record does not (a tripwire's InputGuardrailTripwireTriggered, a model call's
        RateLimitError). A guardrail that tripped under the agent stops its run with a tripwire
        exception although the SDK leaves the agent's span without an error: failed all the same."""
        span_id = operation.span.get_span_context().span_id
        with self._lock:
            tripped = span_id in self._tripped
            self._tripped.discard(span_id)
        raised = _in_flight()
        if tripped:
            if isinstance(raised, InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered):
                return type(raised).__qualname__
            return OTHER_ERROR
        # only where the SDK says the run failed: an exception being handled around a run that
        # succeeded is not the run's
        if error_type is not None and isinstance(raised, Exception):
            return type(raised).__qualname__
        return error_type

    def _custom_data(self, data: Any) -> dict[str, Any]:
        """A custom span's data, with content capture on only (it can be anything the application
        put there): its primitive values (strings cut to the maximum length), under our prefix."""
        telemetry = self.telemetry
        if not telemetry.capture_on_span or not isinstance(data, dict):
            return {}
        attributes: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, str):
                attributes[f"{semconv.GENAI_OTEL_CUSTOM_DATA_PREFIX}{key}"] = value[
                    : telemetry.content_max_length
                ]
            elif isinstance(value, bool | int | float):
                attributes[f"{semconv.GENAI_OTEL_CUSTOM_DATA_PREFIX}{key}"] = value
        return attributes

    def _end(self, span: AgentsSpan[Any], operation: Operation) -> None:
        data = span.span_data
        error_type = OTHER_ERROR if span.error else None
        attributes: dict[str, Any] = {}
        if data.type == AGENT:
            error_type = self._agent_error(operation, error_type)
        elif data.type == GUARDRAIL:
            raised = _in_flight()
            if raised is None:
                triggered = bool(data.triggered)
                attributes[semconv.GENAI_OTEL_GUARDRAIL_TRIGGERED] = triggered
                parent = getattr(operation.span, "parent", None)  # its agent's span (or a span above)
                if triggered and parent is not None:  # the run stops: its agent's span fails (_agent_error)
                    with self._lock:
                        if len(self._tripped) >= MAX_OPEN:
                            self._tripped.clear()
                        self._tripped.add(parent.span_id)
            elif isinstance(raised, Exception):  # the guardrail raised: no verdict
                error_type = type(raised).__qualname__
            # else cancelled (another guardrail tripped first): no verdict, no error
        elif data.type == CUSTOM:  # the application may fill its data in while the span runs
            attributes.update(self._custom_data(data.data))
        elif data.type == FUNCTION:  # the SDK fills these in after the span started
            if getattr(data, "mcp_data", None):
                attributes[semconv.GEN_AI_TOOL_TYPE] = semconv.ToolType.EXTENSION.value
            for key, value in (
                (semconv.GEN_AI_TOOL_CALL_ARGUMENTS, data.input),
                (semconv.GEN_AI_TOOL_CALL_RESULT, data.output),
            ):
                content = self.telemetry.content(value)
                if content is not None:
                    attributes[key] = content
        elif data.type == HANDOFF:
            if data.from_agent:
                attributes[semconv.GENAI_OTEL_HANDOFF_FROM_AGENT] = data.from_agent
            if data.to_agent:
                attributes[semconv.GENAI_OTEL_HANDOFF_TO_AGENT] = data.to_agent
                operation.span.update_name(f"{semconv.HANDOFF_SPAN_PREFIX} {data.to_agent}")
        operation.end(error_type, attributes)
