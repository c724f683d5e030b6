"""Bounded memory and scrapes: a total series cap (`labels.max_series`) per labelled table, exact
totals under it, the C lane and the Python path alike, and a scrape that never stalls OTLP.

Per-label caps alone bound each label, not their product: 200 services x 100 models were 20,000
series and a 190 MB exposition rendered on the event loop (the README's "Series cap" figures).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import grpc
import pytest
from genai_otel.processors import metrics as metrics_module
from genai_otel.processors import scan as scan_module
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.metrics import ALL_LABELS, Registry
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PRICE_TABLE_VERSION, QUANTA_PER_USD, PriceBook
from genai_otel.processors.service import Processor

from genai_otel import semconv as sc

from .helpers import EXPORT, GENAI, Sink, StepClock, make_request, make_span, renewed, samples

OTHER_SERIES = '{service="other",provider="other",model="other",operation="other"'
OVERFLOW = "genai_otel_processor_label_overflow_total"


def make_capped_pipeline(max_series: int, accelerated: bool | None = None, **options: Any) -> Pipeline:
    config = load_config(environ={})
    registry = Registry(
        label_limits=config.labels.max_values,
        allowed_labels=ALL_LABELS,
        top_users=options.get("top_users", config.labels.top_users),
        top_features=options.get("top_features", config.labels.top_features),
        exemplars=True,
        price_table=PRICE_TABLE_VERSION,
        max_series=max_series,
        clock=StepClock(),
    )
    return Pipeline(registry, PriceBook(), accelerated=accelerated)


def process(pipeline: Pipeline, payload: bytes, renew: bool = True) -> bytes:
    """`payload`'s calls exported anew (new span ids: sending the same bytes again is a retry)."""
    if renew:
        payload = renewed(payload)
    scanned, _ = pipeline.split(payload)
    return pipeline.process(payload, scanned)


def grid_requests(services: int, operations: int, **extra: Any) -> list[bytes]:
    """One request per service, one gpt-4o span per operation: services x operations label sets."""
    return [
        make_request(
            [make_span(GENAI | {sc.GEN_AI_OPERATION_NAME: f"op-{o}"} | extra) for o in range(operations)],
            service=f"svc-{s}",
        )
        for s in range(services)
    ]


def _span_quanta() -> int:
    """What one GENAI span costs, in the registry's quanta (about $0.0035)."""
    pipeline = make_capped_pipeline(10)
    process(pipeline, make_request([make_span(GENAI)]))
    (stats,) = pipeline.registry.series.values()
    return stats.cost


SPAN_QUANTA = _span_quanta()


def quanta(usd_text: str) -> int:
    return round(float(usd_text) * QUANTA_PER_USD)


# -- config ----------------------------------------------------------------------------------
def test_max_series_is_a_setting_of_at_least_one_named_in_the_error() -> None:
    assert load_config({"labels": {"max_series": "7"}}, environ={}).labels.max_series == 7
    env = {"GENAI_OTEL_PROCESSOR_LABELS__MAX_SERIES": "0"}
    with pytest.raises(ConfigError) as raised:
        load_config(environ=env)
    assert str(raised.value) == (
        "invalid processor configuration: "
        "labels.max_series='0' (from env): Input should be greater than or equal to 1"
    )


def test_the_processor_builds_its_registry_with_the_configured_cap() -> None:
    config = load_config({"labels": {"max_series": 3}, "listen": "127.0.0.1:0"}, environ={})
    processor = Processor(config)
    assert {name: cap.limit for name, cap in processor.registry.caps.items()} == {
        "series": 3, "quality_series": 3, "safety_series": 3, "user_series": 3, "feature_series": 3,
        "duplicate_series": 3, "tool_series": 3, "tool_execution_series": 3, "agent_series": 3,
        "guardrail_series": 3}  # fmt: skip


# -- the call series ---------------------------------------------------------------------------
@pytest.mark.parametrize("accelerated", [False, True] if scan_module.accelerated_available() else [False])
def test_label_sets_beyond_max_series_share_one_other_series_with_exact_totals(accelerated: bool) -> None:
    # 4 services x 3 operations = 12 label sets, each under its per-label caps; room for 5
    pipeline = make_capped_pipeline(5, accelerated=accelerated)
    for _ in range(3):  # the second and third passes run through the lane's learned entries
        for payload in grid_requests(4, 3):
            process(pipeline, payload)
    exposition = pipeline.registry.expose(openmetrics=True)
    requests = samples(exposition, sc.PROM_LLM_REQUESTS)
    admitted = [f'{{service="svc-{s}",provider="openai",model="gpt-4o",operation="op-{o}"'
                for s, o in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1))]  # fmt: skip
    assert requests == {
        **{labels + ',status="ok",error_type=""}': "3" for labels in admitted},
        OTHER_SERIES + ',status="ok",error_type=""}': "21",  # 7 label sets x 3 passes
    }
    assert len(pipeline.registry.series) == 6
    # each call recorded under `other` is one overflow, as a label over its cap counts
    assert samples(exposition, OVERFLOW) == {'{label="series"}': "21"}
    cost = samples(exposition, sc.PROM_LLM_COST)
    assert sum(quanta(v) for v in cost.values()) == 36 * SPAN_QUANTA
    assert quanta(cost[OTHER_SERIES + "}"]) == 21 * SPAN_QUANTA
    durations = samples(exposition, sc.PROM_LLM_REQUEST_DURATION + "_count")
    assert durations[OTHER_SERIES + ',status="ok"}'] == "21"


