"""OpenTelemetry GenAI instrumentation of MCP client tool calls (the `mcp` package).

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_mcp``. In code::

    from genai_otel.instrumentation.mcp import MCPInstrumentor

    MCPInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    ...
    MCPInstrumentor().uninstrument()  # restores the SDK's own methods

Instrumented: ``mcp.ClientSession.call_tool`` and, where the SDK has it (mcp 2), the high-level
``mcp.Client.call_tool`` (one span for the call, whatever rounds it takes underneath). Each tool
call is one INTERNAL span ``execute_tool {gen_ai.tool.name}`` (``gen_ai.operation.name``
``execute_tool``, ``gen_ai.tool.type`` ``extension``, ``mcp.method.name`` ``tools/call``),
current while the call runs: the SDK's own transport span (``MCP send tools/call ...``, mcp 2)
and the server's span, through the propagated trace context, are its descendants. A call made
by an OpenAI Agents SDK tool of the same name is that tool's span already (no second span).
The processor counts this span as a call (``llm_tool_calls_total``) and the server's SERVER
``tools/call`` span, which mcp 2 emits itself, as the server's execution
(``llm_tool_executions_total``): the same call is never counted twice in one metric, and a tool
served to an uninstrumented client is still counted where it ran.

A result with ``isError`` (the tool raised on the server) and an exception (``McpError``, a
timeout, a closed connection) end the span with status ERROR and ``error.type``:
``tool_error`` for the former, the exception's class name for the latter (re-raised unchanged).

Metric: ``gen_ai.execute_tool.duration`` (``gen_ai.operation.name``, ``gen_ai.tool.name``,
``error.type`` on failure), a histogram in seconds.

Environment variables:

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``SPAN_ONLY`` or ``SPAN_AND_EVENT`` records the call's arguments
    (``gen_ai.tool.call.arguments``) and its result's content (``gen_ai.tool.call.result``), as
    JSON; ``NO_CONTENT`` (default) or ``EVENT_ONLY``, neither. Read at ``instrument()``.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192).
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    ``genai_otel_mcp`` disables this instrumentor under ``opentelemetry-instrument``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from genai_otel.instrumentation._agentic import RUNNING_TOOL, AgentTelemetry, Operation, start_tool
from genai_otel.instrumentation._core import unwrap, wrap
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["MCPInstrumentor"]

logger = logging.getLogger(__name__)

TOOL_ERROR = "tool_error"  # error.type of a result the server marked isError
CALL_TOOL = "tools/call"
EXTENSION: str = semconv.ToolType.EXTENSION.value  # read once (an enum's `.value` is a property)
TARGETS = (
    ("mcp.client.client", "Client.call_tool"),  # mcp 2: wraps the session's
    ("mcp.client.session", "ClientSession.call_tool"),
)


def _start(telemetry: AgentTelemetry, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Operation:
    extra: dict[str, Any] = {semconv.MCP_METHOD_NAME: CALL_TOOL}
    arguments = telemetry.content(args[1] if len(args) > 1 else kwargs.get("arguments"))
    if arguments is not None:
        extra[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
    return start_tool(telemetry, name, tool_type=EXTENSION, extra=extra, current=True)


def _finish(telemetry: AgentTelemetry, operation: Operation, result: Any) -> None:
    attributes: dict[str, Any] = {}
    content = getattr(result, "content", None)
    if content is not None and telemetry.capture_on_span:
        dumped = [item.model_dump(mode="json") if hasattr(item, "model_dump") else item for item in content]
        captured = telemetry.content(dumped)
        if captured is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_RESULT] = captured
    is_error = getattr(result, "is_error", None)
    if is_error is None:
        is_error = getattr(result, "isError", False)
    operation.end(TOOL_ERROR if is_error is True else None, attributes)


def _wrapper(telemetry: AgentTelemetry) -> Callable[..., Any]:
    async def traced(
        wrapped: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            operation = _start(telemetry, name, args, kwargs)
        except Exception:
            logger.debug("could not start an MCP tool span", exc_info=True)
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            operation.end(type(error).__qualname__)
            raise
        try:
            _finish(telemetry, operation, result)
        except Exception:
            logger.debug("could not record an MCP tool result", exc_info=True)
            operation.end()
        return result

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        name = args[0] if args else kwargs.get("name")
        if not isinstance(name, str) or RUNNING_TOOL.get() == name:
            # an outer call of the same tool (Client.call_tool, an agent's tool) traces it: the
            # SDK's own coroutine, no layer of ours (the caller awaits it where it made it)
            return wrapped(*args, **kwargs)
        return traced(wrapped, name, args, kwargs)

    return wrapper


class MCPInstrumentor(BaseInstrumentor):
    """Instruments MCP client tool calls (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("mcp >= 1.0",)

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = AgentTelemetry(
            semconv.GENAI_OTEL_SCOPE_MCP, kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        )
        for module, name in TARGETS:
            wrap(module, name, _wrapper(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        for module, name in TARGETS:
            unwrap(module, name)
