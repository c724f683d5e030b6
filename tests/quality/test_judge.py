"""The LLM-as-judge hook: parsing, and the real openai SDK against the fake provider over HTTP.

Assumption of the HTTP tests: the fake provider answers a `response_format` json_schema request
with the schema's required properties at their `minimum` (see genai_otel/fake_provider/README.md),
so a structured judge reply is exactly `{"score":0}`; a chosen score other than 0 cannot be
produced over HTTP, and the text parse paths are covered by `parse_score`'s own tests.
"""

from __future__ import annotations

import random

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel.fake_provider import FakeProvider
from genai_otel.quality import Judge, JudgeStats, Rubric, parse_score
from genai_otel.quality.judge import SCORE_SCHEMA

RUBRIC = Rubric("helpfulness", "Does the answer resolve the question, correctly and concisely?")


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 8}', 8.0),
        ('```json\n{"score": 7.5, "reason": "ok"}\n```', 7.5),
        ("Score: 6", 6.0),
        ("I would rate this 9/10 overall, on a 0 to 10 scale.", 9.0),
        ("  4  ", 4.0),
        ("The answer earns a 3.", 3.0),
        ("10", 10.0),
        ('{"score": 11}', None),
        ('{"score": "high"}', None),
        ('{"score": true}', None),
        ("between 6 and 8", None),
        ("the fox ran far", None),
        ("", None),
        (None, None),
        ("-2", None),
    ],
)
def test_parse_score(reply: str | None, score: float | None) -> None:
    assert parse_score(reply) == score


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _client(provider: FakeProvider, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=provider.openai_base_url, api_key="x", max_retries=0, default_headers=headers
    )


def test_judge_scores_over_http_and_records_the_evaluation(
    fake_provider: FakeProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    judge = Judge(_client(fake_provider), "gpt-4o-mini", RUBRIC, tracer_provider=tracer_provider)
    score = judge.score(
        "Refunds?", "Within 30 days.", provider="anthropic", model="claude-sonnet-4-5", response_id="msg_1"
    )
    assert score == 0.0
    assert judge.stats == JudgeStats(recorded=1)
    (request,) = fake_provider.requests
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"]["json_schema"]["schema"] == SCORE_SCHEMA
    assert RUBRIC.criteria in request.body["messages"][0]["content"]
    assert "Within 30 days." in request.body["messages"][1]["content"]
    (span,) = exporter.get_finished_spans()
    assert span.name == "evaluate helpfulness"
    (event,) = span.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == {
        "gen_ai.evaluation.name": "helpfulness",
        "gen_ai.evaluation.score.value": 0.0,
        "gen_ai.evaluation.score.label": "fail",
        "gen_ai.response.id": "msg_1",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
    }


def test_unparseable_reply_is_counted_and_skipped(
    fake_provider: FakeProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # content_filter_finish: a 200 with four words of plain text instead of the JSON asked for
    client = _client(fake_provider, **{"x-fake-scenario": "content_filter_finish"})
    judge = Judge(client, "gpt-4o-mini", RUBRIC, tracer_provider=tracer_provider)
    assert judge.score("q", "a", provider="openai", model="gpt-4o") is None
    assert judge.stats == JudgeStats(unparseable=1)
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("scenario", ["server_error", "rate_limit", "invalid_json"])
def test_a_failing_judge_never_raises_into_the_app(
    fake_provider: FakeProvider,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
    scenario: str,
) -> None:
    judge = Judge(
        _client(fake_provider, **{"x-fake-scenario": scenario}),
        "gpt-4o-mini",
        RUBRIC,
        tracer_provider=tracer_provider,
    )
    assert judge.score("q", "a", provider="openai", model="gpt-4o") is None
    assert judge.stats == JudgeStats(failed=1)
    assert exporter.get_finished_spans() == ()


def test_sampling_is_seeded_and_unsampled_answers_cost_no_call(
    fake_provider: FakeProvider, tracer_provider: TracerProvider
) -> None:
    judge = Judge(
        _client(fake_provider),
        "gpt-4o-mini",
        RUBRIC,
        sample_rate=0.25,
        seed=7,
        tracer_provider=tracer_provider,
    )
    results = [judge.score("q", "a", provider="openai", model="gpt-4o") for _ in range(40)]
    draws = random.Random(7)
    expected_sampled = sum(draws.random() < 0.25 for _ in range(40))
    assert 0 < expected_sampled < 40
    assert judge.stats == JudgeStats(not_sampled=40 - expected_sampled, recorded=expected_sampled)
    assert results.count(0.0) == expected_sampled == len(fake_provider.requests)
    never = Judge(_client(fake_provider), "gpt-4o-mini", RUBRIC, sample_rate=0.0)
    fake_provider.clear_requests()
    assert never.score("q", "a", provider="openai", model="gpt-4o") is None
    assert fake_provider.requests == []


def test_sample_rate_outside_0_1_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"sample_rate must be within 0-1, got 1\.5"):
        Judge(object(), "m", RUBRIC, sample_rate=1.5)
