"""`OTEL_SEMCONV_STABILITY_OPT_IN`: which GenAI client metric names the instrumentation emits.

The real `openai` SDK over real HTTP to the fake provider, in each of the three settings: today's
names (unset), the conventions' newer inference names only (`gen_ai_latest_experimental`), both
(`gen_ai_latest_experimental/dup`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from genai_otel.instrumentation._core import metric_names_from_env
from opentelemetry.sdk.metrics.export import Histogram, Sum
from otel_fixtures import Otel, port_of, run_instrumented_app

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider
from genai_otel.semconv import MetricNames

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the tests"}]
LATEST = "gen_ai_latest_experimental"
DUP = "gen_ai_latest_experimental/dup"
HEADERS = {
    "x-fake-cache-read-tokens": "40",
    "x-fake-cache-write-tokens": "8",
    "x-fake-reasoning-tokens": "5",
}
OLD_NAMES = {semconv.METRIC_CLIENT_TOKEN_USAGE, semconv.METRIC_CLIENT_OPERATION_DURATION}
NEW_NAMES = {
    semconv.METRIC_CLIENT_INFERENCE_DURATION,
    semconv.METRIC_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS,
    semconv.METRIC_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS,
}


def _metrics(otel: Otel) -> dict[str, tuple[str, Any]]:
    """name -> (unit, data) of every metric the reader holds."""
    data = otel.reader.get_metrics_data()
    found: dict[str, tuple[str, Any]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                assert metric.name not in found
                found[metric.name] = (metric.unit or "", metric.data)
    return found


def _one_point(metrics: dict[str, tuple[str, Any]], name: str) -> tuple[str, Any, dict[str, Any], Any]:
    unit, data = metrics[name]
    (point,) = data.data_points
    return unit, data, dict(point.attributes or {}), point


def _readme_streamed_chat_names(opt_in: str | None) -> set[str]:
    """The metrics the README's table says a streamed chat call emits under `opt_in`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("<!-- table:semconv-opt-in -->", 1)[1].split("<!-- /table:semconv-opt-in -->", 1)[0]
    column = {None: 1, LATEST: 2, DUP: 3}[opt_in]
    names: set[str] = set()
    for row in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if cells[column] not in {"—", "embeddings only"}:
            names.add(cells[0].split("`")[1])
    return names


def _opt_in(otel: Otel, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, raising=False)
    else:
        monkeypatch.setenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, value)
    otel.reinstrument()  # the setting is read at instrument time


def _base(provider: FakeProvider, response_model: str) -> dict[str, Any]:
    return {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_MODEL: response_model,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
    }


def _check_new(
    metrics: dict[str, tuple[str, Any]], base: dict[str, Any], tokens: tuple[int, int, int, int, int]
) -> None:
    """The newer names: inference duration, five usage counters, two per-operation histograms."""
    unit, data, attrs, point = _one_point(metrics, semconv.METRIC_CLIENT_INFERENCE_DURATION)
    assert (unit, type(data), attrs, point.count) == ("s", Histogram, base, 1)
    assert tuple(point.explicit_bounds) == semconv.DURATION_BUCKETS
    counters = (
        semconv.METRIC_CLIENT_INFERENCE_USAGE_INPUT_TOKENS,
        semconv.METRIC_CLIENT_INFERENCE_USAGE_OUTPUT_TOKENS,
        semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
        semconv.METRIC_CLIENT_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
        semconv.METRIC_CLIENT_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
    )
    # OpenAI chat reports no modality for its input and cache tokens (audio_tokens is 0), and its
    # output is text or audio: the output not counted as audio, reasoning included, is text
    modalities = ("unknown", "text", "unknown", "unknown", "text")
    for name, expected, modality in zip(counters, tokens, modalities, strict=True):
        unit, data, attrs, point = _one_point(metrics, name)
        assert (unit, type(data), data.is_monotonic, attrs, point.value) == (
            "{token}",
            Sum,
            True,
            {**base, semconv.GEN_AI_TOKEN_MODALITY: modality},
            expected,
        ), name
    for name, expected in (
        (semconv.METRIC_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS, tokens[0]),
        (semconv.METRIC_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS, tokens[1]),
    ):
        unit, data, attrs, point = _one_point(metrics, name)
        assert (unit, type(data), attrs, point.count, point.sum) == ("{token}", Histogram, base, 1, expected)
        assert tuple(point.explicit_bounds) == semconv.TOKEN_USAGE_BUCKETS


