"""The /metrics exposition, asserted exactly, and the label caps."""

from __future__ import annotations

from genai_otel import semconv as sc

from .helpers import make_pipeline, make_request, make_span, run, samples

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS
BASE = 'service="checkout",provider="openai",model="gpt-4o",operation="chat"'


def _traffic() -> str:
    pipeline = make_pipeline()
    spans = [
        make_span({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                   sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1000, OUT: 500,
                   sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 200, sc.USER_ID: "alice",
                   sc.GENAI_OTEL_FEATURE: "search", sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25},
                  duration_s=1.25, trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c")),
        make_span({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai",
                   sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.ERROR_TYPE: "openai.RateLimitError"},
                  duration_s=0.1, error=True),
    ]  # fmt: skip
    run(pipeline, make_request(spans))
    return pipeline.registry.expose(openmetrics=False), pipeline.registry.expose(openmetrics=True)  # type: ignore[return-value]


def test_classic_text_exposition_exact() -> None:
    text, _ = _traffic()
    assert samples(text, sc.PROM_LLM_REQUESTS) == {
        "{" + BASE + ',status="error",error_type="rate_limit"}': "1",
        "{" + BASE + ',status="ok",error_type=""}': "1",
    }
    assert samples(text, sc.PROM_LLM_TOKENS) == {
        "{" + BASE + ',token_type="input"}': "1000",
        "{" + BASE + ',token_type="output"}': "500",
        "{" + BASE + ',token_type="cache_read"}': "200",
    }
    # 800 * 2.5 + 200 * 1.25 + 500 * 10 per million = 0.00725, in 2**-32 quanta
    cost = samples(text, sc.PROM_LLM_COST)
    assert cost == {"{" + BASE + "}": repr(round(0.00725 * 2**32) / 2**32)}
    breakdown = samples(text, sc.PROM_LLM_COST_BREAKDOWN)
    assert {k.split("cost_type=")[1]: float(v) for k, v in breakdown.items()} == {
        '"input"}': round(0.002 * 2**32) / 2**32,
        '"output"}': round(0.005 * 2**32) / 2**32,
        '"cache_read"}': round(0.00025 * 2**32) / 2**32,
        '"cache_write"}': 0.0,
    }
    assert sum(float(v) for v in breakdown.values()) == float(cost["{" + BASE + "}"])
    assert samples(text, sc.PROM_LLM_CACHE_SAVINGS) == {
        '{service="checkout",provider="openai",model="gpt-4o"}': repr(round(0.00025 * 2**32) / 2**32)
    }
    duration = samples(text, sc.PROM_LLM_REQUEST_DURATION + "_bucket")
    assert duration["{" + BASE + ',status="ok",le="0.64"}'] == "0"
    assert duration["{" + BASE + ',status="ok",le="1.28"}'] == "1"
    assert duration["{" + BASE + ',status="ok",le="+Inf"}'] == "1"
    assert duration["{" + BASE + ',status="error",le="0.16"}'] == "1"
    assert samples(text, sc.PROM_LLM_REQUEST_DURATION + "_sum")["{" + BASE + ',status="ok"}'] == "1.25"
    assert samples(text, sc.PROM_LLM_TIME_TO_FIRST_CHUNK + "_count") == {"{" + BASE + "}": "1"}
    # 500 output tokens over the 1.0 s after the first chunk
    assert samples(text, sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND + "_sum") == {"{" + BASE + "}": "500.0"}
    assert samples(text, sc.PROM_LLM_USER_COST) == {
        '{service="checkout",user="alice"}': cost["{" + BASE + "}"]
    }
    assert samples(text, sc.PROM_LLM_FEATURE_COST) == {
        '{service="checkout",feature="search"}': cost["{" + BASE + "}"]
    }
    assert samples(text, sc.PROM_PROCESSOR_SPANS_RECEIVED) == {'{kind="genai"}': "2", '{kind="other"}': "0"}
    assert samples(text, sc.PROM_PROCESSOR_PRICE_TABLE_INFO) == {'{version="genai-prices 0.2.3"}': "1"}
    assert "# TYPE llm_requests_total counter" in text
    assert "# EOF" not in text


def test_openmetrics_exposition_has_exemplars_with_trace_ids_and_eof() -> None:
    _, om = _traffic()
    assert "# TYPE llm_requests counter" in om
    assert om.endswith("# EOF\n")
    bucket = next(line for line in om.splitlines() if line.startswith(
        "llm_request_duration_seconds_bucket{" + BASE + ',status="ok",le="1.28"}'))  # fmt: skip
    assert bucket.startswith("llm_request_duration_seconds_bucket{" + BASE + ',status="ok",le="1.28"} 1 # ')
    assert '{trace_id="0af7651916cd43dd8448eb211c80319c"} 1.25 ' in bucket
    cost_line = next(line for line in om.splitlines() if line.startswith("llm_cost_usd_total{"))
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"}' in cost_line


def test_label_caps_send_new_values_to_other_and_count_the_overflow() -> None:
    pipeline = make_pipeline(top_users=2)
    spans = [
        make_span({sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o", IN: 1000, OUT: 0,
                   sc.USER_ID: user})
        for user in ("u1", "u2", "u3", "u4", "u1")
    ]  # fmt: skip
    run(pipeline, make_request(spans))
    text = pipeline.registry.expose(openmetrics=False)
    each = repr(round(0.0025 * 2**32) / 2**32)
    assert samples(text, sc.PROM_LLM_USER_COST) == {
        '{service="checkout",user="u1"}': repr(2 * round(0.0025 * 2**32) / 2**32),
        '{service="checkout",user="u2"}': each,
        '{service="checkout",user="other"}': repr(2 * round(0.0025 * 2**32) / 2**32),
    }
    assert samples(text, sc.PROM_PROCESSOR_SERIES_OVERFLOW) == {'{label="user"}': "2"}


def test_labels_outside_the_allow_list_are_aggregated_away() -> None:
    from genai_otel.processors.metrics import ALL_LABELS

    pipeline = make_pipeline(allowed=[label for label in ALL_LABELS if label != sc.LABEL_MODEL])
    for model in ("gpt-4o", "gpt-4o-mini"):
        attributes = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: model, IN: 1, OUT: 1}
        run(pipeline, make_request([make_span(attributes)]))
    requests = samples(pipeline.registry.expose(openmetrics=False), sc.PROM_LLM_REQUESTS)
    assert requests == {
        '{service="checkout",provider="openai",operation="unknown",status="ok",error_type=""}': "2"
    }


