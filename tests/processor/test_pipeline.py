"""Recognising spans from each instrumentation, normalising tokens, bad input, pass-through."""

from __future__ import annotations

import math

import pytest

from genai_otel import semconv as sc

from .helpers import (
    T_2025_07_01,
    attributes_of,
    enrich_one,
    make_pipeline,
    make_request,
    make_span,
    run,
    samples,
    spans_of,
)

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS


def test_non_genai_spans_are_forwarded_byte_for_byte() -> None:
    pipeline = make_pipeline()
    payload = make_request(
        [make_span({"http.request.method": "GET", "url.full": "https://x/gen_ai."}, name="GET")]
    )

    assert run(pipeline, payload) is payload
    assert pipeline.registry.received == {"genai": 0, "other": 1}


def test_untouched_spans_keep_their_bytes_next_to_an_enriched_one() -> None:
    pipeline = make_pipeline()
    plain = make_span({"db.system": "postgresql"}, name="SELECT")
    genai = make_span({sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 10, OUT: 5})
    out_plain, out_genai = spans_of(run(pipeline, make_request([plain, genai])))

    assert out_plain.SerializeToString() == plain.SerializeToString()
    assert attributes_of(out_genai)[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        10 * 2.5e-6 + 5 * 10e-6, abs=1e-9
    )
    assert out_genai.trace_id == genai.trace_id and out_genai.name == genai.name


