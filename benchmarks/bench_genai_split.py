"""Processor CPU per 1,000 application spans at a 10% GenAI share: every span through the processor
(before issue 12) against only the GenAI spans (the collector's filter split, collector-config/).

    .venv/bin/python benchmarks/bench_genai_split.py [--requests 200] [--spans 500] [--share 0.1]

The same application traffic twice, each time to a fresh `genai-otel processor` (a child process)
forwarding to an OTLP sink in this process: requests of `--spans` spans of which `--share` are GenAI
calls and the rest ordinary HTTP spans. "all spans" sends the requests whole, as collector.yaml did
before the split; "GenAI only" sends each request with its non-GenAI spans removed, which is what
the collector's `filter/genai-only` hands the processor. After a warm-up, the processor's own CPU
time (utime + stime from /proc) over the timed requests is divided by the application spans they
stood for. The figures go to the README ("Only GenAI spans go to the processor").
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import EXPORT, Sink, kv, start_processor
from bench_processor import CALLS, _cpu_seconds
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def application_request(rng: random.Random, spans: int, share: float) -> ExportTraceServiceRequest:
    """`spans` spans of one service; every 1/share-th is a GenAI call, the others HTTP spans."""
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([kv("service.name", "shop"), kv("host.name", "h1")])
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.requests"
    every = round(1 / share)
    for i in range(spans):
        span = scope.spans.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            start_time_unix_nano=now - rng.randrange(10**10),
            kind=3,
        )
        span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(10**7, 10**9)
        if i % every:
            span.name = "GET /api/orders"
            span.attributes.extend(
                kv(k, v)
                for k, v in (
                    ("http.request.method", "GET"),
                    ("http.route", "/api/orders"),
                    ("http.response.status_code", 200),
                    ("server.address", "orders.internal"),
                    ("url.full", f"https://orders.internal/api/orders/{rng.randrange(10**6)}"),
                )
            )
            continue
        provider, model, operation = CALLS[rng.randrange(len(CALLS))]
        span.name = f"{operation} {model}"
        span.attributes.extend(
            kv(k, v)
            for k, v in (
                ("gen_ai.operation.name", operation),
                ("gen_ai.provider.name", provider),
                ("gen_ai.request.model", model),
                ("gen_ai.response.model", model),
                ("gen_ai.usage.input_tokens", rng.randrange(50, 20_000)),
                ("gen_ai.usage.output_tokens", rng.randrange(1, 2000)),
                ("server.address", "api.example.com"),
            )
        )
    return request


def genai_only(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """The request as filter/genai-only leaves it."""
    kept = ExportTraceServiceRequest()
    kept.CopyFrom(request)
    for resource_spans in kept.resource_spans:
        for scope in resource_spans.scope_spans:
            genai = [s for s in scope.spans if any(a.key.startswith("gen_ai.") for a in s.attributes)]
            del scope.spans[:]
            scope.spans.extend(genai)
    return kept


async def processor_cpu(payloads: list[bytes], span_counts: list[int], requests: int) -> tuple[float, int]:
    """(processor CPU seconds, spans forwarded) for `requests` payloads after a warm-up."""
    sink = Sink()
    server, sink_port = await sink.serve()
    process, port, _ = start_processor(sink_port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
            export = channel.unary_unary(EXPORT)
            for payload in payloads:
                await export(payload)
            while sink.spans < sum(span_counts):  # noqa: ASYNC110 - polling a plain counter
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            sink.spans = 0
            before = _cpu_seconds(process.pid)
            expected = 0
            for i in range(requests):
                await export(payloads[i % len(payloads)])
                expected += span_counts[i % len(payloads)]
            while sink.spans < expected:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return _cpu_seconds(process.pid) - before, expected
    finally:
        process.terminate()
        process.wait(60)
        await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spans", type=int, default=500, help="application spans per request")
    parser.add_argument("--share", type=float, default=0.1, help="GenAI share of the application's spans")
    args = parser.parse_args()
    rng = random.Random(12)
    whole = [application_request(rng, args.spans, args.share) for _ in range(8)]
    application_spans = args.requests * args.spans
    print(f"{args.requests} requests x {args.spans} application spans, {args.share:.0%} GenAI")
    for label, requests in (("all spans", whole), ("GenAI only", [genai_only(r) for r in whole])):
        payloads = [r.SerializeToString() for r in requests]
        counts = [sum(len(s.spans) for rs in r.resource_spans for s in rs.scope_spans) for r in requests]
        cpu, forwarded = asyncio.run(processor_cpu(payloads, counts, args.requests))
        print(
            f"  {label:<10}: processor CPU {cpu:.2f} s for {forwarded} spans received -> "
            f"{1000 * cpu / application_spans * 1000:.1f} ms per 1,000 application spans"
        )


if __name__ == "__main__":
    main()
