"""Series, /metrics size, scrape time and RSS at 20,000 distinct label combinations.

    .venv/bin/python benchmarks/bench_series.py [--services 200] [--models 100] [--scrapes 3]

Starts the real processor (`genai-otel processor`, a child process) twice, forwarding to an
OTLP sink in this process: once with the default `labels.max_series` and once with the cap
effectively off (`labels.max_series=1000000000`; the per-label caps still apply). Each run sends
one request per service, one priced GenAI span per model (200 x 100 = 20,000 distinct
(service, provider, model, operation) label sets, each with a duration, time-to-first-chunk,
cost and tokens-per-second histogram, a user and a feature), waits until the sink has every span,
then reports the call series exposed, the bytes of the classic text and OpenMetrics expositions,
the scrape time (best and median of `--scrapes`, HTTP round trip), the processor's CPU per scrape
(over all of them), an OTLP export round trip made while a
scrape is running, and the processor's RSS (VmRSS) and peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import EXPORT, Sink, cpu_seconds, kv, proc_status_mib, scrape, start_processor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

OFF = 1_000_000_000
# every bench model priced, so each series has its cost families too
OVERRIDES = """custom_models:
  - provider: "*"
    model: bench-model-*
    prices:
      - {from: 2020-01-01, input_mtok: 1.0, output_mtok: 4.0}
"""


def build_request(service: int, models: int) -> bytes:
    request = ExportTraceServiceRequest()
    now = time.time_ns()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", f"svc-{service:03d}"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "genai_otel.instrumentation.openai"
    for m in range(models):
        span = scope.spans.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name=f"chat bench-model-{m:03d}",
            kind=3,
            start_time_unix_nano=now - 2_000_000_000,
            end_time_unix_nano=now,
        )
        attributes: dict[str, object] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": f"bench-model-{m:03d}",
            "gen_ai.usage.input_tokens": 1000 + m,
            "gen_ai.usage.output_tokens": 100 + service,
            "gen_ai.response.time_to_first_chunk": 0.25,
            "user.id": f"user-{(service * 7 + m) % 300}",
            "genai_otel.feature": f"feature-{m % 12}",
        }
        span.attributes.extend(kv(k, v) for k, v in attributes.items())
    return request.SerializeToString()


def _call_series(text: bytes) -> int:
    """Distinct label sets of llm_requests_total (status and error_type aside)."""
    sets = set()
    for line in text.splitlines():
        if line.startswith(b"llm_requests_total{"):
            labels = line[len(b"llm_requests_total{") : line.index(b"}")]
            sets.add(labels.split(b',status="')[0])
    return len(sets)


async def run(max_series: int | None, services: int, models: int, scrapes: int, overrides: Path) -> None:
    sink = Sink()
    server, sink_port = await sink.serve()
    cap = () if max_series is None else (f"labels.max_series={max_series}",)
    process, port, metrics_port = start_processor(sink_port, f"pricing.overrides_file={overrides}", *cap)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
            export = channel.unary_unary(EXPORT)
            for service in range(services):
                await export(build_request(service, models))
            while sink.spans < services * models:  # noqa: ASYNC110 - polling a plain counter
                await asyncio.sleep(0.01)
            text_times, om_times = [], []
            cpu = cpu_seconds(process.pid)
            for _ in range(scrapes):
                started = time.perf_counter()
                text = await scrape(metrics_port, openmetrics=False)
                text_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                om = await scrape(metrics_port, openmetrics=True)
                om_times.append(time.perf_counter() - started)
            cpu = cpu_seconds(process.pid) - cpu
            # one export round trip while an OpenMetrics scrape is being rendered
            small = build_request(0, 1)
            rendering = asyncio.ensure_future(scrape(metrics_port, openmetrics=True))
            await asyncio.sleep(min(om_times) / 4)
            started = time.perf_counter()
            await export(small)
            during = time.perf_counter() - started
            scrape_done = not rendering.done()
            await rendering
            label = "default" if max_series is None else f"max_series={max_series:,}"
            print(f"labels.max_series {label}: {services * models:,} distinct label combinations sent")
            print(f"  call series exposed {_call_series(text):,}; /metrics text {len(text):,} bytes,"
                  f" OpenMetrics {len(om):,} bytes")  # fmt: skip
            best_text, best_om = min(text_times), min(om_times)
            print(f"  scrape (best of {scrapes}) text {best_text:.3f} s, OpenMetrics {best_om:.3f} s;"
                  f" median text {statistics.median(text_times):.3f} s,"
                  f" OpenMetrics {statistics.median(om_times):.3f} s")  # fmt: skip
            print(f"  processor CPU per scrape {cpu / (2 * scrapes) * 1000:.1f} ms (text and OpenMetrics)")
            print(f"  an OTLP export during a scrape: {during * 1000:.1f} ms"
                  f"{'' if scrape_done else ' (the scrape had already ended)'}")  # fmt: skip
            print(f"  processor RSS {proc_status_mib(process.pid, 'VmRSS'):.1f} MiB,"
                  f" peak {proc_status_mib(process.pid, 'VmHWM'):.1f} MiB")  # fmt: skip
    finally:
        process.terminate()
        process.wait(60)
        await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = Path(tmp) / "bench-prices.yaml"
        overrides.write_text(OVERRIDES)
        for max_series in (None, OFF):
            asyncio.run(run(max_series, args.services, args.models, args.scrapes, overrides))


if __name__ == "__main__":
    main()
