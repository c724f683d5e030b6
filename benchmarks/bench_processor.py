"""Processor throughput: GenAI spans per processor CPU-second, and its peak memory.

    .venv/bin/python benchmarks/bench_processor.py [--requests 200] [--spans 512]
    GENAI_OTEL_PURE_PYTHON=1 .venv/bin/python benchmarks/bench_processor.py  # the fallback
    .venv/bin/python benchmarks/bench_processor.py --instructions  # callgrind, deterministic
    .venv/bin/python benchmarks/bench_processor.py --scrape-interval 0.1  # /metrics scraped meanwhile

Starts the real processor (`genai-otel processor`, a child process) forwarding to an OTLP
sink in this process, sends realistic ExportTraceServiceRequests over gRPC on 127.0.0.1
(512 spans each: a quarter HTTP/DB spans, the rest GenAI spans from several providers,
models, instrumentations, users and features, some with errors or cache tokens) after a warm-up
that sends each of the eight distinct requests once (a running processor has seen its span kinds:
the first sighting of each goes through the Python path, which teaches the C lane), then sends
the same requests again as new calls (every span under a new span id: the same bytes again would
be a retry, which the processor forwards and counts nothing for), waits until
the sink has every span, and reads the processor's own CPU time (utime + stime from /proc)
and peak RSS (VmHWM). A second figure times the pipeline alone in this process. With
`--scrape-interval S`, /metrics is also scraped every S seconds (OpenMetrics, as Prometheus asks)
while the requests are sent, so the processor's CPU includes serving those scrapes.

`--instructions` counts instructions per GenAI span under valgrind's callgrind instead, figures
a shared, noisy machine does not move: the pipeline alone (two runs, 4 and 24 requests after
the warm-up; the difference over 20 requests), then the whole processor end to end (two runs
of 10 and 30 requests, the processor under valgrind with its counters zeroed after the warm-up;
every thread, user space only: the kernel's share of receiving and sending is not in it).
Young-generation garbage collections are counted; objects alive after the warm-up are frozen
(`gc.freeze`), so a rare full collection does not land in one run and not the other.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import EXPORT, Sink, cpu_seconds, fresh_exports, kv, proc_status_mib, scrape, start_processor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

CALLS = [
    ("openai", "gpt-4o", "chat"),
    ("openai", "gpt-4o-mini", "chat"),
    ("openai", "o3", "chat"),
    ("anthropic", "claude-sonnet-4-5", "chat"),
    ("anthropic", "claude-3-5-haiku-latest", "chat"),
    ("gcp.gemini", "gemini-2.5-pro", "generate_content"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "chat"),
    ("openai", "text-embedding-3-small", "embeddings"),
]


def build_request(rng: random.Random, spans: int) -> bytes:
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    per_resource = spans // 4
    for r in range(4):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend([kv("service.name", f"svc-{r}"), kv("host.name", "h1")])
        scope = resource_spans.scope_spans.add()
        scope.scope.name = ("genai_otel.instrumentation.openai", "opentelemetry.instrumentation.openai")[
            r % 2
        ]
        for i in range(per_resource):
            span = scope.spans.add(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                parent_span_id=rng.randbytes(8),
                start_time_unix_nano=now - rng.randrange(10**10),
                kind=3,
            )
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(10**8, 5 * 10**9)
            if i % 4 == 0:  # a quarter: ordinary HTTP/DB spans
                span.name = "GET /api/orders"
                span.attributes.extend(
                    kv(k, v)
                    for k, v in (
                        ("http.request.method", "GET"),
                        ("http.route", "/api/orders"),
                        ("http.response.status_code", 200),
                        ("server.address", "orders.internal"),
                        ("url.full", f"https://orders.internal/api/orders/{rng.randrange(10**6)}"),
                        ("network.protocol.version", "1.1"),
                    )
                )
                span.status.code = 0
                continue
            provider, model, operation = CALLS[rng.randrange(len(CALLS))]
            inp = rng.randrange(50, 20_000)
            attributes: dict[str, object] = {
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.response.id": f"resp-{rng.randrange(10**12)}",
                "gen_ai.response.finish_reasons": "stop",
                "server.address": "api.example.com",
                "server.port": 443,
                "gen_ai.request.temperature": 0.7,
                "gen_ai.request.max_tokens": 1024,
                "user.id": f"user-{rng.randrange(300)}",
                "genai_otel.feature": f"feature-{rng.randrange(12)}",
            }
            if r % 2:  # OpenLLMetry-style spelling
                attributes |= {"gen_ai.system": provider, "llm.request.type": "chat",
                               "gen_ai.usage.prompt_tokens": inp}  # fmt: skip
            else:
                attributes |= {"gen_ai.provider.name": provider, "gen_ai.usage.input_tokens": inp}
            if operation != "embeddings":
                attributes["gen_ai.usage.output_tokens"] = rng.randrange(1, 2000)
                attributes["gen_ai.response.time_to_first_chunk"] = rng.random()
            if rng.random() < 0.3:
                attributes["gen_ai.usage.cache_read.input_tokens"] = inp // 2
            if rng.random() < 0.03:
                attributes["error.type"] = "RateLimitError"
                span.status.code = 2
            span.name = f"{operation} {model}"
            span.attributes.extend(kv(k, v) for k, v in attributes.items())
    return request.SerializeToString()


async def end_to_end(
    payloads: list[bytes],
    genai_per_request: int,
    requests: int,
    concurrency: int = 1,
    *,
    callgrind: bool = False,
    scrape_interval: float = 0.0,
) -> int:
    """Prints the figures; returns the processor's instructions over the timed part (callgrind:
    the processor runs under valgrind, its counters zeroed after the warm-up), else 0."""
    sink = Sink()
    server, sink_port = await sink.serve()
    under = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null") if callgrind else ()
    process, port, metrics_port = start_processor(sink_port, under=under, quiet=callgrind)
    counted = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 300 if callgrind else 30)
            export = channel.unary_unary(EXPORT)
            # warm up as pipeline_only does: every payload once (imports, price resolution, and
            # the first sighting of each span kind, which the C lane learns from the Python path)
            for payload in payloads:
                await export(payload)
            while sink.spans < 512 * len(payloads):  # noqa: ASYNC110 - polling a plain counter
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            sink.spans = sink.calls = 0
            if callgrind:
                await _callgrind_control("--zero", process.pid)
            exports = fresh_exports(payloads, requests)  # the warm-up's calls, made anew
            cpu_before = cpu_seconds(process.pid)
            wall = time.perf_counter()
            sent = 0

            async def sender(first: int) -> None:
                nonlocal sent
                for i in range(first, requests, concurrency):
                    while True:
                        try:
                            await export(exports[i])
                            break
                        except grpc.aio.AioRpcError as err:
                            if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                                raise
                            await asyncio.sleep(0.01)
                    sent += 1

            scrapes = 0

            async def scraper() -> None:
                nonlocal scrapes
                while True:
                    await asyncio.sleep(scrape_interval)
                    await scrape(metrics_port)
                    scrapes += 1

            scraping = asyncio.ensure_future(scraper()) if scrape_interval > 0 else None
            await asyncio.gather(*(sender(first) for first in range(concurrency)))
            total_spans = sent * 512
            while sink.spans < total_spans:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if scraping is not None:
                scraping.cancel()
            # one scrape, as Prometheus makes every 15 s: the lane adds its sums to the series then
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            scraped = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=30).read())
            cpu = cpu_seconds(process.pid) - cpu_before
            if callgrind:  # every thread's count since the zeroing ("Th 1  123,456" lines)
                report = await _callgrind_control("-e", process.pid)
                counted = sum(int(line.split()[2].replace(",", "")) for line in report.splitlines()
                              if line.split()[:1] == ["Th"])  # fmt: skip
            wall = time.perf_counter() - wall
            genai = sent * genai_per_request
            print(f"end to end: {sent} requests x 512 spans ({genai} GenAI), {concurrency} in flight,"
                  f" forwarded in {wall:.2f} s wall; the next hop got {sink.calls} exports")  # fmt: skip
            print(f"  processor CPU {cpu:.2f} s -> {genai / cpu:,.0f} GenAI spans per processor CPU-second")
            print(f"  ({total_spans / cpu:,.0f} spans of all kinds per CPU-second)")
            print(f"  processor peak RSS {proc_status_mib(process.pid, 'VmHWM'):.1f} MiB; one /metrics scrape"
                  f" ({len(scraped) // 1024} KiB) included")  # fmt: skip
            if scraping is not None:
                print(f"  and {scrapes} more scrapes meanwhile, one every {scrape_interval} s")
    finally:
        process.terminate()
        process.wait(60)
        await server.stop(0)
    return counted


async def _callgrind_control(option: str, pid: int) -> str:
    done = await asyncio.to_thread(
        subprocess.run, ["callgrind_control", option, str(pid)], capture_output=True, text=True, check=True
    )
    return done.stdout


def pipeline_only(
    payloads: list[bytes], genai_per_request: int, requests: int, memory: bool = True, lane: bool = True
) -> None:
    import tracemalloc

    from genai_otel.processors.config import load_config
    from genai_otel.processors.service import Processor

    processor = Processor(load_config(environ={}))
    pipeline = processor.pipeline
    if not lane:  # every span through the Python path (first sightings, reported costs, evaluations)
        pipeline._lane = None
    for payload in payloads:  # warm the price caches
        pipeline.process(payload, pipeline.split(payload)[0])
    if not memory:  # counting instructions: no full collection lands in one run and not the other
        gc.collect()
        gc.freeze()
    # the warm-up's calls made anew (the same number whatever `requests`, up to 32: --instructions
    # subtracts two runs' whole-process counts)
    exports = fresh_exports(payloads, max(requests, 32))
    started = time.process_time()
    for i in range(requests):
        payload = exports[i]
        blocks, _ = pipeline.split(payload)
        pipeline.process(payload, blocks)
    processor.registry.settle()  # what a scrape does first: the lane's sums reach the series
    cpu = time.process_time() - started
    if not memory:
        return
    exports = fresh_exports(payloads, len(payloads))
    tracemalloc.start()
    for payload in exports:
        pipeline.process(payload, pipeline.split(payload)[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    what = "pipeline only (no gRPC)" if lane else "the Python path alone (--python-path: no lane, no gRPC)"
    print(f"{what}: {requests * genai_per_request / cpu:,.0f} GenAI spans per CPU-second;"
          f" peak traced allocation per request {peak / len(payloads) / 1024:.0f} KiB")  # fmt: skip


def _callgrind_instructions(requests: int) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--pipeline-only", "--requests", str(requests)],
            check=True, capture_output=True,
        )  # fmt: skip
        for line in out.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def instructions(payloads: list[bytes], genai_per_request: int) -> None:
    counts = {n: _callgrind_instructions(n) for n in (4, 24)}
    per_span = (counts[24] - counts[4]) / (20 * genai_per_request)
    print(f"pipeline instructions per GenAI span (callgrind, 20 requests): {per_span:,.0f}")
    with open(os.devnull, "w") as quiet:  # the timed figures under valgrind mean nothing
        stdout, sys.stdout = sys.stdout, quiet
        try:
            ends = {
                n: asyncio.run(end_to_end(payloads, genai_per_request, n, callgrind=True)) for n in (10, 30)
            }
        finally:
            sys.stdout = stdout
    per_span = (ends[30] - ends[10]) / (20 * genai_per_request)
    print(f"end-to-end processor instructions per GenAI span, every thread, user space (callgrind,"
          f" 20 requests, one scrape each run): {per_span:,.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="exports in flight at once (a collector runs several)"
    )
    parser.add_argument("--instructions", action="store_true", help="callgrind instruction counts")
    parser.add_argument(
        "--scrape-interval", type=float, default=0.0, help="also scrape /metrics every this many seconds"
    )
    parser.add_argument(
        "--python-path", action="store_true", help="the pipeline with every span on the Python path (no lane)"
    )
    parser.add_argument("--pipeline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rng = random.Random(7)
    payloads = [build_request(rng, args.spans) for _ in range(8)]
    genai_per_request = args.spans - args.spans // 4
    if args.pipeline_only:
        pipeline_only(payloads, genai_per_request, args.requests, memory=False)
        return
    if args.instructions:
        instructions(payloads, genai_per_request)
        return
    if args.python_path:
        pipeline_only(payloads, genai_per_request, args.requests, lane=False)
        return
    from genai_otel.processors.scan import PURE_PYTHON_ENV, use_accelerated

    walk = "C extension _wirescan" if use_accelerated() else f"pure Python ({PURE_PYTHON_ENV} or not built)"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; request {len(payloads[0]) // 1024} KiB;"
          f" request walk: {walk}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    pipeline_only(payloads, genai_per_request, args.requests)
    asyncio.run(
        end_to_end(
            payloads, genai_per_request, args.requests, args.concurrency, scrape_interval=args.scrape_interval
        )
    )


if __name__ == "__main__":
    main()
