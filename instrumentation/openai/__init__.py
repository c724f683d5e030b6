"""OpenTelemetry GenAI instrumentation of the `openai` SDK.

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_openai``. In code::

    from genai_otel.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    ...
    OpenAIInstrumentor().uninstrument()  # restores the SDK's own methods

Instrumented (sync ``OpenAI`` and async ``AsyncOpenAI`` clients alike):
``chat.completions.create`` (plain and ``stream=True``), ``chat.completions.parse``,
``chat.completions.stream``, ``responses.create`` (plain and streamed), ``responses.parse``,
``responses.stream``, ``embeddings.create``; also their ``with_raw_response`` forms
(the span reads the parsed body, which the SDK caches). ``with_streaming_response``
bodies are read by the application, so those spans carry the request side only.

Each call is one CLIENT span ``{gen_ai.operation.name} {gen_ai.request.model}`` and points
on ``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration`` and, for streams,
``gen_ai.client.operation.time_to_first_chunk`` (by default; see ``OTEL_SEMCONV_STABILITY_OPT_IN``).

``gen_ai.provider.name`` comes from the client's base URL (``api.openai.com`` is ``openai``,
``api.groq.com`` is ``groq``, ...: the table is ``semconv.OPENAI_COMPATIBLE_HOSTS``, documented
in the README); a host the table does not know is ``self_hosted``, which the processor leaves
unpriced unless its price overrides file prices it. ``instrument(provider="groq")`` forces one
value, ``instrument(provider_hosts={"llm.internal": "vllm"})`` puts entries before the table;
either replaces the environment variable of the same role.

Environment variables:

``GENAI_OTEL_OPENAI_PROVIDER``
    One ``gen_ai.provider.name`` for every call (the host table is not read), e.g. ``openai``
    for a proxy in front of OpenAI. Read at ``instrument()``.
``GENAI_OTEL_PROVIDER_HOSTS``
    ``pattern=provider`` entries separated by commas, matched before the built-in table:
    ``host``, ``host:port``, ``*suffix`` (``*.example.com``) or ``*:port``; e.g.
    ``vllm.internal=vllm,127.0.0.1:4000=openai``. Read at ``instrument()``.

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``NO_CONTENT`` (default), ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT``: where
    prompts, completions and tool-call arguments are recorded (as ``gen_ai.input.messages``,
    ``gen_ai.output.messages``, ``gen_ai.system_instructions`` span attributes and/or a
    ``gen_ai.client.inference.operation.details`` span event). Read at ``instrument()``.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192); longer values are cut.
``OTEL_SEMCONV_STABILITY_OPT_IN``
    ``gen_ai_latest_experimental``: the conventions' newer client metric names
    (``gen_ai.client.inference.*``) instead of today's; ``gen_ai_latest_experimental/dup``:
    both. Read at ``instrument()``; the README's table lists what each setting emits.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    Comma-separated entry-point names to skip under ``opentelemetry-instrument``
    (``genai_otel_openai`` disables this instrumentor).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from typing import Any

from genai_otel.instrumentation._core import Telemetry, async_wrapper, sync_wrapper, unwrap_all, wrap_all
from genai_otel.instrumentation.openai import _wrappers
from genai_otel.instrumentation.openai._providers import Endpoints, OpenAITelemetry
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["OpenAIInstrumentor"]


def _targets(telemetry: Telemetry) -> list[tuple[str, str, Any]]:
    targets: list[tuple[str, str, Any]] = []
    for module, name, kind, is_async in _wrappers.METHODS:
        start, outcome_of, accumulator = _wrappers.KINDS[kind]
        starter = partial(start, telemetry)  # a C-level binding: no Python frame per call
        finish = _wrappers._finisher(outcome_of, accumulator, is_async)
        make = async_wrapper if is_async else sync_wrapper
        targets.append((module, name, make(starter, finish)))
    for module, name, is_async in _wrappers.STREAM_CLOSERS:
        closer = _wrappers.async_close_wrapper if is_async else _wrappers.close_wrapper

        # A fresh function per target, so the "already wrapped" mark stays per instrumentation.
        def close(wrapped: Any, instance: Any, args: Any, kwargs: Any, _closer: Any = closer) -> Any:
            return _closer(wrapped, instance, args, kwargs)

        targets.append((module, name, close))
    return targets


class OpenAIInstrumentor(BaseInstrumentor):
    """Instruments the `openai` SDK (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 2.0",)

    def _instrument(self, **kwargs: Any) -> None:
        endpoints = Endpoints.configured(kwargs.get("provider"), kwargs.get("provider_hosts"))
        telemetry = OpenAITelemetry(
            endpoints,
            semconv.GENAI_OTEL_SCOPE_OPENAI,
            semconv.Provider.OPENAI.value,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        wrap_all(_targets(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all([(module, name) for module, name, _, _ in _wrappers.METHODS])
        unwrap_all([(module, name) for module, name, _ in _wrappers.STREAM_CLOSERS])
