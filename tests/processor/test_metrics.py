"""The /metrics exposition, asserted exactly, and the label caps."""

from __future__ import annotations

from genai_otel.instrumentation import semconv as sc

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