class _SetClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_ERROR_SPAN = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.ERROR_TYPE: "openai.RateLimitError",
}


def test_openmetrics_exposition_exact_with_created_samples() -> None:
    clock = _SetClock(1_750_000_000.0)
    pipeline = make_pipeline(exemplars=False, clock=clock)
    clock.now = 1_750_000_100.125
    run(pipeline, make_request([make_span(_ERROR_SPAN, duration_s=0.1, error=True)]))
    labels = BASE + ',status="error"'
    buckets = "\n".join(
        f"llm_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
        for le, n in [("0.01", 0), ("0.02", 0), ("0.04", 0), ("0.08", 0), ("0.16", 1), ("0.32", 1),
                      ("0.64", 1), ("1.28", 1), ("2.56", 1), ("5.12", 1), ("10.24", 1), ("20.48", 1),
                      ("40.96", 1), ("81.92", 1), ("+Inf", 1)]
    )  # fmt: skip
    empty_families = "\n".join(
        f"# HELP {name} {help_}\n# TYPE {name} {kind}"
        for name, kind, help_ in [
            ("llm_cost_usd", "counter", "Cost of priced calls in USD."),
            ("llm_cost_breakdown_usd", "counter", "Locally priced cost in USD by token type."),
            ("llm_cache_savings_usd", "counter", "USD saved by cache reads against the input price."),
        ]
    )
    assert (
        pipeline.registry.expose(openmetrics=True)
        == f"""\
# HELP llm_requests GenAI model calls, by outcome.
# TYPE llm_requests counter
llm_requests_total{{{labels},error_type="rate_limit"}} 1
llm_requests_created{{{labels},error_type="rate_limit"}} 1750000100.125
# HELP llm_tokens Tokens; input includes cache, output includes reasoning.
# TYPE llm_tokens counter
llm_tokens_total{{{BASE},token_type="input"}} 0
llm_tokens_created{{{BASE},token_type="input"}} 1750000100.125
llm_tokens_total{{{BASE},token_type="output"}} 0
llm_tokens_created{{{BASE},token_type="output"}} 1750000100.125
{empty_families}
# HELP llm_request_duration_seconds Model call duration in seconds.
# TYPE llm_request_duration_seconds histogram
{buckets}
llm_request_duration_seconds_sum{{{labels}}} 0.1
llm_request_duration_seconds_count{{{labels}}} 1
llm_request_duration_seconds_created{{{labels}}} 1750000100.125
# HELP llm_time_to_first_chunk_seconds Time to the first streamed chunk in seconds.
# TYPE llm_time_to_first_chunk_seconds histogram
# HELP llm_cost_per_request_usd Cost of one priced call in USD.
# TYPE llm_cost_per_request_usd histogram
# HELP llm_output_tokens_per_second Output tokens per generating second.
# TYPE llm_output_tokens_per_second histogram
# HELP llm_unpriced_requests Calls that could not be priced, by reason.
# TYPE llm_unpriced_requests counter
# HELP llm_usage_incomplete Calls whose usage is known incomplete: their cost is a lower bound.
# TYPE llm_usage_incomplete counter
# HELP llm_user_cost_usd Cost in USD per user (top-N, the rest as other).
# TYPE llm_user_cost_usd counter
# HELP llm_feature_cost_usd Cost in USD per feature (top-N, the rest as other).
# TYPE llm_feature_cost_usd counter
# HELP llm_quality_score Evaluation scores on a 0-10 scale.
# TYPE llm_quality_score histogram
# HELP llm_safety_evaluations Results of safety evaluations (hallucination, toxicity).
# TYPE llm_safety_evaluations counter
# HELP llm_safety_flagged Results of safety evaluations that flagged the response.
# TYPE llm_safety_flagged counter
# HELP llm_tool_calls Tool executions (execute_tool spans), by outcome.
# TYPE llm_tool_calls counter
# HELP llm_tool_executions Tools this service served (SERVER execute_tool spans), by outcome.
# TYPE llm_tool_executions counter
# HELP llm_agent_run_duration_seconds Agent run (invoke_agent span) duration in seconds.
# TYPE llm_agent_run_duration_seconds histogram
# HELP llm_guardrail_evaluations Guardrail verdicts (apply_guardrail spans), by tripwire.
# TYPE llm_guardrail_evaluations counter
# HELP genai_otel_processor_spans_received Spans accepted, by kind.
# TYPE genai_otel_processor_spans_received counter
genai_otel_processor_spans_received_total{{kind="genai"}} 1
genai_otel_processor_spans_received_created{{kind="genai"}} 1750000000.000
genai_otel_processor_spans_received_total{{kind="other"}} 0
genai_otel_processor_spans_received_created{{kind="other"}} 1750000000.000
# HELP genai_otel_processor_spans_redelivered Copies of spans received before, counted nothing again, by kind.
# TYPE genai_otel_processor_spans_redelivered counter
genai_otel_processor_spans_redelivered_total{{kind="genai"}} 0
genai_otel_processor_spans_redelivered_created{{kind="genai"}} 1750000000.000
genai_otel_processor_spans_redelivered_total{{kind="other"}} 0
genai_otel_processor_spans_redelivered_created{{kind="other"}} 1750000000.000
# HELP genai_otel_processor_spans_forwarded Spans the next hop acknowledged.
# TYPE genai_otel_processor_spans_forwarded counter
genai_otel_processor_spans_forwarded_total 0
genai_otel_processor_spans_forwarded_created 1750000000.000
# HELP genai_otel_processor_spans_invalid GenAI spans forwarded unchanged, by reason.
# TYPE genai_otel_processor_spans_invalid counter
# HELP genai_otel_processor_spans_dropped Accepted spans never forwarded, by reason.
# TYPE genai_otel_processor_spans_dropped counter
# HELP genai_otel_processor_requests_rejected Export requests refused, by reason.
# TYPE genai_otel_processor_requests_rejected counter
# HELP genai_otel_processor_export_failures Failed forwarding attempts, by reason.
# TYPE genai_otel_processor_export_failures counter
# HELP genai_otel_processor_queue_spans Spans accepted and not yet forwarded.
# TYPE genai_otel_processor_queue_spans gauge
genai_otel_processor_queue_spans 0
# HELP genai_otel_processor_queue_capacity_spans Queue capacity in spans.
# TYPE genai_otel_processor_queue_capacity_spans gauge
genai_otel_processor_queue_capacity_spans 0
# HELP genai_otel_processor_duplicate_spans Spans of a call another span was counted for, by scope pair.
# TYPE genai_otel_processor_duplicate_spans counter
# HELP genai_otel_processor_label_overflow Label values replaced by other, by label.
# TYPE genai_otel_processor_label_overflow counter
# HELP genai_otel_processor_price_table_info The price table in use.
# TYPE genai_otel_processor_price_table_info gauge
genai_otel_processor_price_table_info{{version="genai-prices 0.2.3"}} 1
# HELP genai_otel_processor_info Processor build (accelerated: C request walk in use).
# TYPE genai_otel_processor_info gauge
genai_otel_processor_info{{accelerated="{str(pipeline.scanner.accelerated).lower()}"}} 1
# EOF
"""
    )