def test_openllmetry_span_is_normalised_and_its_current_names_added() -> None:
    enriched = enrich_one(
        {
            sc.LEGACY_GEN_AI_SYSTEM: "Anthropic",
            sc.OPENLLMETRY_REQUEST_TYPE: "chat",
            sc.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku-latest",
            sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 1000,  # includes the cache tokens, as OpenLLMetry reports
            sc.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 100,
            sc.OPENLLMETRY_USAGE_CACHE_READ_INPUT_TOKENS: 500,
            sc.OPENLLMETRY_USAGE_CACHE_CREATION_INPUT_TOKENS: 100,
            sc.OPENLLMETRY_USAGE_TOTAL_TOKENS: 1100,
        }
    )
    assert enriched[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert enriched[IN] == 1000
    assert enriched[OUT] == 100
    assert enriched[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 500
    assert enriched[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 100
    # haiku: 400 * 0.8 + 500 * 0.08 + 100 * 1 + 100 * 4 (per million)
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.00086, abs=1e-9)


def test_openlit_anthropic_input_excludes_cache_so_it_is_added_once() -> None:
    enriched = enrich_one(
        {
            sc.LEGACY_GEN_AI_SYSTEM: "anthropic",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku-latest",
            IN: 400,  # Anthropic's usage.input_tokens: the uncached part only
            OUT: 100,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 300,
        },
        scope="openlit.otel.tracing",
    )
    # 400 * 0.8 + 300 * 0.08 + 100 * 4: the 300 cached tokens counted once, at the cache price
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.000744, abs=1e-9)


def test_cache_larger_than_input_means_input_excluded_it() -> None:
    pipeline = make_pipeline()
    enrich_one(
        {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 100, OUT: 10,
         sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 900},
        pipeline,
    )  # fmt: skip
    (stats,) = pipeline.registry.series.values()
    assert stats.tokens == [1000, 10, 900, 0, 0]


def test_reasoning_reported_beside_output_is_added_to_output() -> None:
    pipeline = make_pipeline()
    enrich_one(
        {sc.GEN_AI_PROVIDER_NAME: "gcp.gemini", sc.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash", IN: 10, OUT: 5,
         sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 50},
        pipeline,
    )  # fmt: skip
    (stats,) = pipeline.registry.series.values()
    assert stats.tokens == [10, 55, 0, 0, 50]


OPENLIT_GPT_4O = {sc.LEGACY_GEN_AI_SYSTEM: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1000, OUT: 1000}
GPT_4O_PRICE = 1000 * 2.5e-6 + 1000 * 10e-6  # the maintained table's price of 1000 in, 1000 out


@pytest.mark.parametrize("openlit_estimate", [0.5, 0.0])
def test_openlit_estimate_is_repriced_and_kept_for_comparison(openlit_estimate: float) -> None:
    pipeline = make_pipeline()
    enriched = enrich_one({**OPENLIT_GPT_4O, sc.OPENLIT_USAGE_COST: openlit_estimate}, pipeline)
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(GPT_4O_PRICE, abs=1e-9)
    assert enriched[sc.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert enriched[sc.GENAI_OTEL_COST_REPORTED_AMOUNT] == openlit_estimate
    assert enriched[sc.OPENLIT_USAGE_COST] == openlit_estimate
    assert sc.GENAI_OTEL_COST_PRICE_TABLE in enriched
    (stats,) = pipeline.registry.series.values()
    assert stats.cost / 2**32 == pytest.approx(GPT_4O_PRICE, abs=1e-9)


def test_trust_all_keeps_an_instrumentations_estimate() -> None:
    pipeline = make_pipeline()
    pipeline.trust_reported_cost = "all"
    enriched = enrich_one({**OPENLIT_GPT_4O, sc.OPENLIT_USAGE_COST: 0.5}, pipeline)
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.5
    assert enriched[sc.GEN_AI_USAGE_COST_SOURCE] == "provider"
    assert sc.GENAI_OTEL_COST_PRICE_TABLE not in enriched
    assert sc.GENAI_OTEL_COST_REPORTED_AMOUNT not in enriched
    (stats,) = pipeline.registry.series.values()
    assert stats.cost == 0.5 * 2**32


@pytest.mark.parametrize("policy", ["provider", "all", "none"])
def test_a_reported_zero_with_tokens_is_never_the_cost(policy: str) -> None:
    pipeline = make_pipeline()
    pipeline.trust_reported_cost = policy
    attributes = {**OPENLIT_GPT_4O, sc.GEN_AI_USAGE_COST_AMOUNT: 0.0, sc.GEN_AI_USAGE_COST_SOURCE: "provider"}
    enriched = enrich_one(attributes, pipeline)
    # the span's own gen_ai.usage.cost.amount stays (first of two equal keys wins downstream):
    # the price is written under genai_otel.cost.amount
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.0
    assert enriched[sc.GENAI_OTEL_COST_AMOUNT] == pytest.approx(GPT_4O_PRICE, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_REPORTED_AMOUNT] == 0.0
    assert sc.GENAI_OTEL_COST_PRICE_TABLE in enriched
    (stats,) = pipeline.registry.series.values()
    assert stats.cost / 2**32 == pytest.approx(GPT_4O_PRICE, abs=1e-9)


@pytest.mark.parametrize(
    ("policy", "source", "kept"),
    [
        ("provider", "provider", True),
        ("provider", "local", False),
        ("all", "local", True),
        ("none", "provider", False),
    ],
)
def test_trust_policy_decides_a_reported_amount(policy: str, source: str, kept: bool) -> None:
    pipeline = make_pipeline()
    pipeline.trust_reported_cost = policy
    attributes = {
        sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1000, OUT: 1000,
        sc.GEN_AI_USAGE_COST_AMOUNT: 0.25, sc.GEN_AI_USAGE_COST_SOURCE: source,
    }  # fmt: skip
    enriched = enrich_one(attributes, pipeline)
    (stats,) = pipeline.registry.series.values()
    if kept:
        assert enriched == attributes
        assert stats.cost == 0.25 * 2**32
    else:
        assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == 0.25
        assert enriched[sc.GENAI_OTEL_COST_REPORTED_AMOUNT] == 0.25
        assert enriched[sc.GENAI_OTEL_COST_AMOUNT] == pytest.approx(GPT_4O_PRICE, abs=1e-9)
        assert stats.cost / 2**32 == pytest.approx(GPT_4O_PRICE, abs=1e-9)


def test_a_repriced_span_passes_a_second_processor_unchanged() -> None:
    request = make_request([make_span({**OPENLIT_GPT_4O, sc.OPENLIT_USAGE_COST: 0.0})], scope="openlit.x")
    once = run(make_pipeline(), request)
    assert run(make_pipeline(), once) == once


STREAM_SPAN = {
    sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "anthropic",
    sc.GEN_AI_REQUEST_MODEL: "claude-haiku-4-5", IN: 9, OUT: 16, sc.GEN_AI_REQUEST_STREAM: True,
    sc.OPENLIT_USAGE_COST: 0.0,
}  # fmt: skip


@pytest.mark.parametrize(
    ("scope", "changes", "incomplete"),
    [
        ("openlit.instrumentation.anthropic", {}, True),
        ("openlit.instrumentation.anthropic", {sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0}, True),
        # cache tokens reported: the stream's last event carried them, nothing was lost
        ("openlit.instrumentation.anthropic", {sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 64}, False),
        ("openlit.instrumentation.anthropic", {sc.GEN_AI_REQUEST_STREAM: False}, False),
        ("opentelemetry.instrumentation.genai.anthropic", {}, False),
    ],
)
def test_openlit_anthropic_stream_usage_is_flagged_incomplete_and_counted(
    scope: str, changes: dict[str, object], incomplete: bool
) -> None:
    pipeline = make_pipeline()
    enriched = enrich_one({**STREAM_SPAN, **changes}, pipeline, scope=scope)
    assert enriched.get(sc.GENAI_OTEL_USAGE_INCOMPLETE) is (True if incomplete else None)
    body = pipeline.registry.expose(False)
    expected = (
        {'{service="checkout",provider="anthropic",model="claude-haiku-4-5"}': "1"} if incomplete else {}
    )
    assert samples(body, sc.PROM_LLM_USAGE_INCOMPLETE) == expected


def test_provider_reported_cost_amount_is_kept_and_nothing_is_added() -> None:
    attributes = {
        sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1000, OUT: 1000,
        sc.GEN_AI_USAGE_COST_AMOUNT: 0.25, sc.GEN_AI_USAGE_COST_SOURCE: "provider",
    }  # fmt: skip
    assert enrich_one(attributes) == attributes


def test_enrichment_is_idempotent() -> None:
    pipeline = make_pipeline()
    attributes = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 10, OUT: 5}
    once = run(pipeline, make_request([make_span(attributes)]))
    twice = run(make_pipeline(), once)
    assert twice == once


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({IN: -5, OUT: 1}, "token_negative"),
        ({IN: "12", OUT: 1}, "token_wrong_type"),
        ({IN: math.nan, OUT: 1}, "token_wrong_type"),
        ({IN: 10**12, OUT: 1}, "token_absurd"),
        ({IN: 1, OUT: 1, sc.GEN_AI_REQUEST_MODEL: "x" * 5000}, "attribute_too_long"),
        ({IN: 1, OUT: 1, sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: -1.0}, "bad_time_to_first_chunk"),
        ({IN: 1, OUT: 1, sc.OPENLIT_USAGE_COST: math.inf}, "bad_reported_cost"),
        ({IN: 1, OUT: 1, sc.GEN_AI_REQUEST_MODEL: ["a", "b"]}, "attribute_wrong_type"),
    ],
)
def test_bad_input_is_counted_by_reason_and_forwarded_unchanged(attributes: dict, reason: str) -> None:
    pipeline = make_pipeline()
    full = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", **attributes}
    payload = make_request([make_span(full)])

    assert run(pipeline, payload) is payload
    assert pipeline.registry.invalid == {reason: 1}
    assert pipeline.registry.series == {}


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({sc.GEN_AI_PROVIDER_NAME: "acme", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}, "unknown_provider"),
        ({sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "no-such-model"}, "unknown_model"),
        ({sc.GEN_AI_PROVIDER_NAME: "openai"}, "no_model"),
    ],
)
def test_unpriced_spans_are_marked_and_counted_never_priced_at_zero(attributes: dict, reason: str) -> None:
    pipeline = make_pipeline()
    enriched = enrich_one({**attributes, IN: 10, OUT: 5}, pipeline)

    assert enriched[sc.GENAI_OTEL_COST_UNPRICED_REASON] == reason
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in enriched
    assert list(pipeline.registry.unpriced.values()) == [1]
    assert next(iter(pipeline.registry.unpriced))[2] == reason


