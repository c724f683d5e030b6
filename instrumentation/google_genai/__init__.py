"""OpenTelemetry GenAI instrumentation of the Google Gen AI SDK (`google-genai`).

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_google_genai``. In code::

    from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor

    GoogleGenAIInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    ...
    GoogleGenAIInstrumentor().uninstrument()  # restores the SDK's own methods

Instrumented (``client.models`` and ``client.aio.models`` alike, and chats, which call them):
``generate_content``, ``generate_content_stream`` and ``embed_content``. Each model request is
one CLIENT span ``{gen_ai.operation.name} {gen_ai.request.model}`` (operation
``generate_content`` or ``embeddings``) plus the GenAI client metrics; a public call that sends
several requests (automatic function calling, automatic continuation) has one span per request.
``gen_ai.provider.name`` is ``gcp.gemini`` for the Gemini Developer API and ``gcp.vertex_ai``
for a client made with ``vertexai=True``. The request model is the model id without its
resource path (``models/gemini-2.5-flash`` is ``gemini-2.5-flash``); the response model is the
answer's ``model_version``.

Usage: ``gen_ai.usage.input_tokens`` is ``prompt_token_count`` (which includes the cached part)
plus ``tool_use_prompt_token_count``; ``cache_read.input_tokens`` is
``cached_content_token_count``; ``output_tokens`` is ``candidates_token_count`` plus
``thoughts_token_count`` (Gemini reports thinking apart), and ``reasoning.output_tokens`` is
``thoughts_token_count``. Finish reasons are Gemini's, lower-cased (``stop``, ``max_tokens``);
a safety, recitation, blocklist or prohibited-content finish, or a blocked prompt, is an error
of category ``content_filter``. ``google.genai.errors.APIError`` s are classified by their HTTP
code and Google status (429 ``rate_limit``, an invalid API key ``auth``, 5xx ``provider_down``,
``DEADLINE_EXCEEDED`` ``timeout``, too many input tokens ``context_window_exceeded``).

Environment variables:

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``NO_CONTENT`` (default), ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT``; read at
    ``instrument()``. Off, no prompt, completion or function argument is recorded.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192).
``OTEL_SEMCONV_STABILITY_OPT_IN``
    ``gen_ai_latest_experimental``: the conventions' newer client metric names
    (``gen_ai.client.inference.*``) instead of today's; ``gen_ai_latest_experimental/dup``:
    both. Read at ``instrument()``; the README's table lists what each setting emits.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    ``genai_otel_google_genai`` disables this instrumentor under ``opentelemetry-instrument``
    (disable ``google_genai`` too if the official ``opentelemetry-instrumentation-google-genai``
    is installed, or calls get two spans).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from typing import Any

from genai_otel.instrumentation._core import Telemetry, async_wrapper, sync_wrapper, unwrap_all, wrap_all
from genai_otel.instrumentation.google_genai import _wrappers
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["GoogleGenAIInstrumentor"]


def _targets(telemetry: Telemetry) -> list[tuple[str, str, Any]]:
    targets: list[tuple[str, str, Any]] = []
    for module, name, start, outcome_of, accumulator, is_async in _wrappers.METHODS:
        finish = _wrappers.finisher(outcome_of, accumulator, is_async)
        make = async_wrapper if is_async else sync_wrapper
        targets.append((module, name, make(partial(start, telemetry), finish)))
    return targets


class GoogleGenAIInstrumentor(BaseInstrumentor):
    """Instruments the `google-genai` SDK (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("google-genai >= 1.0",)

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = Telemetry(
            semconv.GENAI_OTEL_SCOPE_GOOGLE_GENAI,
            semconv.Provider.GCP_GEMINI.value,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        wrap_all(_targets(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap_all([(module, name) for module, name, *_ in _wrappers.METHODS])
