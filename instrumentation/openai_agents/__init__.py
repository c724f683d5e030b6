"""OpenTelemetry GenAI instrumentation of the OpenAI Agents SDK (`openai-agents`).

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_openai_agents``. In code::

    from genai_otel.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    ...
    OpenAIAgentsInstrumentor().uninstrument()  # removes its tracing processor again

It adds a tracing processor to the SDK (``agents.add_trace_processor``; the SDK's own processors
stay as they are) that maps the SDK's spans onto the GenAI conventions' agent spans, INTERNAL:

* an agent span is ``invoke_agent {gen_ai.agent.name}`` (``gen_ai.operation.name``
  ``invoke_agent``, ``gen_ai.provider.name`` ``openai``), current while the agent runs;
* a function tool span is ``execute_tool {gen_ai.tool.name}`` (``gen_ai.tool.type``
  ``function``, or ``extension`` for an MCP server's tool), a child of its agent's span;
* a handoff is ``handoff {to agent}`` with ``genai_otel.handoff.from_agent`` and
  ``genai_otel.handoff.to_agent`` (the conventions do not name handoffs yet); the agent handed
  to gets an ``invoke_agent`` span of its own;
* an input or output guardrail is ``apply_guardrail {name}`` (``gen_ai.operation.name``
  ``apply_guardrail``, the operation the open guardrail proposals name; no released convention
  names guardrails yet) with ``genai_otel.guardrail.name`` and ``genai_otel.guardrail.triggered``
  (its tripwire, true or false). A guardrail that raises has no verdict: status ERROR and
  ``error.type`` the exception's class; one cancelled because another tripped first has neither.
  A tripwire stops the run (the SDK raises ``InputGuardrailTripwireTriggered`` /
  ``OutputGuardrailTripwireTriggered``): the agent's span then has status ERROR and that
  ``error.type``, although the SDK itself leaves its agent span without an error;
* a custom span (``agents.tracing.custom_span``) is a span of its name; its data values, which
  may be content, only with content capture on (below), primitive ones only, as
  ``genai_otel.custom.{key}``.

The SDK's generation and response spans are not mapped: the model calls are the openai
instrumentor's CLIENT spans (``chat`` / ``responses`` ...), which start while the agent's span is
current and so are its children. They are the only spans with usage, and the only ones the
processor prices: agent and tool spans carry no usage, so nothing is counted twice. (A model
the openai SDK does not call, through LiteLLM say, has no inference span from genai-otel.)

Metrics: ``gen_ai.invoke_agent.duration`` (``gen_ai.agent.name``, ``error.type``) and
``gen_ai.execute_tool.duration`` (``gen_ai.tool.name``, ``error.type``), histograms in seconds.
A span the SDK marks failed gets status ERROR and ``error.type`` ``_OTHER`` (the SDK's error
record names no exception class), an agent span the class of the exception its run raised.

Environment variables:

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``SPAN_ONLY`` or ``SPAN_AND_EVENT`` records a tool's arguments
    (``gen_ai.tool.call.arguments``) and result (``gen_ai.tool.call.result``) on its span, and a
    custom span's primitive data values; ``NO_CONTENT`` (default) or ``EVENT_ONLY``, none of
    them. Read at ``instrument()``.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192).
``OPENAI_AGENTS_DISABLE_TRACING``
    The SDK's own switch: ``1`` turns its tracing off, and with it every span of this instrumentor.
``GENAI_OTEL_OPENAI_AGENTS_EXPORT_TO_OPENAI``
    ``true`` (default) leaves the SDK's own exporter, which sends its traces to OpenAI's traces
    dashboard (with the API key), as it is; ``false`` removes that processor at ``instrument()``
    (``uninstrument()`` puts it back), so the runs' telemetry goes to OpenTelemetry only. Read at
    ``instrument()``.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    ``genai_otel_openai_agents`` disables this instrumentor under ``opentelemetry-instrument``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from genai_otel.instrumentation._agentic import AgentTelemetry
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["OpenAIAgentsInstrumentor"]

logger = logging.getLogger(__name__)


EXPORT_TO_OPENAI = "GENAI_OTEL_OPENAI_AGENTS_EXPORT_TO_OPENAI"


def _processors() -> tuple[Any, list[Any]] | None:
    """The SDK's multi-processor and its processors, or None where they are not where expected."""
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    processors = getattr(multi, "_processors", None)
    if multi is None or processors is None:
        return None
    return multi, list(processors)


class OpenAIAgentsInstrumentor(BaseInstrumentor):
    """Instruments the `openai-agents` SDK (see the module docstring)."""

    _bridge: Any = None
    _removed: Any = None  # the SDK's own OpenAI exporter, when EXPORT_TO_OPENAI=false took it out

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai-agents >= 0.2",)

    def _instrument(self, **kwargs: Any) -> None:
        from agents.tracing import add_trace_processor
        from genai_otel.instrumentation.openai_agents._bridge import OpenTelemetryBridge

        telemetry = AgentTelemetry(
            semconv.GENAI_OTEL_SCOPE_OPENAI_AGENTS,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        bridge = OpenTelemetryBridge(telemetry)
        add_trace_processor(bridge)
        type(self)._bridge = bridge
        if os.environ.get(EXPORT_TO_OPENAI, "true").strip().lower() == "false":
            self._remove_openai_export()

    def _remove_openai_export(self) -> None:
        from agents.tracing.processors import default_processor

        found = _processors()
        sdk_processor = default_processor()
        if found is None:
            logger.warning("%s=false: the agents SDK's processors are not where expected", EXPORT_TO_OPENAI)
            return
        multi, processors = found
        if sdk_processor in processors:
            multi.set_processors([p for p in processors if p is not sdk_processor])
            type(self)._removed = sdk_processor

    def _uninstrument(self, **kwargs: Any) -> None:
        bridge, type(self)._bridge = type(self)._bridge, None
        removed, type(self)._removed = type(self)._removed, None
        if bridge is None:
            return
        bridge.enabled = False  # whatever happens below, it records nothing more
        found = _processors()
        if found is None:
            logger.debug("the agents SDK's processors are not where expected; the bridge stays, disabled")
            return
        multi, processors = found
        kept = [p for p in processors if p is not bridge]
        if removed is not None and removed not in kept:
            kept.insert(0, removed)  # where the SDK had it: first
        multi.set_processors(kept)
