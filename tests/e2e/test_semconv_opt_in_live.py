"""`OTEL_SEMCONV_STABILITY_OPT_IN` through the local stack: one application under
`opentelemetry-instrument` (environment variables only) run three times, the variable unset,
`gen_ai_latest_experimental` and `gen_ai_latest_experimental/dup`, each as its own service. It
calls the fake provider through the real openai, anthropic (streamed) and google-genai SDKs with
media, cache and reasoning tokens. Through the real collector's Prometheus exporter, Prometheus then shows the
exact series of each setting: the conventions' newer names (the usage counters by
`gen_ai.token.modality`) only under the opt-in, today's names unless only the newer ones are asked
for, and the processor's `llm_*` metrics, read from spans, the same in all three.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from genai_otel.fake_provider import FakeProvider, message_tokens
from genai_otel.stack.query import prometheus_query, prometheus_scalar, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import demo_environment, run_app

PROMPT = "Give me three facts about otters."
P = message_tokens(PROMPT)
SETTINGS = {  # service -> OTEL_SEMCONV_STABILITY_OPT_IN
    "e2e-semconv-default": None,
    "e2e-semconv-latest": "gen_ai_latest_experimental",
    "e2e-semconv-dup": "gen_ai_latest_experimental/dup",
}
CALLS = 3  # one per provider
HEADERS = {
    "openai": {
        "x-fake-input-media-tokens": "image=85,audio=20",
        "x-fake-output-media-tokens": "audio=30",
        "x-fake-cache-read-tokens": "40",
    },
    "anthropic": {
        "x-fake-input-media-tokens": "image=100",
        "x-fake-cache-read-tokens": "10",
        "x-fake-cache-write-tokens": "5",
        "x-fake-reasoning-tokens": "4",
    },
    "gemini": {
        "x-fake-input-media-tokens": "image=258,video=300",
        "x-fake-output-media-tokens": "audio=30",
        "x-fake-cache-read-tokens": "20",
        "x-fake-reasoning-tokens": "5",
    },
}

APP = """
import json, sys
import anthropic, openai
from google import genai

base_url, output = sys.argv[1:3]
headers = json.loads(sys.argv[3])
messages = [{"role": "user", "content": PROMPT}]
usage = {}
completion = openai.OpenAI(max_retries=0).chat.completions.create(
    model="gpt-4o-audio-preview", messages=messages, extra_headers=headers["openai"]
)
usage["openai"] = completion.usage.model_dump(exclude_none=True)
with anthropic.Anthropic(max_retries=0).messages.stream(
    model="claude-haiku-4-5", max_tokens=256, messages=messages, extra_headers=headers["anthropic"]
) as stream:
    message = stream.get_final_message()
usage["anthropic"] = message.usage.model_dump(exclude_none=True)
gemini = genai.Client(api_key="fake-key", http_options={"base_url": base_url})
answer = gemini.models.generate_content(
    model="gemini-2.5-flash", contents=PROMPT, config={"http_options": {"headers": headers["gemini"]}}
)
usage["gemini"] = answer.usage_metadata.model_dump(exclude_none=True, mode="json")
with open(output, "w") as out:
    json.dump(usage, out)
