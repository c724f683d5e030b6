"""One sender's bad, huge or stuck request never costs another sender a span (issue 9).

The next hop here is a *strict* sink, as strict as the collector's OTLP receiver: it parses
every request with the generated classes (which refuse invalid UTF-8 in string fields) and its
gRPC server keeps a receive limit (4 MiB, grpc's and the collector's default).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.service import Processor
from genai_otel.processors.wire import split_by_size
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from genai_otel import semconv as sc
from genai_otel.stack.runner import free_port

from .helpers import EXPORT, GENAI, Sink, make_request, make_span, samples, scrape

MIB = 1024 * 1024
BAD_TEXT = "<not utf-8 on the wire>"


@dataclass
class StrictSink(Sink):
    """A next hop that refuses what the collector's receiver refuses: a request protobuf cannot
    parse (INVALID_ARGUMENT) and a message over `max_receive_bytes` (grpc's own check)."""

    max_receive_bytes: int = 4 * MIB
    unavailable_marker: bytes | None = None  # answer UNAVAILABLE to exports holding these bytes
    refused: int = 0

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        if self.unavailable_marker is not None and self.unavailable_marker in request:
            self.refused += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        try:
            ExportTraceServiceRequest.FromString(request)
        except DecodeError as exc:
            self.refused += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        self.received.append(request)
        return ExportTraceServiceResponse().SerializeToString()

    def server_options(self) -> list[tuple[str, int]]:
        return [("grpc.max_receive_message_length", self.max_receive_bytes)]


def spans_named(names: list[str], **attributes: Any) -> list[Span]:
    spans = []
    for number, name in enumerate(names):
        span = make_span(GENAI | attributes, name=name)
        span.span_id = number.to_bytes(8, "big")
        spans.append(span)
    return spans


def with_invalid_utf8(request: bytes) -> bytes:
    """The request with BAD_TEXT's bytes replaced by as many bytes that are not UTF-8."""
    assert BAD_TEXT.encode() in request
    return request.replace(BAD_TEXT.encode(), b"\xff" * len(BAD_TEXT))


async def start_processor(sink: Sink, **forward: object) -> Processor:
    """A processor forwarding to `sink`. It answers a sender once its request is queued
    (`acknowledge: accepted`) unless told otherwise: these tests send one request after another
    and need them queued together, as a collector's concurrent exports are."""
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 5,
            "forward": {"endpoint": f"127.0.0.1:{sink.port}", "acknowledge": "accepted", **forward},
        },
        environ={},
    )
    processor = Processor(config)
    await processor.start()
    return processor


