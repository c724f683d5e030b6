"""What the agent and tool instrumentors share: invoke_agent and execute_tool spans and their
duration metrics (the GenAI conventions' `gen_ai.invoke_agent.duration` and
`gen_ai.execute_tool.duration`, histograms in seconds).

These spans are INTERNAL: an agent run or a tool runs in the application's process (the model
calls inside an agent run are the CLIENT spans of the provider instrumentors, their children,
and the only spans priced). They carry no usage, so nothing is counted twice.
"""

from __future__ import annotations

import contextvars
import json
import logging
from time import perf_counter
from typing import Any

from genai_otel.instrumentation._core import (
    VERSION,
    content_capture_from_env,
    content_max_length_from_env,
    histogram,
)
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from genai_otel import semconv
from genai_otel.semconv import ContentCapture

logger = logging.getLogger(__name__)

# error.type when the failure has no class to name (the conventions' fallback value)
OTHER_ERROR: str = "_OTHER"
# The tool whose execute_tool span is current: an MCP call made by an agent's tool of the same
# name is that tool's execution, already traced (no second span, no second count).
RUNNING_TOOL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "genai_otel_running_tool", default=None
)
# The operation names, read once: an enum member's `.value` is a Python-level property.
EXECUTE_TOOL: str = semconv.Operation.EXECUTE_TOOL.value
INVOKE_AGENT: str = semconv.Operation.INVOKE_AGENT.value


class AgentTelemetry:
    """The tracer, the agent and tool duration histograms and the content-capture setting."""

    __slots__ = ("agent_duration", "capture_on_span", "content_max_length", "tool_duration", "tracer")

    def __init__(
        self,
        scope: str,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(scope, VERSION, tracer_provider)
        meter = metrics.get_meter(scope, VERSION, meter_provider)
        self.agent_duration = histogram(
            meter,
            semconv.METRIC_INVOKE_AGENT_DURATION,
            "s",
            "Duration of a GenAI agent invocation.",
            semconv.AGENT_RUN_DURATION_BUCKETS,
        )
        self.tool_duration = histogram(
            meter,
            semconv.METRIC_EXECUTE_TOOL_DURATION,
            "s",
            "Duration of a tool execution.",
            semconv.DURATION_BUCKETS,
        )
        capture = content_capture_from_env()
        # tool arguments and results are span attributes only (no event carries them)
        self.capture_on_span = capture in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)
        self.content_max_length = content_max_length_from_env()

    def content(self, value: Any) -> str | None:
        """`value` as captured content (JSON where it is not text, cut to the maximum length), or
        None when capture is off."""
        if not self.capture_on_span or value is None:
            return None
        if not isinstance(value, str):
            try:
                value = json.dumps(value, default=str)
            except (TypeError, ValueError):
                value = str(value)
        return value[: self.content_max_length]


class Operation:
    """One agent invocation or tool execution: its span, its clock, its metric; ends once.

    `current` makes the span the current one (its model calls and tools become its children)
    until `end`, which must then run in the same context as the start."""

    __slots__ = ("_running", "_token", "histogram", "metric_attributes", "open", "span", "start")

    def __init__(
        self,
        telemetry: AgentTelemetry,
        name: str,
        attributes: dict[str, Any],
        metric_attributes: dict[str, Any],
        *,
        agent: bool,
        current: bool,
        parent: trace.Span | None = None,
        record: bool = True,
    ) -> None:
        """`record`: False for a span without a duration metric of its own (a handoff)."""
        context = trace.set_span_in_context(parent) if parent is not None else None
        self.span = telemetry.tracer.start_span(
            name, context=context, kind=SpanKind.INTERNAL, attributes=attributes
        )
        self.histogram = (telemetry.agent_duration if agent else telemetry.tool_duration) if record else None
        self.metric_attributes = metric_attributes
        self._token: object | None = (
            otel_context.attach(trace.set_span_in_context(self.span)) if current else None
        )
        tool = None if agent or not current else attributes.get(semconv.GEN_AI_TOOL_NAME)
        self._running = None if tool is None else RUNNING_TOOL.set(tool)
        self.open = True
        self.start = perf_counter()

    def end(self, error_type: str | None = None, attributes: dict[str, Any] | None = None) -> None:
        """Ends the span (an error if `error_type` is given) and records the duration. Never raises."""
        if not self.open:
            return
        self.open = False
        span = self.span
        try:
            elapsed = perf_counter() - self.start
            token, self._token = self._token, None
            # detached only where it was attached: a span ended from another task leaves that
            # task's context as it is (it ends with the task)
            if token is not None and trace.get_current_span() is span:
                try:
                    otel_context.detach(token)  # type: ignore[arg-type]
                    if self._running is not None:
                        RUNNING_TOOL.reset(self._running)
                except Exception:  # ended from another context: nothing the caller should see
                    logger.debug("could not detach an agent or tool span's context", exc_info=True)
            self._running = None
            if attributes:
                span.set_attributes(attributes)
            metric_attributes = self.metric_attributes
            if error_type is not None:
                span.set_attribute(semconv.ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
                metric_attributes = {**metric_attributes, semconv.ERROR_TYPE: error_type}
            span.end()
            if self.histogram is not None:
                self.histogram.record(elapsed, metric_attributes)
        except Exception:
            logger.debug("could not record an agent or tool operation", exc_info=True)
            span.end()


def start_tool(
    telemetry: AgentTelemetry,
    tool: str,
    *,
    tool_type: str,
    call_id: str | None = None,
    extra: dict[str, Any] | None = None,
    current: bool = False,
    parent: trace.Span | None = None,
) -> Operation:
    """Starts `execute_tool {tool}`."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: tool,
        semconv.GEN_AI_TOOL_TYPE: tool_type,
    }
    if call_id:
        attributes[semconv.GEN_AI_TOOL_CALL_ID] = call_id
    if extra:
        attributes.update(extra)
    metric_attributes = {
        semconv.GEN_AI_OPERATION_NAME: EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: tool,
    }
    return Operation(
        telemetry,
        f"{EXECUTE_TOOL} {tool}",
        attributes,
        metric_attributes,
        agent=False,
        current=current,
        parent=parent,
    )


def start_agent(
    telemetry: AgentTelemetry,
    agent: str,
    *,
    provider: str,
    extra: dict[str, Any] | None = None,
    current: bool = False,
    parent: trace.Span | None = None,
) -> Operation:
    """Starts `invoke_agent {agent}`."""
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: INVOKE_AGENT,
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.GEN_AI_AGENT_NAME: agent,
    }
    if extra:
        attributes.update(extra)
    metric_attributes = {
        semconv.GEN_AI_OPERATION_NAME: INVOKE_AGENT,
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.GEN_AI_AGENT_NAME: agent,
    }
    return Operation(
        telemetry,
        f"{INVOKE_AGENT} {agent}",
        attributes,
        metric_attributes,
        agent=True,
        current=current,
        parent=parent,
    )