""".replace("PROMPT", repr(PROMPT))

PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
# The usage counters, as the collector's Prometheus exporter names them: dots to underscores, the
# {token} annotation dropped, `_total` for a monotonic sum. By counter, provider and modality.
USAGE_COUNTERS: dict[str, dict[str, dict[str, float]]] = {
    "gen_ai_client_inference_usage_input_tokens_total": {
        "openai": {"text": P + 40, "image": 85, "audio": 20},
        "anthropic": {"unknown": P + 100 + 10 + 5},
        "gcp.gemini": {"text": P + 20, "image": 258, "video": 300},
    },
    "gen_ai_client_inference_usage_output_tokens_total": {
        "openai": {"text": 16, "audio": 30},
        "anthropic": {"text": 20},
        "gcp.gemini": {"text": 16, "audio": 30, "unknown": 5},
    },
    "gen_ai_client_inference_usage_cache_read_input_tokens_total": {
        "openai": {"unknown": 40},
        "anthropic": {"unknown": 10},
        "gcp.gemini": {"text": 20},
    },
    "gen_ai_client_inference_usage_cache_write_input_tokens_total": {
        "openai": {"unknown": 0},
        "anthropic": {"unknown": 5},
        "gcp.gemini": {"unknown": 0},
    },
    "gen_ai_client_inference_usage_reasoning_output_tokens_total": {
        "openai": {"unknown": 0},
        "anthropic": {"text": 4},
        "gcp.gemini": {"unknown": 5},
    },
}
INPUT_TOTALS = {"openai": P + 145, "anthropic": P + 115, "gcp.gemini": P + 578}
OUTPUT_TOTALS = {"openai": 46, "anthropic": 20, "gcp.gemini": 51}
# Every series name each setting must produce (histograms as their _bucket, _count and _sum).
LATEST_NAMES = {
    *USAGE_COUNTERS,
    *(
        f"{base}_{part}"
        for base in (
            "gen_ai_client_inference_duration_seconds",
            "gen_ai_client_inference_operation_input_tokens",
            "gen_ai_client_inference_operation_output_tokens",
            "gen_ai_client_inference_time_to_first_chunk_seconds",
        )
        for part in ("bucket", "count", "sum")
    ),
}
DEFAULT_NAMES = {
    f"{base}_{part}"
    for base in (
        "gen_ai_client_token_usage",
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
    )
    for part in ("bucket", "count", "sum")
}
EXPECTED_NAMES = {
    "e2e-semconv-default": DEFAULT_NAMES,
    "e2e-semconv-latest": LATEST_NAMES,
    "e2e-semconv-dup": DEFAULT_NAMES | LATEST_NAMES,
}


@dataclass(frozen=True)
class Run:
    prometheus: str
    usage: dict[str, dict[str, dict[str, Any]]]  # service -> provider -> the usage its SDK returned


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, require_binaries: Callable[..., None], require_processor: None
) -> Iterator[Run]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp_path = tmp_path_factory.mktemp("semconv-opt-in")
    stack = LocalStack(tmp_path / "run", ports=free_ports(), build_missing=False, scrape_interval="1s")
    try:
        endpoints = stack.start(timeout=60)
        app = tmp_path / "app.py"
        app.write_text(APP)
        usage = {}
        with FakeProvider() as provider:
            for service, opt_in in SETTINGS.items():
                settings = {} if opt_in is None else {"OTEL_SEMCONV_STABILITY_OPT_IN": opt_in}
                env = demo_environment(endpoints, provider.base_url, service, **settings)
                output = tmp_path / f"{service}.json"
                run_app(str(app), provider.base_url, str(output), json.dumps(HEADERS), env=env)
                usage[service] = json.loads(output.read_text())
        yield Run(endpoints["prometheus_url"], usage)
    finally:
        stack.stop()


def _series(run: Run, service: str) -> list[dict[str, Any]]:
    """Every gen_ai_client series of `service` once all its calls arrived (the exporter's `job`
    label is the service name)."""
    wait_for(
        lambda: prometheus_scalar(
            run.prometheus,
            f'sum(gen_ai_client_inference_duration_seconds_count{{job="{service}"}}) >= {CALLS}'
            f' or sum(gen_ai_client_operation_duration_seconds_count{{job="{service}"}}) >= {CALLS}',
        ),
        timeout=60,
        what=f"{service}'s SDK metrics in Prometheus",
    )
    return prometheus_query(run.prometheus, f'{{__name__=~"gen_ai_client_.+",job="{service}"}}')


def _value(series: list[dict[str, Any]], name: str, **labels: str) -> float:
    (value,) = [
        float(s["value"][1])
        for s in series
        if s["metric"]["__name__"] == name and all(s["metric"].get(k) == v for k, v in labels.items())
    ]
    return value


def test_the_sdks_reported_the_media_tokens(run: Run) -> None:
    for usage in run.usage.values():
        assert usage["openai"]["prompt_tokens"] == INPUT_TOTALS["openai"]
        assert usage["openai"]["prompt_tokens_details"]["audio_tokens"] == 20
        assert usage["gemini"]["prompt_tokens_details"] == [
            {"modality": "TEXT", "token_count": P + 20},
            {"modality": "IMAGE", "token_count": 258},
            {"modality": "VIDEO", "token_count": 300},
        ]


@pytest.mark.parametrize("service", list(SETTINGS))
def test_each_setting_reaches_prometheus_under_its_metric_names(run: Run, service: str) -> None:
    series = _series(run, service)
    assert {s["metric"]["__name__"] for s in series} == EXPECTED_NAMES[service]


@pytest.mark.parametrize("service", ["e2e-semconv-latest", "e2e-semconv-dup"])
def test_usage_counters_by_modality_in_prometheus(run: Run, service: str) -> None:
    series = _series(run, service)
    for name, by_provider in USAGE_COUNTERS.items():
        found: dict[str, dict[str, float]] = {}
        for s in series:
            metric = s["metric"]
            if metric["__name__"] == name:
                assert "error_type" not in metric
                modalities = found.setdefault(metric["gen_ai_provider_name"], {})
                modalities[metric["gen_ai_token_modality"]] = float(s["value"][1])
        assert found == by_provider, name
    for provider in PROVIDERS.values():
        for direction, totals in (("input", INPUT_TOTALS), ("output", OUTPUT_TOTALS)):
            histogram = f"gen_ai_client_inference_operation_{direction}_tokens"
            assert _value(series, f"{histogram}_sum", gen_ai_provider_name=provider) == totals[provider]
            assert _value(series, f"{histogram}_count", gen_ai_provider_name=provider) == 1
        duration = "gen_ai_client_inference_duration_seconds_count"
        assert _value(series, duration, gen_ai_provider_name=provider) == 1
    # the streamed call, alone, has a time to first chunk
    assert {
        s["metric"]["gen_ai_provider_name"]: float(s["value"][1])
        for s in series
        if s["metric"]["__name__"] == "gen_ai_client_inference_time_to_first_chunk_seconds_count"
    } == {"anthropic": 1.0}


def test_dup_repeats_todays_names_with_todays_values(run: Run) -> None:
    default, dup = _series(run, "e2e-semconv-default"), _series(run, "e2e-semconv-dup")

    def todays(series: list[dict[str, Any]]) -> dict[tuple[str, str, str], float]:
        return {
            (
                s["metric"]["__name__"],
                s["metric"]["gen_ai_provider_name"],
                s["metric"].get("gen_ai_token_type", ""),
            ): float(s["value"][1])
            for s in series
            if s["metric"]["__name__"]
            in ("gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_count")
        }

    assert todays(dup) == todays(default)
    assert (
        todays(default)[("gen_ai_client_token_usage_sum", "gcp.gemini", "input")]
        == INPUT_TOTALS["gcp.gemini"]
    )


def test_the_processors_llm_metrics_are_the_same_in_every_setting(run: Run) -> None:
    def derived(service: str) -> dict[str, float]:
        wait_for(
            lambda: prometheus_scalar(
                run.prometheus, f'sum(llm_requests_total{{service="{service}"}}) >= {CALLS}'
            ),
            timeout=60,
            what=f"{service}'s calls in the processor's metrics",
        )
        seen: dict[str, float] = {}
        for expr in (
            f'sum by (provider, status) (llm_requests_total{{service="{service}"}})',
            f'sum by (provider, token_type) (llm_tokens_total{{service="{service}"}})',
            f'sum by (provider) (llm_cost_usd_total{{service="{service}"}})',
            f'sum by (provider) (llm_request_duration_seconds_count{{service="{service}"}})',
        ):
            name = expr.split("(")[2].split("{")[0]
            for sample in prometheus_query(run.prometheus, expr):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample["metric"].items()))
                seen[f"{name}{{{labels}}}"] = float(sample["value"][1])
        return seen

    default = derived("e2e-semconv-default")
    assert default == derived("e2e-semconv-latest") == derived("e2e-semconv-dup")
    assert {k: v for k, v in default.items() if k.startswith("llm_tokens_total") and "input" in k} == {
        f"llm_tokens_total{{provider={provider},token_type=input}}": float(total)
        for provider, total in INPUT_TOTALS.items()
    }
