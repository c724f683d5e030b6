"""A copy of a span the processor has seen (the same trace and span id) is billed once.

Every hop retries: an application's exporter after a timeout, the collector's exporter a request
the processor could not pass on, the gateway's loadbalancing exporter a whole batch when one
processor refused its part (the others then get theirs twice). The copy is forwarded enriched as
its first copy was, and counted only in genai_otel_processor_spans_redelivered_total{kind}.
Each case runs on both paths (the C lane and the pure-Python walk).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook

from genai_otel import semconv as sc

from .helpers import (
    BROKEN_SERVICE,
    EXPORT,
    GENAI,
    Sink,
    attributes_of,
    break_service,
    make_pipeline,
    make_request,
    make_span,
    renewed,
    run,
    samples,
    scrape,
    spans_of,
)
from .test_agents_tools import agent_span, tool_span
from .test_duplicates import ANTHROPIC, PATHS, PEER_SCOPE, duplicate_of, request, span, warmed
from .test_safety_evaluations import evaluation
from .test_service import processor_config

HEALTH = (sc.PROM_PROCESSOR_SPANS_RECEIVED, sc.PROM_PROCESSOR_SPANS_REDELIVERED)


def _pipeline(accelerated: bool) -> Pipeline:
    return Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)


def _counted(pipeline: Pipeline) -> list[str]:
    """The exposition without the two health counters a copy moves."""
    text = pipeline.registry.expose(openmetrics=True)
    return [line for line in text.splitlines() if not line.startswith(HEALTH)]


def _calls() -> bytes:
    """Three priced calls (two users, one failure) and an HTTP span, in one request."""
    return make_request(
        [
            make_span(GENAI | {sc.USER_ID: "u-1", sc.GENAI_OTEL_FEATURE: "search"}),
            make_span(GENAI | {sc.USER_ID: "u-2"}, duration_s=0.4),
            make_span(GENAI | {sc.ERROR_TYPE: "RateLimitError"}, error=True),
            make_span({"http.route": "/orders"}, name="GET /orders"),
        ]
    )


@pytest.mark.parametrize("accelerated", PATHS)
def test_a_retried_request_is_forwarded_alike_and_counted_once(accelerated: bool) -> None:
    pipeline = _pipeline(accelerated)
    first = _calls()
    run(pipeline, first)  # the lane learns the span kinds
    second = renewed(first)  # three more calls
    fast = pipeline.lane.stats["fast"] if pipeline.lane is not None else 0
    forwarded = run(pipeline, second)
    counted = _counted(pipeline)
    for _ in range(2):  # the sender retries it twice
        assert run(pipeline, second) == forwarded  # byte for byte: costs and all
    if pipeline.lane is not None:  # the copies went through the lane too
        assert pipeline.lane.stats["fast"] - fast == 9
    assert _counted(pipeline) == counted
    labels = '{service="checkout",provider="openai",model="gpt-4o",operation="chat"'
    assert samples("\n".join(counted), sc.PROM_LLM_REQUESTS) == {
        labels + ',status="ok",error_type=""}': "4",
        labels + ',status="error",error_type="rate_limit"}': "2",
    }
    registry = pipeline.registry
    assert registry.received == {"genai": 12, "other": 4}
    assert registry.redelivered == {"genai": 6, "other": 0}
    cost = attributes_of(spans_of(forwarded)[0])[sc.GEN_AI_USAGE_COST_AMOUNT]
    assert cost == pytest.approx(0.0035, abs=1e-9)


@pytest.mark.parametrize("accelerated", PATHS)
def test_a_copy_within_one_request_is_counted_once(accelerated: bool) -> None:
    pipeline = _pipeline(accelerated)
    call = make_span(GENAI)
    out = run(pipeline, make_request([call, call, make_span(GENAI)]))
    costs = [attributes_of(s)[sc.GEN_AI_USAGE_COST_AMOUNT] for s in spans_of(out)]
    assert costs[0] == costs[1] == costs[2]
    assert pipeline.registry.redelivered == {"genai": 1, "other": 0}
    text = pipeline.registry.expose(openmetrics=False)
    assert sum(float(v) for v in samples(text, sc.PROM_LLM_REQUESTS).values()) == 2


@pytest.mark.parametrize("accelerated", PATHS)
def test_a_copy_of_a_duplicate_span_names_the_counted_span_again(accelerated: bool) -> None:
    """The second span of one call (another instrumentation's) sent again: marked as before,
    counted neither as a call nor as a duplicate."""
    pipeline = warmed(accelerated)
    parent = span(ANTHROPIC, 1, start_ms=0, duration_ms=1000)
    child = span(ANTHROPIC, 2, parent=1, start_ms=10, duration_ms=900)
    pair = request((sc.ANTHROPIC_SDK_SCOPE, [child]), (PEER_SCOPE, [parent]))
    first = run(pipeline, pair)
    assert duplicate_of(first) == [None, (2).to_bytes(8, "big").hex()]
    counted = _counted(pipeline)
    duplicates = dict(pipeline.registry.duplicates)
    assert run(pipeline, pair) == first
    # the peer's span alone, as its own exporter retries it
    assert duplicate_of(run(pipeline, request((PEER_SCOPE, [parent])))) == [(2).to_bytes(8, "big").hex()]
    assert _counted(pipeline) == counted
    assert dict(pipeline.registry.duplicates) == duplicates
    assert pipeline.registry.redelivered["genai"] == 3


@pytest.mark.parametrize("accelerated", PATHS)
def test_tool_calls_agent_runs_and_evaluations_are_counted_once(accelerated: bool) -> None:
    pipeline = _pipeline(accelerated)
    judged = make_span({"http.route": "/answer"}, name="judge", events=[evaluation("toxicity", True)])
    payload = make_request([tool_span("lookup"), agent_span("triage", 2.0), judged])
    run(pipeline, payload)
    counted = _counted(pipeline)
    text = "\n".join(counted)
    assert samples(text, sc.PROM_LLM_TOOL_CALLS) == {'{service="checkout",tool="lookup",status="ok"}': "1"}
    assert samples(text, sc.PROM_LLM_AGENT_RUN_DURATION + "_count") == {
        '{service="checkout",agent="triage",status="ok"}': "1"
    }
    assert sum(float(v) for v in samples(text, sc.PROM_LLM_SAFETY_EVALUATIONS).values()) == 1
    run(pipeline, payload)
    assert _counted(pipeline) == counted
    assert pipeline.registry.redelivered == {"genai": 0, "other": 3}


@pytest.mark.parametrize("accelerated", PATHS)
def test_the_spans_of_a_refused_request_are_counted_when_they_come_again(accelerated: bool) -> None:
    """A request that fails part way counts nothing, so its spans are not remembered either: the
    sender's retry (here without the part that cannot be read) is counted in full."""
    pipeline = _pipeline(accelerated)
    break_service(pipeline)
    calls = [make_span(GENAI), make_span(GENAI)]
    failing = make_request(calls) + make_request([make_span(GENAI)], service=BROKEN_SERVICE)
    with pytest.raises(RuntimeError, match="simulated defect"):
        run(pipeline, failing)
    run(pipeline, make_request(calls))
    text = pipeline.registry.expose(openmetrics=False)
    assert sum(float(v) for v in samples(text, sc.PROM_LLM_REQUESTS).values()) == 2
    assert pipeline.registry.redelivered == {"genai": 0, "other": 0}


async def test_a_request_sent_again_through_the_service_is_billed_once() -> None:
    """The real service, as a gateway uses it when it retries a whole batch: the next hop gets
    both copies with the same cost; the metrics count the calls once."""
    sink = await Sink().start()
    processor = processor_config(sink.port)
    await processor.start()
    payload = make_request([make_span(GENAI), make_span(GENAI)])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            await export(payload, timeout=5)
            await export(payload, timeout=5)  # the retry
        for _ in range(100):
            if len(sink.spans()) == 4 and processor.registry.queue_spans == 0:
                break
            await asyncio.sleep(0.05)
        _, body = await asyncio.to_thread(scrape, processor.metrics_port)
    finally:
        await processor.stop()
        await sink.stop()
    costs = [attributes_of(s)[sc.GEN_AI_USAGE_COST_AMOUNT] for s in sink.spans()]
    assert len(costs) == 4 and len(set(costs)) == 1
    assert sum(float(v) for v in samples(body, sc.PROM_LLM_REQUESTS).values()) == 2
    assert samples(body, sc.PROM_PROCESSOR_SPANS_REDELIVERED) == {
        '{kind="genai"}': "2",
        '{kind="other"}': "0",
    }
    assert samples(body, sc.PROM_PROCESSOR_SPANS_RECEIVED) == {'{kind="genai"}': "4", '{kind="other"}': "0"}
