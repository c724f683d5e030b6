"""The real gRPC service on 127.0.0.1: OTLP in from the SDK exporter, forwarding, backpressure, drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from genai_otel.processors.config import load_config
from genai_otel.processors.service import Processor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from genai_otel import semconv as sc
from genai_otel.stack.runner import free_port

from .helpers import EXPORT, GENAI, Sink, attributes_of, make_request, make_span, renewed, samples, scrape


def processor_config(forward_port: int, **forward: object) -> Processor:
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 5,
            "forward": {"endpoint": f"127.0.0.1:{forward_port}", **forward},
        },
        environ={},
    )
    return Processor(config)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.stop()


async def _export_with_sdk(port: int, count: int) -> None:
    def send() -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": "sdk-app"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True))
        )
        tracer = provider.get_tracer("sdk.test")
        for _ in range(count):
            with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI):
                pass
        provider.shutdown()

    await asyncio.to_thread(send)


async def _wait(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def _delivered(processor: Processor, sink: Sink, spans: int) -> None:
    """The next hop holds `spans` spans and the processor has seen its answers: the sink records a
    request before its reply reaches the processor, whose forwarded count moves only then."""
    await _wait(
        lambda: (
            len(sink.spans()) == spans
            and processor.registry.forwarded == spans
            and processor.registry.queue_spans == 0
        )
    )


async def test_sdk_exporter_to_processor_to_sink_with_metrics_and_health(sink: Sink) -> None:
    processor = processor_config(sink.port)
    await processor.start()
    try:
        await _export_with_sdk(processor.port, 3)
        await _delivered(processor, sink, 3)
        for span in sink.spans():
            attributes = attributes_of(span)
            assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0035, abs=1e-9)
            assert attributes[sc.GEN_AI_USAGE_COST_SOURCE] == "local"
        content_type, body = await asyncio.to_thread(scrape, processor.metrics_port, True)
        assert content_type.startswith("application/openmetrics-text")
        base = '{service="sdk-app",provider="openai",model="gpt-4o",operation="chat"'
        assert samples(body, sc.PROM_LLM_REQUESTS) == {base + ',status="ok",error_type=""}': "3"}
        assert samples(body, sc.PROM_PROCESSOR_SPANS_FORWARDED) == {"": "3"}
        assert samples(body, sc.PROM_PROCESSOR_QUEUE_DEPTH) == {"": "0"}
        content_type, _ = await asyncio.to_thread(scrape, processor.metrics_port, False)
        assert content_type.startswith("text/plain; version=0.0.4")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await processor.stop()


async def test_malformed_request_gets_invalid_argument(sink: Sink) -> None:
    processor = processor_config(sink.port)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await export(b"\x0a\xff\xff\x7fnot protobuf")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert processor.registry.rejected == {"malformed": 1}
        assert processor.registry.received == {"genai": 0, "other": 0}
    finally:
        await processor.stop()


async def test_backpressure_rejects_with_retry_info_and_counts_each_span_once() -> None:
    next_hop = free_port()  # nothing listens yet: the next hop is down
    processor = processor_config(
        next_hop,
        queue_max_spans=2,
        acknowledge="accepted",  # answered while the next hop is down: the queue fills
        retry={"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.1},
    )
    await processor.start()
    first = make_request([make_span(GENAI), make_span(GENAI)])
    request = renewed(first)  # two more calls
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            await export(first)  # accepted: the queue was empty
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await export(request)  # the queue is full: the caller must retry
            error = caught.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(error.trailing_metadata() or ())
            status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
            info = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info) and info.retry_delay.seconds == 1
            assert error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]) == info
            assert processor.registry.rejected == {"queue_full": 1}
            assert processor.registry.received["genai"] == 2  # the refused request counted nothing

            sink = await Sink().start(next_hop)  # the next hop comes back
            try:
                await _wait(lambda: processor.registry.queue_spans == 0)
                await export(request)  # the caller's retry is accepted now
                await _delivered(processor, sink, 4)
            finally:
                await sink.stop()
        registry = processor.registry
        assert registry.received["genai"] == 4
        assert registry.forwarded == 4
        assert registry.dropped == {}
        assert registry.export_failures.get("unavailable", 0) >= 1
        registry.settle()  # the lane's sums, as an exposition would
        (stats,) = registry.series.values()
        assert stats.requests == {("ok", ""): 4}
    finally:
        await processor.stop()


async def test_next_hop_refusing_for_good_is_a_counted_drop() -> None:
    sink = await Sink(fail_with=grpc.StatusCode.INVALID_ARGUMENT, fail_times=1).start()
    processor = processor_config(sink.port)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await channel.unary_unary(EXPORT)(make_request([make_span(GENAI)]))
        await _wait(lambda: processor.registry.queue_spans == 0)
        assert processor.registry.dropped == {"rejected_invalid_argument": 1}
        assert processor.registry.forwarded == 0
    finally:
        await processor.stop()
        await sink.stop()


LISTENING = re.compile(r"processor listening on (\d+) \(OTLP\) and (\d+) \(metrics\)")


def _listening_port(process: subprocess.Popen[str], seen: list[str]) -> int:
    """The OTLP port the processor bound (it was given port 0), read from its start-up log line."""
    assert process.stderr is not None
    for line in process.stderr:
        seen.append(line)
        if match := LISTENING.search(line):
            return int(match.group(1))
    raise AssertionError("the processor exited before listening")


async def test_sigterm_drains_everything_accepted_to_a_slow_next_hop() -> None:
    sink = await Sink(delay_seconds=0.5).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_OTEL_PROCESSOR_")}
    # Port 0 everywhere: a port picked by the test and released could be taken by any other
    # socket (an outgoing connection's ephemeral port included) before the processor binds it.
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; the loop must keep serving the sink
        [sys.executable, "-m", "genai_otel", "processor", "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--forward-endpoint", f"127.0.0.1:{sink.port}",
         "--set", "forward.concurrency=1", "--set", "shutdown_grace_seconds=15",
         "--set", "forward.acknowledge=accepted"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        port = await asyncio.wait_for(asyncio.to_thread(_listening_port, process, seen), 30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(EXPORT)
            for _ in range(5):
                await export(make_request([make_span(GENAI)] * 10), wait_for_ready=True)
        assert len(sink.spans()) < 50  # the slow next hop has not taken everything yet
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 20)
        assert returncode == 0
        assert len(sink.spans()) == 50  # everything accepted was forwarded before exit
    except BaseException:
        if process.poll() is None:
            process.kill()
        assert process.stderr is not None
        rest = await asyncio.to_thread(process.stderr.read)
        print("processor stderr:\n" + "".join(seen) + rest, file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.kill()
        await sink.stop()


def test_bad_configuration_fails_at_start_naming_key_value_and_rule() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genai_otel", "processor", "--forward-endpoint", "nowhere",
         "--set", "forward.queue_max_spans=0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "forward.endpoint='nowhere' (from flag): must be HOST:PORT" in result.stderr
    assert (
        "forward.queue_max_spans='0' (from flag): Input should be greater than or equal to 1" in result.stderr
    )


@pytest.mark.parametrize(("max_batch_bytes", "exports"), [(4 * 1024 * 1024, 2), (0, 5)])
async def test_requests_waiting_for_the_next_hop_travel_as_one_export(
    max_batch_bytes: int, exports: int
) -> None:
    sink = await Sink(delay_seconds=0.3).start()
    processor = processor_config(
        sink.port, concurrency=1, max_batch_bytes=max_batch_bytes, acknowledge="accepted"
    )
    await processor.start()
    requests = [
        make_request([make_span(GENAI | {"user.id": f"user-{i}"})], service=f"svc-{i}") for i in range(5)
    ]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            for request in requests:  # the first goes out at once; the others wait in the queue
                await export(request)
            await _delivered(processor, sink, 5)
        # one export for the first, one for the four that waited (or one each when disabled)
        assert sink.calls == exports
        services = [
            attributes_of(rs.resource)["service.name"]
            for received in sink.received
            for rs in ExportTraceServiceRequest.FromString(received).resource_spans
        ]
        assert services == [f"svc-{i}" for i in range(5)]  # every request, in the order accepted
    finally:
        await processor.stop()
        await sink.stop()


async def test_the_answer_waits_until_the_next_hop_has_the_spans() -> None:
    """acknowledge=forwarded (the default): a sender told "delivered" never loses the spans to a
    crash of the processor, since they are at the next hop by then."""
    sink = await Sink(delay_seconds=0.5).start()
    processor = processor_config(sink.port)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            export = channel.unary_unary(EXPORT)
            started = time.monotonic()
            answers = await asyncio.gather(
                *(export(make_request([make_span(GENAI)] * 2), timeout=5) for _ in range(3))
            )
            elapsed = time.monotonic() - started
        assert answers == [b"", b"", b""]
        assert len(sink.spans()) == 6  # every span was at the next hop before any answer came
        assert elapsed >= 0.5
        assert processor.registry.forwarded == 6
    finally:
        await processor.stop()
        await sink.stop()


async def test_an_unsettled_forward_is_answered_one_second_before_the_senders_deadline() -> None:
    """A sender that gave up would send the spans again while they still wait here: forwarded and
    counted twice. Instead the processor answers in time and keeps retrying the forward."""
    next_hop = free_port()  # nothing listens: the forward cannot settle
    processor = processor_config(
        next_hop, retry={"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.1}
    )
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            started = time.monotonic()
            answer = await channel.unary_unary(EXPORT)(make_request([make_span(GENAI)]), timeout=2.5)
            elapsed = time.monotonic() - started
        assert answer == b""
        assert 1.3 <= elapsed <= 2.2
        assert processor.registry.queue_spans == 1  # still queued, still being retried
        assert processor.registry.dropped == {}
    finally:
        await processor.stop()
