"""Record an evaluation (LLM-as-judge, user feedback, a heuristic) of a GenAI response.

    from genai_otel.instrumentation.evaluation import record_evaluation

    record_evaluation("helpfulness", 8.5, label="good", response_id=completion.id,
                      provider="openai", model="gpt-4o-mini")

Contract with the processor: a span event named ``gen_ai.evaluation.result`` with
``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value`` (a float on a **0-10 scale**:
10 is best; convert other scales before recording), optional
``gen_ai.evaluation.score.label`` and ``gen_ai.response.id`` (the judged response).
Safety evaluations are the exception (the processor's ``evaluations.safety_thresholds``, by
default ``hallucination`` and ``toxicity``): their score says the problem is present (1, or at
least the threshold, 0.5 by default, flags the response), and they are counted as rates, not
as quality scores; so do not give a quality rubric one of their names.

The event goes on the current span when one is recording (for example the span of the
request handler that asked the judge). Otherwise a short INTERNAL span ``evaluate {name}``
carries it, with ``gen_ai.provider.name`` and ``gen_ai.request.model`` of the judged call.

``explanation`` is content (it usually quotes the response): recorded as
``gen_ai.evaluation.explanation`` only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` enables content capture, and cut to
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH`` characters.
"""

from __future__ import annotations

import math
from typing import Any

from genai_otel.instrumentation._core import VERSION, content_capture_from_env, content_max_length_from_env
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from genai_otel import semconv
from genai_otel.semconv import ContentCapture

SCORE_MIN = 0.0
SCORE_MAX = 10.0


def record_evaluation(
    name: str,
    score: float,
    *,
    label: str | None = None,
    explanation: str | None = None,
    response_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Records one evaluation result; raises ValueError for a score outside 0-10 or NaN."""
    value = float(score)
    if math.isnan(value) or not SCORE_MIN <= value <= SCORE_MAX:
        raise ValueError(f"evaluation score must be within {SCORE_MIN}-{SCORE_MAX}, got {score!r}")
    attributes: dict[str, Any] = {
        semconv.GEN_AI_EVALUATION_NAME: name,
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: value,
    }
    if label is not None:
        attributes[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if response_id is not None:
        attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
    if explanation is not None and content_capture_from_env() is not ContentCapture.NO_CONTENT:
        attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] = explanation[: content_max_length_from_env()]
    # The judged call: on the event itself too, because the span the event lands on is usually
    # the application's own (the GenAI span has ended by the time a judge has scored it), and the
    # processor labels the quality metric with the event's provider and model.
    judged: dict[str, Any] = {}
    if provider is not None:
        judged[semconv.GEN_AI_PROVIDER_NAME] = provider
    if model is not None:
        judged[semconv.GEN_AI_REQUEST_MODEL] = model
    attributes.update(judged)

    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(semconv.EVENT_EVALUATION_RESULT, attributes)
        return
    span_attributes: dict[str, Any] = dict(judged)
    tracer = trace.get_tracer(semconv.GENAI_OTEL_SCOPE_EVALUATION, VERSION, tracer_provider)
    span = tracer.start_span(f"evaluate {name}", kind=SpanKind.INTERNAL, attributes=span_attributes)
    span.add_event(semconv.EVENT_EVALUATION_RESULT, attributes)
    span.end()