def _check_old(metrics: dict[str, tuple[str, Any]], base: dict[str, Any], tokens: tuple[int, int]) -> None:
    unit, data = metrics[semconv.METRIC_CLIENT_TOKEN_USAGE]
    assert (unit, type(data)) == ("{token}", Histogram)
    by_type = {dict(p.attributes)[semconv.GEN_AI_TOKEN_TYPE]: p for p in data.data_points}
    assert {k: (p.count, p.sum) for k, p in by_type.items()} == {
        "input": (1, tokens[0]),
        "output": (1, tokens[1]),
    }
    for token_type, point in by_type.items():
        assert dict(point.attributes) == {**base, semconv.GEN_AI_TOKEN_TYPE: token_type}
    unit, data, attrs, point = _one_point(metrics, semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert (unit, type(data), attrs, point.count) == ("s", Histogram, base, 1)


@pytest.mark.parametrize(
    "setting",  # (OTEL_SEMCONV_STABILITY_OPT_IN, today's names?, the newer names?)
    [
        (None, True, False),
        (LATEST, False, True),
        (DUP, True, True),
        (f"http, {LATEST} ,database", False, True),
    ],
)
def test_non_streamed_chat_metric_names_per_setting(
    otel: Otel, oai: openai.OpenAI, provider: FakeProvider, monkeypatch, setting
) -> None:
    opt_in, old, new = setting
    _opt_in(otel, monkeypatch, opt_in)
    completion = oai.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers=HEADERS)
    usage = completion.usage
    assert usage is not None

    metrics = _metrics(otel)
    assert set(metrics) == (OLD_NAMES if old else set()) | (NEW_NAMES if new else set())
    base = _base(provider, completion.model)
    if old:
        _check_old(metrics, base, (usage.prompt_tokens, usage.completion_tokens))
    if new:
        _check_new(metrics, base, (usage.prompt_tokens, usage.completion_tokens, 40, 8, 5))
    # the span is the same in every setting (the processor prices spans)
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 8


@pytest.mark.parametrize("setting", [(None, True, False), (LATEST, False, True), (DUP, True, True)])
def test_streamed_chat_time_to_first_chunk_per_setting(
    otel: Otel, oai: openai.OpenAI, provider: FakeProvider, monkeypatch, setting
) -> None:
    opt_in, old, new = setting
    _opt_in(otel, monkeypatch, opt_in)
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={**HEADERS, "x-fake-ttfc-ms": "30"},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None
    (span,) = otel.spans()
    ttfc = (span.attributes or {})[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]

    metrics = _metrics(otel)
    old_names = OLD_NAMES | {semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK}
    new_names = NEW_NAMES | {semconv.METRIC_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK}
    assert set(metrics) == (old_names if old else set()) | (new_names if new else set())
    assert set(metrics) == _readme_streamed_chat_names(opt_in)
    base = _base(provider, chunks[0].model)
    names = ([semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK] if old else []) + (
        [semconv.METRIC_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK] if new else []
    )
    for name in names:
        unit, data, attrs, point = _one_point(metrics, name)
        assert (unit, type(data), attrs, point.count) == ("s", Histogram, base, 1)
        assert point.sum == pytest.approx(ttfc) and 0.03 <= point.sum < 5
        assert tuple(point.explicit_bounds) == semconv.TIME_TO_FIRST_CHUNK_BUCKETS
    if old:
        _check_old(metrics, base, (usage.prompt_tokens, usage.completion_tokens))
    if new:
        _check_new(metrics, base, (usage.prompt_tokens, usage.completion_tokens, 40, 8, 5))


