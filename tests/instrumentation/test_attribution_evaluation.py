"""Attribution (user/feature/tenant/conversation on every GenAI span) and the evaluation hook."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from genai_otel.instrumentation.attribution import attribution, in_current_context
from genai_otel.instrumentation.evaluation import record_evaluation
from opentelemetry.trace import SpanKind
from otel_fixtures import Otel

from genai_otel import semconv

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "hi"}]
ATTRIBUTION_KEYS = (
    semconv.USER_ID,
    semconv.GENAI_OTEL_FEATURE,
    semconv.GENAI_OTEL_TENANT_ID,
    semconv.GEN_AI_CONVERSATION_ID,
)


def _attribution_of(otel: Otel) -> list[dict[str, object]]:
    return [
        {key: value for key, value in (span.attributes or {}).items() if key in ATTRIBUTION_KEYS}
        for span in otel.spans()
    ]


def test_context_manager_nests_and_resets(otel: Otel, oai: openai.OpenAI) -> None:
    with attribution(user_id="u-1", feature="search", tenant_id="acme"):
        with attribution(feature="summary", conversation_id="c-9"):
            oai.chat.completions.create(model=MODEL, messages=MESSAGES)
        oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert _attribution_of(otel) == [
        {
            semconv.USER_ID: "u-1",
            semconv.GENAI_OTEL_FEATURE: "summary",
            semconv.GENAI_OTEL_TENANT_ID: "acme",
            semconv.GEN_AI_CONVERSATION_ID: "c-9",
        },
        {semconv.USER_ID: "u-1", semconv.GENAI_OTEL_FEATURE: "search", semconv.GENAI_OTEL_TENANT_ID: "acme"},
        {},
    ]
    assert all(
        semconv.USER_ID not in attrs for attrs, _ in otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    )


def test_decorator_on_sync_and_async_functions_and_asyncio_tasks(
    otel: Otel, oai: openai.OpenAI, aoai: openai.AsyncOpenAI
) -> None:
    @attribution(feature="sync-feature")
    def sync_work() -> None:
        oai.chat.completions.create(model=MODEL, messages=MESSAGES)

    @attribution(feature="async-feature", user_id="u-2")
    async def async_work() -> None:
        # tasks created in scope inherit the attribution
        await asyncio.gather(
            *(aoai.chat.completions.create(model=MODEL, messages=MESSAGES) for _ in range(2))
        )

    sync_work()
    asyncio.run(async_work())
    assert _attribution_of(otel) == [
        {semconv.GENAI_OTEL_FEATURE: "sync-feature"},
        {semconv.GENAI_OTEL_FEATURE: "async-feature", semconv.USER_ID: "u-2"},
        {semconv.GENAI_OTEL_FEATURE: "async-feature", semconv.USER_ID: "u-2"},
    ]


def test_thread_pool_needs_the_context_carried(otel: Otel, oai: openai.OpenAI) -> None:
    def work() -> None:
        oai.chat.completions.create(model=MODEL, messages=MESSAGES)

    with attribution(user_id="u-3"), ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(in_current_context(work)).result()
        pool.submit(work).result()  # a bare thread starts with an empty context
    assert _attribution_of(otel) == [{semconv.USER_ID: "u-3"}, {}]


def test_evaluation_on_the_current_span(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request"):
        record_evaluation("helpfulness", 8, label="good", response_id="chatcmpl-1", explanation="quoted text")
    (span,) = otel.spans()
    (event,) = span.events
    assert event.name == semconv.EVENT_EVALUATION_RESULT
    assert dict(event.attributes or {}) == {
        semconv.GEN_AI_EVALUATION_NAME: "helpfulness",
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: 8.0,
        semconv.GEN_AI_EVALUATION_SCORE_LABEL: "good",
        semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1",
    }  # no explanation: content capture is off


def test_evaluation_without_a_span_starts_a_short_internal_one(otel: Otel, monkeypatch) -> None:
    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    record_evaluation(
        "faithfulness",
        6.5,
        explanation="cites the source",
        provider="openai",
        model=MODEL,
        tracer_provider=otel.tracer_provider,
    )
    (span,) = otel.spans()
    assert span.name == "evaluate faithfulness"
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
    }
    (event,) = span.events
    assert event.attributes is not None
    assert event.attributes[semconv.GEN_AI_EVALUATION_SCORE_VALUE] == 6.5
    assert event.attributes[semconv.GEN_AI_EVALUATION_EXPLANATION] == "cites the source"


def test_evaluation_inside_an_application_span_names_the_judged_call(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request"):
        record_evaluation("helpfulness", 7.5, provider="anthropic", model="claude-sonnet-4-5")
    (span,) = otel.spans()
    assert span.name == "handle request"
    (event,) = span.events
    assert dict(event.attributes or {}) == {
        semconv.GEN_AI_EVALUATION_NAME: "helpfulness",
        semconv.GEN_AI_EVALUATION_SCORE_VALUE: 7.5,
        semconv.GEN_AI_PROVIDER_NAME: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
    }


@pytest.mark.parametrize("score", [-0.1, 10.5, float("nan")])
def test_evaluation_scores_outside_0_to_10_are_refused(otel: Otel, score: float) -> None:
    with pytest.raises(ValueError, match=r"0\.0-10\.0"):
        record_evaluation("x", score)
    assert otel.spans() == []