def test_successful_call_without_usage_is_unpriced_but_a_failed_one_is_not() -> None:
    pipeline = make_pipeline()
    base = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    ok = enrich_one(base, pipeline)
    failed = enrich_one({**base, sc.ERROR_TYPE: "RateLimitError"}, pipeline, error=True)

    assert ok[sc.GENAI_OTEL_COST_UNPRICED_REASON] == "no_usage"
    assert sc.GENAI_OTEL_COST_UNPRICED_REASON not in failed
    assert failed[sc.GENAI_OTEL_ERROR_CATEGORY] == "rate_limit"
    (stats,) = pipeline.registry.series.values()
    assert stats.requests == {("ok", ""): 1, ("error", "rate_limit"): 1}


def test_agent_and_tool_spans_are_not_counted_as_model_calls() -> None:
    pipeline = make_pipeline()
    payload = make_request(
        [
            make_span(
                {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 10, OUT: 5}
            )
        ]
    )
    assert run(pipeline, payload) is payload
    assert pipeline.registry.received == {"genai": 0, "other": 1}


def test_evaluation_events_feed_the_quality_histogram() -> None:
    pipeline = make_pipeline()
    span = make_span(
        {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1, OUT: 1},
        events=[
            (
                sc.EVENT_EVALUATION_RESULT,
                {sc.GEN_AI_EVALUATION_NAME: "relevance", sc.GEN_AI_EVALUATION_SCORE_VALUE: 8.5},
            ),
            (
                sc.EVENT_EVALUATION_RESULT,
                {sc.GEN_AI_EVALUATION_NAME: "relevance", sc.GEN_AI_EVALUATION_SCORE_VALUE: 11.0},
            ),
        ],
    )
    run(pipeline, make_request([span]))
    ((labels, histogram),) = pipeline.registry.quality.items()
    assert labels == ("checkout", "openai", "gpt-4o", "relevance")
    assert (histogram.count, histogram.sum) == (1, 8.5)
    assert pipeline.registry.invalid == {"bad_evaluation_score": 1}