def test_a_label_set_already_admitted_keeps_its_series_after_the_cap_is_reached() -> None:
    pipeline = make_capped_pipeline(1)
    first, second = grid_requests(2, 1)
    for payload in (first, second, first, second, first):
        process(pipeline, payload)
    requests = samples(pipeline.registry.expose(openmetrics=False), sc.PROM_LLM_REQUESTS)
    assert requests == {
        '{service="svc-0",provider="openai",model="gpt-4o",operation="op-0",status="ok",error_type=""}': "3",
        OTHER_SERIES + ',status="ok",error_type=""}': "2",
    }


def test_a_per_label_overflow_and_the_series_cap_count_each_under_its_own_label() -> None:
    # operation cap 1: op-1 becomes `other` (a label overflow) in a label set new beyond the cap
    config = load_config(environ={})
    registry = Registry(
        label_limits={**config.labels.max_values, sc.LABEL_OPERATION: 1}, allowed_labels=ALL_LABELS,
        top_users=10, top_features=10, exemplars=False, price_table="t", max_series=1, clock=StepClock(),
    )  # fmt: skip
    pipeline = Pipeline(registry, PriceBook())
    for _ in range(2):
        for payload in grid_requests(1, 2):
            process(pipeline, payload)
    exposition = registry.expose(openmetrics=False)
    assert samples(exposition, OVERFLOW) == {'{label="operation"}': "2", '{label="series"}': "2"}
    assert set(registry.series) == {("svc-0", "openai", "gpt-4o", "op-0"), ("other",) * 4}


# -- users, features, quality scores -----------------------------------------------------------
@pytest.mark.parametrize("accelerated", [False, True] if scan_module.accelerated_available() else [False])
def test_user_and_feature_cost_tables_are_capped_in_total_with_exact_sums(accelerated: bool) -> None:
    pipeline = make_capped_pipeline(100, accelerated=accelerated, top_users=100, top_features=100)
    # one service, one model; 5 users x 2 passes and 4 features, capped at 3 keys per table
    pipeline.registry.caps["user_series"].limit = pipeline.registry.caps["feature_series"].limit = 3
    spans = [make_span(GENAI | {sc.USER_ID: f"user-{i % 5}",
                                 sc.GENAI_OTEL_FEATURE: f"feature-{i % 4}"}) for i in range(20)]  # fmt: skip
    for _ in range(2):
        process(pipeline, make_request(spans))
    exposition = pipeline.registry.expose(openmetrics=True)
    users = samples(exposition, sc.PROM_LLM_USER_COST)
    assert {k: quanta(v) for k, v in users.items()} == {
        '{service="checkout",user="user-0"}': 8 * SPAN_QUANTA,
        '{service="checkout",user="user-1"}': 8 * SPAN_QUANTA,
        '{service="checkout",user="user-2"}': 8 * SPAN_QUANTA,
        '{service="other",user="other"}': 16 * SPAN_QUANTA,  # users 3 and 4
    }
    features = samples(exposition, sc.PROM_LLM_FEATURE_COST)
    assert quanta(features['{service="other",feature="other"}']) == 10 * SPAN_QUANTA  # feature 3
    assert sum(quanta(v) for v in features.values()) == 40 * SPAN_QUANTA
    assert samples(exposition, OVERFLOW) == {'{label="feature_series"}': "10", '{label="user_series"}': "16"}


def test_quality_score_keys_are_capped_with_one_other_key_and_counted() -> None:
    pipeline = make_capped_pipeline(2)
    spans = [
        make_span(GENAI, events=[(sc.EVENT_EVALUATION_RESULT, {
            sc.GEN_AI_EVALUATION_NAME: f"rubric-{i % 4}", sc.GEN_AI_EVALUATION_SCORE_VALUE: 8.0})])
        for i in range(8)
    ]  # fmt: skip
    process(pipeline, make_request(spans))
    exposition = pipeline.registry.expose(openmetrics=False)
    counts = samples(exposition, sc.PROM_LLM_QUALITY_SCORE + "_count")
    assert counts == {
        '{service="checkout",provider="openai",model="gpt-4o",evaluation="rubric-0"}': "2",
        '{service="checkout",provider="openai",model="gpt-4o",evaluation="rubric-1"}': "2",
        '{service="other",provider="other",model="other",evaluation="other"}': "4",
    }
    assert samples(exposition, OVERFLOW) == {'{label="quality_series"}': "4"}