def test_latest_failed_call_records_zero_usage_and_error_type(
    otel: Otel, oai: openai.OpenAI, provider: FakeProvider, monkeypatch
) -> None:
    _opt_in(otel, monkeypatch, LATEST)
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": "rate_limit"}
        )

    metrics = _metrics(otel)
    assert set(metrics) == NEW_NAMES
    base = {k: v for k, v in _base(provider, "").items() if k != semconv.GEN_AI_RESPONSE_MODEL}
    failed = {**base, semconv.ERROR_TYPE: "RateLimitError"}
    _, _, attrs, point = _one_point(metrics, semconv.METRIC_CLIENT_INFERENCE_DURATION)
    assert (attrs, point.count) == (failed, 1)
    for name in NEW_NAMES - {semconv.METRIC_CLIENT_INFERENCE_DURATION}:
        _, data, attrs, point = _one_point(metrics, name)
        if isinstance(data, Sum):  # counters: by modality, no error.type
            assert (attrs, point.value) == ({**base, semconv.GEN_AI_TOKEN_MODALITY: "unknown"}, 0), name
        else:
            assert (attrs, point.count, point.sum) == (failed, 1, 0), name


@pytest.mark.parametrize("opt_in", [None, LATEST, DUP])
def test_embeddings_keep_the_operation_duration_in_every_setting(
    otel: Otel, oai: openai.OpenAI, monkeypatch, opt_in
) -> None:
    _opt_in(otel, monkeypatch, opt_in)
    oai.embeddings.create(model="text-embedding-3-small", input="hello")
    metrics = _metrics(otel)
    expected = {semconv.METRIC_CLIENT_OPERATION_DURATION}
    if opt_in != LATEST:
        expected.add(semconv.METRIC_CLIENT_TOKEN_USAGE)
    assert set(metrics) == expected
    _, _, attrs, point = _one_point(metrics, semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert (attrs[semconv.GEN_AI_OPERATION_NAME], point.count) == ("embeddings", 1)  # once, even in dup


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (None, MetricNames.DEFAULT),
        ("", MetricNames.DEFAULT),
        ("http", MetricNames.DEFAULT),
        ("gen_ai_latest", MetricNames.DEFAULT),
        (LATEST, MetricNames.LATEST),
        (f" {LATEST} ", MetricNames.LATEST),
        (DUP, MetricNames.DUP),
        (f"{LATEST},{DUP}", MetricNames.DUP),
        (f"http/dup,{DUP}", MetricNames.DUP),
    ],
)
def test_opt_in_values(monkeypatch, value: str | None, names: MetricNames) -> None:
    if value is None:
        monkeypatch.delenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, raising=False)
    else:
        monkeypatch.setenv(semconv.ENV_SEMCONV_STABILITY_OPT_IN, value)
    assert metric_names_from_env() is names


ZERO_CODE_APP = """
import openai, sys
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="k", max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print("APP-DONE", flush=True)
"""


def _printed_metric_names(stdout: str) -> set[str]:
    """The metric names the console metric exporter printed."""
    names: set[str] = set()
    decoder, index = json.JSONDecoder(), 0
    while (start := stdout.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict) and "resource_metrics" in value:
            for resource_metrics in value["resource_metrics"]:
                for scope_metrics in resource_metrics["scope_metrics"]:
                    names.update(metric["name"] for metric in scope_metrics["metrics"])
    return names


def test_opentelemetry_instrument_with_the_opt_in(tmp_path: Path, provider: FakeProvider) -> None:
    spans, stdout = run_instrumented_app(
        tmp_path,
        ZERO_CODE_APP,
        provider,
        OTEL_METRICS_EXPORTER="console",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
        OTEL_SEMCONV_STABILITY_OPT_IN=LATEST,
    )
    assert [span["name"] for span in spans] == ["chat gpt-4o-mini"]
    assert {name for name in _printed_metric_names(stdout) if name.startswith("gen_ai.")} == NEW_NAMES
