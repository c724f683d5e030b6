"""OpenTelemetry GenAI instrumentation of AWS Bedrock Runtime through boto3 / botocore.

Zero code: ``pip install genai-otel`` and run the application under
``opentelemetry-instrument``; the instrumentor is registered under the
``opentelemetry_instrumentor`` entry point ``genai_otel_bedrock``. In code::

    from genai_otel.instrumentation.bedrock import BedrockInstrumentor

    BedrockInstrumentor().instrument(tracer_provider=..., meter_provider=...)  # or the globals
    client = boto3.client("bedrock-runtime")  # clients created from now on are traced
    ...
    BedrockInstrumentor().uninstrument()  # traced clients get their own method back

Instrumented, on ``bedrock-runtime`` clients created after ``instrument()``: ``converse`` and
``converse_stream`` (operation ``chat``), ``invoke_model`` and
``invoke_model_with_response_stream`` for the Anthropic (Messages: ``chat``; the legacy
``prompt`` body: ``text_completion``), Meta Llama (``text_completion``), Amazon Nova (``chat``),
Amazon Titan Text (``text_completion``) and Titan Embeddings (``embeddings``) body formats; other
models' InvokeModel calls get a span with Bedrock's token-count headers. One CLIENT span per call
(botocore's retries included) plus the GenAI client metrics; ``gen_ai.provider.name`` is
``aws.bedrock``; ``gen_ai.request.model`` is the ``modelId`` exactly as sent (inference profiles
such as ``us.anthropic.claude-3-5-sonnet-20241022-v2:0`` and ARNs included: the processor prices
by it); ``aws.request_id`` and, with a guardrail, ``aws.bedrock.guardrail.id``.

Usage: Converse's ``inputTokens`` excludes cache reads and writes
(``cacheReadInputTokens`` / ``cacheWriteInputTokens``), so ``gen_ai.usage.input_tokens`` is their
sum, as the conventions want; the same for Anthropic and Nova bodies. Stop reasons are Bedrock's
own (``end_turn``, ``max_tokens``, ``tool_use``, ...); ``content_filtered``,
``guardrail_intervened``, Anthropic's ``refusal`` and Titan's ``CONTENT_FILTERED`` are errors of
category ``content_filter``. AWS errors are classified by their code: ``ThrottlingException`` (and
``ServiceQuotaExceededException``) ``rate_limit``, ``ModelTimeoutException`` ``timeout``,
``AccessDeniedException`` / ``UnrecognizedClientException`` / signature and token errors ``auth``,
``InternalServerException`` / ``ServiceUnavailableException`` / ``ModelNotReadyException`` /
``ModelErrorException`` / ``ModelStreamErrorException`` ``provider_down``, a
``ValidationException`` "Input is too long" ``context_window_exceeded``.

An InvokeModel answer's body is read inside the call (so its usage is known) and handed to the
application as a fresh ``StreamingBody`` holding the same bytes; a failure reading it is raised
by ``invoke_model`` itself. Streams (``response["stream"]``, ``response["body"]``) end their span
exactly once: exhausted, closed, failing (an exception event too) or garbage-collected.

Environment variables:

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``NO_CONTENT`` (default), ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT``; read at
    ``instrument()``. Off, no prompt, completion or tool argument is recorded.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH``
    Longest captured value in characters (default 8192).
``OTEL_SEMCONV_STABILITY_OPT_IN``
    ``gen_ai_latest_experimental``: the conventions' newer client metric names
    (``gen_ai.client.inference.*``) instead of today's; ``gen_ai_latest_experimental/dup``:
    both. Read at ``instrument()``; the README's table lists what each setting emits.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    ``genai_otel_bedrock`` disables this instrumentor under ``opentelemetry-instrument`` (if
    ``opentelemetry-instrumentation-botocore`` is installed too, its Bedrock extension also makes
    GenAI spans: disable ``botocore`` or this one, or Bedrock calls get two).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from genai_otel.instrumentation._core import Telemetry, unwrap, wrap
from genai_otel.instrumentation.bedrock import _wrappers
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from genai_otel import semconv

__all__ = ["BedrockInstrumentor"]

_TARGET = ("botocore.session", "Session.create_client")


class BedrockInstrumentor(BaseInstrumentor):
    """Instruments Bedrock Runtime clients of boto3 / botocore (see the module docstring)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("botocore >= 1.34.116",)  # the first with Converse

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = Telemetry(
            semconv.GENAI_OTEL_SCOPE_BEDROCK,
            semconv.Provider.AWS_BEDROCK.value,
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        wrap(*_TARGET, _wrappers.client_creator(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(*_TARGET)
        _wrappers.untrace_clients()
