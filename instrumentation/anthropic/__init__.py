"""OpenTelemetry GenAI instrumentation of the `anthropic` SDK.

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_anthropic``. In code::

    from genai_otel.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    ...
    AnthropicInstrumentor().uninstrument()  # restores the SDK's own functions

Instrumented (``Anthropic`` and ``AsyncAnthropic``): ``messages.create`` (plain and
``stream=True``), ``messages.parse`` and ``messages.stream``, and their
``with_raw_response`` forms. Each call is one CLIENT span ``chat {model}`` plus the GenAI
client metrics. ``gen_ai.usage.input_tokens`` includes cache reads and writes (Anthropic
reports them apart); a ``refusal`` stop reason is an error of category ``content_filter``.

The SDK's own span. With a tracer provider set, the ``anthropic`` SDK starts its own
CLIENT span per call (scope ``com.anthropic.sdk.python``, name ``anthropic.messages.create``;
``ANTHROPIC_OPEN_TELEMETRY=false`` turns it off). For the calls listed above genai-otel
takes its place: the SDK is told not to start its span, and ours is the one span of the
call, whatever ``ANTHROPIC_OPEN_TELEMETRY`` says. Taking its place rather than enriching
it, because the native span starts and ends inside private SDK code (its end depends on
how the application reads the body), has no metrics, no error category, no finish reasons
and no time to first chunk, and is named differently; one span from one place keeps every
attribute and metric of a call consistent with the OpenAI instrumentor. Calls genai-otel
does not instrument (``beta.messages``, ``models``, ...) keep the SDK's span.
With the SDK's span suppressed the SDK does not inject trace headers itself; an HTTP
client instrumentation sees our span as current and propagates it.

Environment variables:

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``NO_CONTENT`` (default), ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT``; read at
    ``instrument()``.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192).
``OTEL_SEMCONV_STABILITY_OPT_IN``
    ``gen_ai_latest_experimental``: the conventions' newer client metric names
    (``gen_ai.client.inference.*``) instead of today's; ``gen_ai_latest_experimental/dup``:
    both. Read at ``instrument()``; the README's table lists what each setting emits.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    ``genai_otel_anthropic`` disables this instrumentor under ``opentelemetry-instrument``.
``ANTHROPIC_OPEN_TELEMETRY``
    The SDK's own switch; either value gives exactly one span per instrumented call.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from genai_otel.instrumentation._core import Telemetry, unwrap_all, wrap, wrap_all
from genai_otel.instrumentation.anthropic import _wrappers
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["AnthropicInstrumentor"]


class AnthropicInstrumentor(BaseInstrumentor):
    """Instruments the `anthropic` SDK (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 0.60",)

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = Telemetry(
            semconv.GENAI_OTEL_SCOPE_ANTHROPIC,
            semconv.Provider.ANTHROPIC.value,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            inside=_wrappers.TRACED_BY_US,
        )
        wrap_all((module, name, make(telemetry)) for module, name, make in _wrappers.CREATE_TARGETS)
        module, name = _wrappers.NATIVE_SPAN_TARGET

        def suppress(*args: Any) -> Any:  # a fresh function, so the wrap mark is per instrumentation
            return _wrappers.suppress_native_span(*args)

        wrap(module, name, suppress)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all([(module, name) for module, name, _ in _wrappers.CREATE_TARGETS])
        unwrap_all([_wrappers.NATIVE_SPAN_TARGET])