def test_malformed_request_is_rejected_before_anything_is_counted() -> None:
    from genai_otel.processors.wire import WireError

    pipeline = make_pipeline()
    with pytest.raises(WireError):
        pipeline.split(b"\x0a\xff\xff\x03garbage")
    assert pipeline.registry.received == {"genai": 0, "other": 0}


def test_status_and_times_are_read_from_spans_with_flags_and_status_message() -> None:
    pipeline = make_pipeline()
    span = make_span({sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1, OUT: 1},
                     error=True, duration_s=2.0)  # fmt: skip
    span.status.message = "boom: upstream said no"
    span.flags = 0x100
    run(pipeline, make_request([span]))
    (stats,) = pipeline.registry.series.values()
    assert stats.requests == {("error", "other"): 1}
    assert stats.duration["error"].sum == 2.0
    assert span.start_time_unix_nano == T_2025_07_01


@pytest.mark.parametrize(
    ("error_type", "category"),
    [
        # Names the processor always read.
        ("RateLimitError", "rate_limit"),
        ("openai.APITimeoutError", "timeout"),
        ("overloaded_error", "provider_down"),
        ("invalid_api_key", "auth"),
        ("JSONDecodeError", "invalid_response"),
        ("BadRequestError", "other"),
        ("content_filter", "content_filter"),  # a category value is its own category
        # Phrases the instrumentation reads in error messages, now read here too (one keyword table).
        ("ContentRefusalError", "content_filter"),
        ("content management policy", "content_filter"),
        ("context window exceeded", "context_window_exceeded"),
        ("too many input tokens", "context_window_exceeded"),
        ("Request exceeds the maximum number of tokens", "context_window_exceeded"),
    ],
)
def test_error_type_is_mapped_to_the_taxonomy(error_type: str, category: str) -> None:
    pipeline = make_pipeline()
    base = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    failed = enrich_one({**base, sc.ERROR_TYPE: error_type}, pipeline, error=True)
    assert failed[sc.GENAI_OTEL_ERROR_CATEGORY] == category
    (stats,) = pipeline.registry.series.values()
    assert stats.requests == {("error", category): 1}