async def wait_until(predicate: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached within {within} s")
        await asyncio.sleep(0.02)


async def settled(processor: Processor, within: float = 15.0) -> None:
    """Every accepted span is forwarded or counted dropped."""
    await wait_until(lambda: processor.registry.queue_spans == 0, within)


def delivered_names(sink: Sink) -> list[str]:
    return [span.name for span in sink.spans()]


async def metrics(processor: Processor) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    _, body = await asyncio.to_thread(scrape, processor.metrics_port)
    return (
        samples(body, sc.PROM_PROCESSOR_SPANS_FORWARDED),
        samples(body, sc.PROM_PROCESSOR_SPANS_DROPPED),
        samples(body, sc.PROM_PROCESSOR_REQUESTS_REJECTED),
    )


# --------------------------------------------------------------------------------------
# Isolation
# --------------------------------------------------------------------------------------
async def test_a_request_the_next_hop_refuses_costs_only_its_own_spans() -> None:
    # slow enough that the requests queue up behind the first two and leave as merged exports
    sink = await StrictSink(delay_seconds=0.1).start()
    processor = await start_processor(sink)
    good = [make_request(spans_named([f"good-{r}-{i}" for i in range(10)])) for r in range(40)]
    bad = with_invalid_utf8(make_request(spans_named([f"bad-{i}" for i in range(10)], note=BAD_TEXT)))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            await asyncio.gather(*(export(request) for request in good[:20]))
            await export(bad)  # accepted: only framing down to span boundaries is checked
            await asyncio.gather(*(export(request) for request in good[20:]))
        await settled(processor)
        names = delivered_names(sink)
        assert sorted(names) == sorted(f"good-{r}-{i}" for r in range(40) for i in range(10))
        assert sink.refused >= 2  # the merged export with the bad request, then the bad one alone
        assert await metrics(processor) == (
            {"": "400"},
            {'{reason="rejected_invalid_argument"}': "10"},
            {},
        )
    finally:
        await processor.stop()
        await sink.stop()


async def test_a_stuck_request_waits_out_its_own_budget_without_holding_the_only_slot() -> None:
    marker = b"stuck-request-marker"
    sink = await StrictSink(unavailable_marker=marker).start()
    budget = 8.0  # the others are delivered within half of it, on a loaded machine too
    processor = await start_processor(
        sink,
        concurrency=1,
        retry={"initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.3, "max_elapsed_seconds": budget},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            started = time.monotonic()
            await export(make_request(spans_named([marker.decode()])))
            await wait_until(lambda: sink.refused >= 1, 5)  # its first attempt failed: it retries
            for sender in range(10):
                await export(make_request(spans_named([f"sender-{sender}"] * 3)))
            # delivered while the stuck one keeps failing, long before its budget runs out
            await wait_until(lambda: len(sink.spans()) == 30, budget / 2)
            assert processor.registry.dropped == {}
            await settled(processor, budget + 5)
            elapsed = time.monotonic() - started
        assert sorted(delivered_names(sink)) == sorted(f"sender-{s}" for s in range(10) for _ in range(3))
        assert budget - 1 < elapsed < budget + 3  # it had its own full budget, then was dropped
        assert sink.refused >= 5  # retried all along
        assert await metrics(processor) == ({"": "30"}, {'{reason="retries_exhausted"}': "1"}, {})
    finally:
        await processor.stop()
        await sink.stop()


async def test_drain_forwards_or_counts_every_export_waiting_to_retry() -> None:
    marker = b"never-taken-marker"
    sink = await StrictSink(unavailable_marker=marker).start()
    processor = await start_processor(
        sink, retry={"initial_backoff_seconds": 0.2, "max_backoff_seconds": 0.2}
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            await export(make_request(spans_named([marker.decode()] * 4)))
            await wait_until(lambda: sink.refused >= 1, 5)  # waiting to retry, in no slot
            await export(make_request(spans_named(["taken"] * 3)))
            await wait_until(lambda: len(sink.spans()) == 3, 5)
            assert processor.registry.queue_spans == 4
    finally:
        await processor.stop()  # a 5 s grace: the stuck export is retried until then
        await sink.stop()
    assert sink.refused > 5
    assert processor.registry.queue_spans == 0
    assert (processor.registry.forwarded, processor.registry.dropped) == (3, {"shutdown": 4})


async def test_behind_a_down_next_hop_queued_requests_do_not_start_their_retry_clocks() -> None:
    down = Sink()
    down.port = free_port()  # nothing listens there
    budget = 3.0
    processor = await start_processor(
        down,
        concurrency=1,
        retry={"initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.2, "max_elapsed_seconds": budget},
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            started = time.monotonic()
            for number in range(6):
                await export(make_request(spans_named([f"request-{number}"])))
                await asyncio.sleep(0.1)  # each of the first two leaves alone and fails
        # 2 x concurrency exports wait to retry; the four requests behind them have not been
        # tried, so their budgets start only when the first two run out
        await wait_until(lambda: processor.registry.dropped == {"retries_exhausted": 2}, budget + 1)
        await asyncio.sleep(max(0.0, started + budget + 1.5 - time.monotonic()))
        assert processor.registry.dropped == {"retries_exhausted": 2}
        assert processor.registry.queue_spans == 4
        await wait_until(lambda: processor.registry.queue_spans == 0, budget + 2)
        assert processor.registry.dropped == {"retries_exhausted": 6}
    finally:
        await processor.stop()


# --------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------
async def test_a_request_larger_than_the_next_hop_takes_arrives_complete_in_exports_that_fit() -> None:
    sink = await StrictSink().start()  # 4 MiB, as forward.max_message_bytes by default
    processor = await start_processor(sink)
    names = [f"big-{i}" for i in range(1000)]
    request = make_request(spans_named(names, padding="x" * 6500))  # ~6.5 MiB, ~7 KiB per span
    assert 6 * MIB < len(request) < 7 * MIB
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await channel.unary_unary(EXPORT)(request)
        await settled(processor, 20)
        assert sorted(delivered_names(sink)) == sorted(names)  # every span, once
        assert sink.refused == 0
        assert len(sink.received) == 2
        assert all(len(export) <= 4 * MIB for export in sink.received)
        # every export priced every span it carries
        assert all(any(kv.key == sc.GEN_AI_USAGE_COST_AMOUNT for kv in s.attributes) for s in sink.spans())
        assert await metrics(processor) == ({"": "1000"}, {}, {})
    finally:
        await processor.stop()
        await sink.stop()


async def test_a_span_that_can_never_fit_is_refused_at_once_and_counts_nothing() -> None:
    sink = await StrictSink().start()
    processor = await start_processor(sink)
    after = make_request(spans_named(["after-0", "after-1"]))
    huge = make_request(
        [*spans_named(["small"]), make_span(GENAI | {"padding": "x" * (4 * MIB)}, name="huge")]
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await export(huge)
            assert time.monotonic() - started < 5  # at once: not after retries (300 s budget)
            await export(after)  # the next request goes through as usual
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot fit in the next hop's 4194304-byte limit (forward.max_message_bytes)" in (
            error.details() or ""
        )
        await settled(processor)
        assert delivered_names(sink) == ["after-0", "after-1"]
        assert processor.registry.received == {"genai": 2, "other": 0}  # the refused one: nothing
        assert await metrics(processor) == ({"": "2"}, {}, {'{reason="too_large"}': "1"})
    finally:
        await processor.stop()
        await sink.stop()


async def test_message_larger_than_max_is_split_not_retried_and_a_lone_span_over_it_is_dropped() -> None:
    # The next hop takes 1 MiB while the processor was told 4 MiB: every "larger than max" answer
    # must lead to smaller exports at once, never to minutes of retries of the same bytes.
    sink = await StrictSink(max_receive_bytes=MIB, delay_seconds=0.2).start()
    processor = await start_processor(sink, retry={"max_elapsed_seconds": 300})
    many = [f"many-{i}" for i in range(300)]  # ~2 MiB in 300 spans of ~7 KiB
    requests = [
        make_request(spans_named(["first"])),  # goes at once; the others queue and merge
        make_request(spans_named(many, padding="x" * 6000)),
        make_request(spans_named(["lone"], padding="x" * (MIB + MIB // 2))),
        make_request(spans_named([f"small-{i}" for i in range(5)])),
    ]
    started = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            for request in requests:
                await export(request)
        await settled(processor, 20)
        assert time.monotonic() - started < 15
        names = delivered_names(sink)
        assert sorted(names) == sorted(["first", *many, *(f"small-{i}" for i in range(5))])
        assert all(len(export) <= MIB for export in sink.received)
        assert processor.registry.export_failures["resource_exhausted"] >= 2
        assert await metrics(processor) == ({"": "306"}, {'{reason="too_large"}': "1"}, {})
    finally:
        await processor.stop()
        await sink.stop()


# --------------------------------------------------------------------------------------
# The splitter and the settings
# --------------------------------------------------------------------------------------
def test_split_by_size_repeats_resource_and_scope_and_keeps_every_span_in_order() -> None:
    first = ExportTraceServiceRequest.FromString(
        make_request(spans_named([f"a-{i}" for i in range(7)], padding="p" * 300), service="svc-a")
    )
    second = ExportTraceServiceRequest.FromString(
        make_request(spans_named([f"b-{i}" for i in range(5)], padding="q" * 300), service="svc-b")
    )
    first.resource_spans.extend(second.resource_spans)
    first.resource_spans[0].schema_url = "https://example.com/schema"
    data = first.SerializeToString()
    pieces = split_by_size(data, 2000)
    # a-0..2 | a-3..5 | a-6 and b-0..1 (both resources) | b-2..4
    assert [count for _, count in pieces] == [3, 3, 3, 3]
    assert [len(ExportTraceServiceRequest.FromString(p).resource_spans) for p, _ in pieces] == [1, 1, 2, 1]
    assert all(1500 < len(piece) <= 2000 for piece, _ in pieces)
    spans = []
    for piece, _ in pieces:
        for resource_spans in ExportTraceServiceRequest.FromString(piece).resource_spans:
            (scope_spans,) = resource_spans.scope_spans
            service = resource_spans.resource.attributes[0].value.string_value
            assert scope_spans.scope.name == "test.scope"
            assert resource_spans.schema_url == ("https://example.com/schema" if service == "svc-a" else "")
            spans += [(service, span.SerializeToString()) for span in scope_spans.spans]
    assert spans == [
        (rs.resource.attributes[0].value.string_value, span.SerializeToString())
        for rs in first.resource_spans
        for span in rs.scope_spans[0].spans
    ]
    assert split_by_size(data, len(data)) == [(data, 12)]  # fits: the very same bytes


def _flat(request: ExportTraceServiceRequest) -> list[tuple[bytes, str, bytes, str, bytes]]:
    return [
        (rs.resource.SerializeToString(), rs.schema_url, ss.scope.SerializeToString(), ss.schema_url,
         span.SerializeToString())
        for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
    ]  # fmt: skip


def test_split_by_size_on_random_requests_keeps_every_span_with_its_framing_under_the_limit() -> None:
    rnd = random.Random(9)
    for _ in range(300):
        request = ExportTraceServiceRequest()
        for _ in range(rnd.randint(1, 3)):
            resource_spans = request.resource_spans.add()
            if rnd.random() < 0.8:
                resource_spans.resource.attributes.add(key="service.name").value.string_value = (
                    "s" * rnd.randint(1, 300)
                )
            resource_spans.schema_url = "u" * rnd.randint(0, 1) * rnd.randint(0, 200)
            for _ in range(rnd.randint(0, 3)):  # empty ResourceSpans and ScopeSpans included
                scope_spans = resource_spans.scope_spans.add(schema_url="v" * rnd.randint(0, 50))
                scope_spans.scope.name = "n" * rnd.randint(0, 200)
                for number in range(rnd.randint(0, 30)):
                    scope_spans.spans.add(name="x" * rnd.randint(1, 400), span_id=bytes([number]) * 8)
        data = request.SerializeToString()
        limit = rnd.randint(50, 3000)
        pieces = split_by_size(data, limit)
        spans = []
        for piece, count in pieces:
            held = _flat(ExportTraceServiceRequest.FromString(piece))
            assert len(held) == count
            assert len(piece) <= limit or count <= 1  # over it: one span (or framing) that cannot fit
            spans += held
        assert spans == _flat(request)
        if len(data) <= limit:
            assert len(pieces) == 1


def test_max_batch_bytes_above_max_message_bytes_is_refused_naming_key_value_and_rule() -> None:
    environ = {
        "GENAI_OTEL_PROCESSOR_FORWARD__MAX_MESSAGE_BYTES": "2MiB",
        "GENAI_OTEL_PROCESSOR_FORWARD__MAX_BATCH_BYTES": "3000000",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    assert str(caught.value) == (
        "invalid processor configuration: forward.max_batch_bytes='3000000' (from env): "
        "must not exceed forward.max_message_bytes (2097152)"
    )
    config = load_config(environ={"GENAI_OTEL_PROCESSOR_FORWARD__MAX_MESSAGE_BYTES": "2MiB"})
    assert (config.forward.max_message_bytes, config.forward.batch_bytes) == (2 * MIB, 2 * MIB)


# --------------------------------------------------------------------------------------
# Answers after forwarding (acknowledge: forwarded, the default) with merged and split exports
# --------------------------------------------------------------------------------------
async def test_each_sender_hears_back_once_its_own_spans_are_settled_when_exports_merge_or_split() -> None:
    """Concurrent senders (as a collector's exporter consumers are) share merged exports; a
    refused merge is resent by part and a request over the limit travels in pieces. Each answer
    comes only once that sender's spans are at the next hop (or dropped and counted)."""
    sink = await StrictSink(delay_seconds=0.05).start()
    processor = await start_processor(sink, acknowledge="forwarded")
    good = [make_request(spans_named([f"good-{r}-{i}" for i in range(10)])) for r in range(12)]
    bad = with_invalid_utf8(make_request(spans_named([f"bad-{i}" for i in range(10)], note=BAD_TEXT)))
    padding = "x" * 6000  # ~6.5 MiB in all: over the 4 MiB limit, forwarded in pieces
    large = make_request(spans_named([f"large-{i}" for i in range(1000)], padding=padding))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)

            async def send(request: bytes, names: list[str]) -> None:
                await export(request)
                # the answer came: this sender's spans are at the next hop already
                assert set(names) <= set(delivered_names(sink)), names[0]

            await asyncio.gather(
                *(send(request, [f"good-{r}-{i}" for i in range(10)]) for r, request in enumerate(good)),
                send(bad, []),
                send(large, [f"large-{i}" for i in range(1000)]),
            )
        assert processor.registry.queue_spans == 0
        assert len(delivered_names(sink)) == 120 + 1000
        assert all(len(payload) <= 4 * MIB for payload in sink.received)
        assert processor.registry.dropped == {"rejected_invalid_argument": 10}
    finally:
        await processor.stop()
        await sink.stop()
