"""One sender's odd request is handled on its own: deep nesting, malformed spans, a defect.

Each case here was a finding against the processor (issue 9): a 10,000-deep ArrayValue took
the request down with a RecursionError (gRPC UNKNOWN, a traceback per request); a malformed
span carrying only `user.id` was GenAI to the Python path and `other` to the C lane; an
exception inside processing surfaced as UNKNOWN with nothing counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook
from genai_otel.processors.service import ERROR_LOG_INTERVAL_SECONDS, Processor, RateLimitedLog

from genai_otel import semconv as sc

from .helpers import (
    BROKEN_SERVICE,
    EXPORT,
    GENAI,
    Sink,
    attributes_of,
    break_service,
    framed,
    make_pipeline,
    make_request,
    make_span,
    run,
    spans_of,
)
from .test_service import _delivered, processor_config

NESTING = 10_000


def deep_array(depth: int) -> bytes:
    """An AnyValue payload: `depth` ArrayValues, each holding the next, around one string."""
    value = framed(0x0A, b"stop")  # AnyValue.string_value
    for _ in range(depth):
        value = framed(0x2A, framed(0x0A, value))  # AnyValue.array_value{values: [value]}
    return value


def span_with_raw_attribute(attributes: dict[str, Any], key: str, any_value: bytes, **options: Any) -> bytes:
    """A serialized Span: `attributes` plus one attribute whose AnyValue bytes are given as is."""
    key_value = framed(0x0A, key.encode()) + framed(0x12, any_value)
    return make_span(attributes, **options).SerializeToString() + framed(0x4A, key_value)


def request_of(*spans: bytes, resource: bytes | None = None) -> bytes:
    """ExportTraceServiceRequest bytes: one ResourceSpans, one ScopeSpans, these spans."""
    if resource is None:
        resource = framed(0x0A, framed(0x0A, b"service.name") + framed(0x12, framed(0x0A, b"deep")))
    scope = framed(0x0A, framed(0x0A, b"test.scope")) + b"".join(framed(0x12, s) for s in spans)
    return framed(0x0A, framed(0x0A, resource) + framed(0x12, scope))


def outcomes(data: bytes, passes: int = 2) -> list[list[tuple[bytes, dict[str, int], dict[str, int], str]]]:
    """Per path (C lane, C without lane when built, pure Python): each pass's forwarded bytes,
    received and invalid counts, and the exposition without the build-info line."""
    paths = [False]
    if scan_module.accelerated_available():
        paths = [True, False]
    results = []
    for accelerated in paths:
        pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
        runs = []
        for _ in range(passes):
            forwarded = run(pipeline, data)
            registry = pipeline.registry
            exposition = "\n".join(
                line
                for line in registry.expose(openmetrics=True).splitlines()
                if sc.PROM_PROCESSOR_INFO not in line
            )
            runs.append((forwarded, dict(registry.received), dict(registry.invalid), exposition))
        results.append(runs)
    return results


# -- deep nesting ---------------------------------------------------------------------------
def test_a_10000_deep_array_value_is_one_wrong_type_on_every_path() -> None:
    deep = span_with_raw_attribute(
        {k: v for k, v in GENAI.items() if k != sc.GEN_AI_REQUEST_MODEL},
        sc.GEN_AI_REQUEST_MODEL,
        deep_array(NESTING),
    )
    good = make_span(GENAI).SerializeToString()
    data = request_of(good, deep)
    results = outcomes(data)
    assert all(result == results[0] for result in results)
    forwarded, received, invalid, _ = results[0][1]
    # the deep span is a GenAI span whose model is not text: counted invalid, forwarded unchanged
    assert received == {"genai": 4, "other": 0}
    assert invalid == {"attribute_wrong_type": 2}
    # (the protobuf classes cannot parse it back: upb stops at depth 100)
    assert deep in forwarded  # the deep span travels byte for byte
    assert forwarded.count(sc.GEN_AI_USAGE_COST_AMOUNT.encode()) == 1  # only the good one priced
    (alone,) = spans_of(run(make_pipeline(), request_of(good)))
    assert attributes_of(alone)[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0035, abs=1e-9)


def test_a_deep_array_value_as_the_service_name_reads_as_no_service_name() -> None:
    resource = framed(0x0A, framed(0x0A, b"service.name") + framed(0x12, deep_array(NESTING)))
    data = request_of(make_span(GENAI).SerializeToString(), resource=resource)
    results = outcomes(data)
    assert all(result == results[0] for result in results)
    exposition = results[0][1][3]
    assert 'llm_requests_total{service="unknown_service",provider="openai",model="gpt-4o"' in exposition


def test_string_items_of_an_array_are_read_whatever_sits_beside_them() -> None:
    """Only string items are decoded; nested arrays beside them are skipped, not descended."""
    from genai_otel.processors.wire import decode_any_value

    items = framed(0x0A, framed(0x0A, b"stop")) + framed(0x0A, deep_array(NESTING))
    items += framed(0x0A, framed(0x0A, b"length"))
    value = framed(0x2A, items)
    assert decode_any_value(value, 0, len(value)) == ["stop", "length"]


async def test_a_deep_request_is_accepted_and_forwarded_by_the_service() -> None:
    sink = await Sink().start()
    processor = processor_config(sink.port)
    await processor.start()
    resource = framed(0x0A, framed(0x0A, b"service.name") + framed(0x12, deep_array(NESTING)))
    span = make_span(GENAI).SerializeToString()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await channel.unary_unary(EXPORT)(request_of(span, resource=resource))
        await _wait_forwarded(processor, 1)
        (forwarded,) = sink.received
        assert forwarded.count(sc.GEN_AI_USAGE_COST_AMOUNT.encode()) == 1  # priced
        assert processor.registry.rejected == {}
        assert processor.registry.received == {"genai": 1, "other": 0}
    finally:
        await processor.stop()
        await sink.stop()


async def _wait_forwarded(processor: Processor, spans: int) -> None:
    for _ in range(500):
        if processor.registry.forwarded == spans and processor.registry.queue_spans == 0:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"forwarded {processor.registry.forwarded} of {spans}")


# -- malformed spans: recognised the same way on every path ---------------------------------
@pytest.mark.parametrize(
    "tail",
    [b"\x0f", b"\x41\x00", b"\x7a\x05\x18"],
    ids=["wire-type-7", "truncated-end-time", "status-past-the-end"],
)
@pytest.mark.parametrize(
    ("attributes", "genai"),
    [
        ({sc.USER_ID: "u1"}, False),
        ({sc.USER_ID: "u1", sc.GENAI_OTEL_FEATURE: "search"}, False),
        ({sc.GEN_AI_USAGE_INPUT_TOKENS: 5}, False),
        (GENAI, True),
    ],
    ids=["user-only", "user-and-feature", "tokens-only", "genai"],
)
def test_a_malformed_span_is_genai_only_with_a_genai_marker(
    attributes: dict[str, Any], genai: bool, tail: bytes
) -> None:
    data = request_of(make_span(attributes).SerializeToString() + tail)
    results = outcomes(data)
    assert all(result == results[0] for result in results)
    _, received, invalid, _ = results[0][1]
    if genai:
        assert (received, invalid) == ({"genai": 2, "other": 0}, {"malformed_span": 2})
    else:
        assert (received, invalid) == ({"genai": 0, "other": 2}, {})


# -- a defect inside processing ------------------------------------------------------------
@pytest.fixture
async def processor_and_sink() -> AsyncIterator[tuple[Processor, Sink]]:
    sink = await Sink().start()
    processor = processor_config(sink.port)
    await processor.start()
    yield processor, sink
    await processor.stop()
    await sink.stop()


async def test_a_request_whose_processing_raises_is_refused_and_logged_once(
    processor_and_sink: tuple[Processor, Sink],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor, sink = processor_and_sink
    pipeline = processor.pipeline
    real_process = pipeline.process
    poison = b"defect-trigger"

    def process(data: bytes, scanned: Any) -> bytes:
        if poison in data:
            raise RuntimeError("simulated defect")
        return real_process(data, scanned)

    monkeypatch.setattr(pipeline, "process", process)
    bad = make_request([make_span({**GENAI, "app.note": poison.decode()})])
    good = make_request([make_span(GENAI)])
    with caplog.at_level(logging.ERROR, logger="genai_otel.processors.service"):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await export(bad)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert caught.value.details() == "processing failed: RuntimeError"
            await export(good)  # the next sender is not affected
    await _delivered(processor, sink, 1)
    assert processor.registry.rejected == {"internal_error": 3}
    assert processor.registry.received == {"genai": 1, "other": 0}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["request refused: processing failed with RuntimeError"]
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError
    assert "app.note" not in caplog.text and poison.decode() not in caplog.text


def test_the_rate_limited_log_reports_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(ERROR_LOG_INTERVAL_SECONDS, clock=lambda: now[0])
    log = logging.getLogger("test.rate_limited")
    with caplog.at_level(logging.ERROR, logger="test.rate_limited"):
        assert limited.log(log, "failed with %s", "A", exc=ValueError("x"))
        now[0] += ERROR_LOG_INTERVAL_SECONDS - 0.001
        assert not limited.log(log, "failed with %s", "B")
        assert not limited.log(log, "failed with %s", "C")
        now[0] += 0.001
        assert limited.log(log, "failed with %s", "D", exc=ValueError("y"))
    assert [r.getMessage() for r in caplog.records] == [
        "failed with A",
        "failed with D (2 more since the last report)",
    ]
    assert caplog.records[0].exc_info is not None and caplog.records[1].exc_info is None


# -- a request is accounted all or nothing ---------------------------------------------------
ACCELERATION = [
    pytest.param(True, id="c-lane", marks=pytest.mark.skipif(
        not scan_module.accelerated_available(), reason="the _wirescan extension is not built"
    )),
    pytest.param(False, id="python"),
]  # fmt: skip


def _calls(service: str, model_over_cap: str) -> bytes:
    """One resource's spans, one of each kind a request records: priced with a user and a
    feature, a classified error, unpriced, a model over its label cap, a quality score, an
    invalid duration."""
    return make_request(
        [
            make_span({**GENAI, "user.id": "u1", sc.GENAI_OTEL_FEATURE: "search"}),
            make_span({**GENAI, sc.ERROR_TYPE: "RateLimitError"}, error=True),
            make_span({**GENAI, sc.GEN_AI_REQUEST_MODEL: "no-such-model"}),
            make_span({**GENAI, sc.GEN_AI_REQUEST_MODEL: model_over_cap}),
            make_span(
                GENAI,
                events=[
                    (
                        sc.EVENT_EVALUATION_RESULT,
                        {sc.GEN_AI_EVALUATION_NAME: "relevance", sc.GEN_AI_EVALUATION_SCORE_VALUE: 8.5},
                    )
                ],
            ),
            make_span(GENAI, duration_s=-1.0),
        ],
        service=service,
    )


@pytest.mark.parametrize("accelerated", ACCELERATION)
def test_a_request_that_fails_part_way_changes_no_metric(accelerated: bool) -> None:
    """Finding 4: the lane kept what it had recorded when the request then failed (2 exports
    answered UNKNOWN, 4 calls counted). Here the second service's name cannot be read after the
    first service's spans were handled, in C and in Python, and nothing at all is recorded."""
    base = make_pipeline(label_limits={sc.LABEL_MODEL: 2})
    pipeline = Pipeline(base.registry, PriceBook(), accelerated=accelerated)
    registry = pipeline.registry
    break_service(pipeline)
    run(pipeline, _calls("checkout", "gpt-4o"))  # every kind seen once: the lane knows them
    registry.settle()
    fast_before = pipeline.lane.stats["fast"] if pipeline.lane is not None else 0
    before = registry.expose(openmetrics=True)
    failing = _calls("checkout", "gpt-4o-mini") + _calls(BROKEN_SERVICE, "gpt-4o")
    with pytest.raises(RuntimeError, match="simulated defect"):
        run(pipeline, failing)
    assert registry.expose(openmetrics=True) == before
    if pipeline.lane is not None:  # the first service's spans did go through the lane
        assert pipeline.lane.stats["fast"] > fast_before
    # the model over its cap was not counted as overflow either
    assert 'label_overflow_total{label="model"}' not in before
    assert registry.limiters[sc.LABEL_MODEL].overflow == 0
    # and the next request is recorded in full
    run(pipeline, _calls("checkout", "gpt-4o-mini"))
    after = registry.expose(openmetrics=False)
    labels = 'service="checkout",provider="openai",model="gpt-4o",operation="chat"'
    assert f'llm_requests_total{{{labels},status="ok",error_type=""}} 7' in after
    assert registry.limiters[sc.LABEL_MODEL].overflow == 1


@pytest.mark.parametrize("accelerated", ACCELERATION)
def test_a_span_that_fails_part_way_records_only_its_invalid_count(
    accelerated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span whose handling raises after its call was written down counts as malformed and
    nothing else; the request's other spans are recorded."""
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
    real = pipeline._enrichment

    def enrichment(call: Any, *args: Any) -> bytes:
        if call.user == "poison":
            raise RuntimeError("simulated defect")
        return real(call, *args)

    monkeypatch.setattr(pipeline, "_enrichment", enrichment)
    run(pipeline, make_request([make_span({**GENAI, "user.id": "poison"}), make_span(GENAI)]))
    registry = pipeline.registry
    registry.settle()
    assert registry.invalid == {"malformed_span": 1}
    assert registry.received == {"genai": 2, "other": 0}
    ((_, stats),) = registry.series.items()
    assert dict(stats.requests) == {("ok", ""): 1}
    assert registry.user_cost == {}