# -- the C lane and the Python path -------------------------------------------------------------
@pytest.mark.skipif(not scan_module.accelerated_available(), reason="the _wirescan extension is not built")
def test_c_and_python_give_identical_expositions_with_every_cap_reached() -> None:
    payloads = []
    for s in range(3):
        spans = [
            make_span(
                GENAI | {sc.GEN_AI_OPERATION_NAME: f"op-{i % 3}", sc.USER_ID: f"u-{i % 4}",
                          sc.GENAI_OTEL_FEATURE: f"f-{i % 3}"},
                error=i == 5,
                events=[(sc.EVENT_EVALUATION_RESULT, {sc.GEN_AI_EVALUATION_NAME: f"e-{i % 3}",
                                                      sc.GEN_AI_EVALUATION_SCORE_VALUE: 7.5})][: i % 4 == 0],
            )
            for i in range(12)
        ]  # fmt: skip
        payloads.append(make_request(spans, service=f"svc-{s}"))
    exports = [[renewed(payload) for payload in payloads] for _ in range(3)]  # the same for both
    outcomes = []
    for accelerated in (True, False):
        pipeline = make_capped_pipeline(4, accelerated=accelerated)
        outcome = []
        for requests in exports:
            for payload in requests:
                outcome.append(process(pipeline, payload, renew=False))
            exposition = pipeline.registry.expose(openmetrics=True)
            outcome.append([line for line in exposition.splitlines() if sc.PROM_PROCESSOR_INFO not in line])
        outcomes.append(outcome)
        if accelerated:
            assert pipeline.lane is not None and pipeline.lane.stats["fast"] > 0
    assert outcomes[0] == outcomes[1]
    overflow = samples("\n".join(outcomes[0][-1]), OVERFLOW)
    assert set(overflow) == {'{label="series"}', '{label="user_series"}', '{label="feature_series"}',
                             '{label="quality_series"}'}  # fmt: skip


# -- the scrape and the event loop ---------------------------------------------------------------
def test_a_snapshot_renders_what_the_registry_held_when_it_was_taken() -> None:
    pipeline = make_capped_pipeline(10)
    (payload,) = grid_requests(1, 1)
    process(pipeline, payload)
    snapshot = pipeline.registry.snapshot()
    before = pipeline.registry.expose(openmetrics=True)
    process(pipeline, payload)
    assert snapshot.expose(openmetrics=True) == before
    assert pipeline.registry.expose(openmetrics=True) != before


async def _get_metrics(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nAccept: application/openmetrics-text\r\n\r\n")
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    return body


async def test_an_otlp_export_completes_while_a_large_scrape_is_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = await Sink().start()
    config = load_config(
        {"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0", "shutdown_grace_seconds": 5,
         "forward": {"endpoint": f"127.0.0.1:{sink.port}"}, "labels": {"max_series": 100_000}},
        environ={},
    )  # fmt: skip
    processor = Processor(config)
    registry = processor.registry
    # a large registry, filled directly: 6,000 series with three histograms each
    now = time.time()
    for i in range(6_000):
        labels, stats = registry.series_of((f"svc-{i // 100}", "openai", f"model-{i % 100}", "chat"))
        registry.record_call(stats, labels[0], "ok", "", (100, 50, 0, 0, 0), None, "", "",
                             bytes(16), 1.5, 0.25, now)  # fmt: skip
    # The render is held until the export has been answered: on the event loop that could never
    # happen (the hold would block the loop and time out); in a worker thread it must.
    rendering, release = threading.Event(), threading.Event()
    render = metrics_module._Writer.render

    def held_render(writer: Any) -> str:
        rendering.set()
        if not release.wait(30):
            raise TimeoutError("the export was not answered while the scrape was rendered")
        return render(writer)

    monkeypatch.setattr(metrics_module._Writer, "render", held_render)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            request = make_request([make_span(GENAI)])
            await export(request)  # connected and warm
            scrape = asyncio.ensure_future(_get_metrics(processor.metrics_port))
            while not rendering.is_set():  # set from the render's thread
                if scrape.done():  # answered without rendering: fail here rather than wait forever
                    scrape.result()
                    raise AssertionError("the scrape was answered without a render")
                await asyncio.sleep(0.001)
            try:
                await asyncio.wait_for(export(request), 20)  # answered while the render is held
            finally:
                release.set()
            body = (await asyncio.wait_for(scrape, 60)).decode()
        # the scrape is a whole exposition of the registry as it was when the scrape began
        assert body.endswith("# EOF\n")
        requests = samples(body, sc.PROM_LLM_REQUESTS)
        assert len(requests) == 6_001
        assert sum(int(v) for v in requests.values()) == 6_001
        assert samples(body, sc.PROM_PROCESSOR_SPANS_RECEIVED)['{kind="genai"}'] == "1"
    finally:
        await processor.stop()
        await sink.stop()