def test_a_series_created_later_carries_its_own_created_time_and_classic_text_has_none() -> None:
    clock = _SetClock(1_750_000_000.0)
    pipeline = make_pipeline(top_users=1, clock=clock)
    ok = {**_ERROR_SPAN, IN: 1000, OUT: 10, sc.USER_ID: "u1"}
    del ok[sc.ERROR_TYPE]
    run(pipeline, make_request([make_span(ok)]))
    clock.now = 1_750_003_600.5  # an hour later: the first rate-limit error, a cache read, a new user
    later = [make_span(_ERROR_SPAN, error=True),
             make_span({**ok, sc.USER_ID: "u2", sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 500})]  # fmt: skip
    run(pipeline, make_request(later))
    registry = pipeline.registry
    om = registry.expose(openmetrics=True)
    assert samples(om, "llm_requests_created") == {
        "{" + BASE + ',status="error",error_type="rate_limit"}': "1750003600.500",
        "{" + BASE + ',status="ok",error_type=""}': "1750000000.000",
    }
    assert samples(om, "llm_tokens_created") == {
        "{" + BASE + ',token_type="input"}': "1750000000.000",
        "{" + BASE + ',token_type="output"}': "1750000000.000",
        "{" + BASE + ',token_type="cache_read"}': "1750003600.500",
    }
    assert samples(om, "llm_cache_savings_usd_created") == {
        '{service="checkout",provider="openai",model="gpt-4o"}': "1750003600.500"
    }
    assert samples(om, "llm_user_cost_usd_created") == {
        '{service="checkout",user="u1"}': "1750000000.000",
        '{service="checkout",user="other"}': "1750003600.500",
    }
    assert samples(om, "genai_otel_processor_label_overflow_created") == {'{label="user"}': "1750003600.500"}
    assert samples(om, "llm_request_duration_seconds_created") == {
        "{" + BASE + ',status="error"}': "1750003600.500",
        "{" + BASE + ',status="ok"}': "1750000000.000",
    }
    assert "_created" not in registry.expose(openmetrics=False)
