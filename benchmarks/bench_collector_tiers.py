"""Collector throughput per core: application spans per collector CPU-second, for the gateway tier
(collector-config/gateway.yaml) and the sampling tier (collector-config/sampler.yaml).

    .venv/bin/python benchmarks/bench_collector_tiers.py [--requests 400] [--spans 500] [--share 0.1]

Runs the real collector (the cached binary of `scripts/build-components`) on 127.0.0.1 with the
config the local stack and the Kubernetes chart run, and feeds it requests of `--spans`
application spans of which `--share` are GenAI calls (benchmarks/bench_genai_split.py's traffic).

- gateway: the full gateway path. A stand-in for the processors (in this process) takes the GenAI
  spans from `loadbalancing/processors` and sends them straight back to the gateway's
  `otlp/enriched` receiver, as a processor forwards priced spans; a stand-in sampler counts what
  `loadbalancing/samplers` delivers. The gateway handles every application span once and every
  GenAI span twice, through its persistent (file_storage) queues.
- sampler: a sampler fed the same requests (what the gateways send it), tail sampling with
  collector.yaml's policies (decision after 2 s of a root span; here every span is a root, so each
  trace is decided 10 s after its first span at the latest) and exporting the kept ones to a
  stand-in Jaeger.

After a warm-up the collector's own CPU time (utime + stime from /proc) over the timed requests
is divided into the application spans they carried. The figures go to the README's capacity table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import EXPORT, free_port
from bench_genai_split import application_request
from bench_processor import _cpu_seconds
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from genai_otel.stack import build
from genai_otel.stack.env import REPO_ROOT

CONFIGS = REPO_ROOT / "collector-config"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def span_count(request: bytes) -> int:
    parsed = ExportTraceServiceRequest.FromString(request)
    return sum(len(scope.spans) for resource in parsed.resource_spans for scope in resource.scope_spans)


class StandIn:
    """An OTLP trace receiver counting spans; with `echo_to`, it re-exports each request there first
    (a processor stand-in: priced spans go back to the gateway's enriched receiver)."""

    def __init__(self, echo_to: str | None = None) -> None:
        self.spans = 0
        self._echo_to = echo_to
        self._channel: grpc.aio.Channel | None = None

    async def export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if self._echo_to is not None:
            if self._channel is None:
                self._channel = grpc.aio.insecure_channel(self._echo_to)
            await self._channel.unary_unary(EXPORT)(request, timeout=30)
        self.spans += span_count(request)
        return b""

    async def serve(self) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
        handler = grpc.unary_unary_rpc_method_handler(self.export)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port


def _start(collector: Path, config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    output = subprocess.DEVNULL
    return subprocess.Popen([str(collector), "--config", str(config)], env=env, stdout=output, stderr=output)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the collector exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the collector did not become healthy at {url}")


async def run_tier(
    tier: str, payloads: list[bytes], spans_per_request: int, requests: int
) -> tuple[float, int, float]:
    """(collector CPU seconds, application spans, wall seconds) for `requests` timed requests."""
    collector = build.binary("collector")
    if not os.access(collector, os.X_OK):
        raise SystemExit("the collector is not built: scripts/build-components collector")
    listen, enriched = free_port(), free_port()
    health, telemetry, sdk_metrics = free_port(), free_port(), free_port()
    counter = StandIn()  # the samplers (gateway) or Jaeger (sampler)
    counter_server, counter_port = await counter.serve()
    servers = [counter_server]
    with tempfile.TemporaryDirectory(prefix="genai-otel-bench-") as scratch:
        env = {
            **os.environ,
            "COLLECTOR_LISTEN_HOST": "127.0.0.1",
            "COLLECTOR_HEALTH_PORT": str(health),
            "COLLECTOR_TELEMETRY_PORT": str(telemetry),
            "ENRICHED_MAX_RECV_MSG_MIB": "4",
        }
        if tier == "gateway":
            processor = StandIn(echo_to=f"127.0.0.1:{enriched}")
            processor_server, processor_port = await processor.serve()
            servers.append(processor_server)
            endpoints = Path(scratch) / "processor-endpoints.yaml"
            endpoints.write_text(json.dumps([f"127.0.0.1:{processor_port}"]))
            env |= {
                "OTLP_GRPC_PORT": str(listen),
                "OTLP_HTTP_PORT": str(free_port()),
                "COLLECTOR_ENRICHED_OTLP_PORT": str(enriched),
                "COLLECTOR_PROMETHEUS_EXPORTER_PORT": str(sdk_metrics),
                "COLLECTOR_STORAGE_DIR": str(Path(scratch) / "storage"),
                "PROCESSOR_ENDPOINTS_FILE": str(endpoints),
                "SAMPLER_ENDPOINTS": json.dumps([f"127.0.0.1:{counter_port}"]),
            }
            config = CONFIGS / "gateway.yaml"
        else:
            env |= {
                "SAMPLER_OTLP_PORT": str(listen),
                "JAEGER_OTLP_ENDPOINT": f"127.0.0.1:{counter_port}",
                # keep every trace: the exporter's work is counted, whatever the policies keep
                **{
                    f"TAIL_SAMPLING_PERCENT_{m}": "100"
                    for m in ("GPT_4O", "GPT_4O_MINI", "O3_MINI", "CLAUDE_SONNET", "CLAUDE_HAIKU", "OTHER")
                },
                "TAIL_SAMPLING_DECISION_WAIT": "1s",
                "TAIL_SAMPLING_DECISION_WAIT_AFTER_ROOT": "1s",
            }
            config = CONFIGS / "sampler.yaml"
        process = _start(collector, config, env)
        try:
            _wait_healthy(f"http://127.0.0.1:{health}/", process)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{listen}") as channel:
                export = channel.unary_unary(EXPORT)
                for payload in payloads:  # warm-up
                    await export(payload, timeout=30)
                while counter.spans < len(payloads) * spans_per_request:  # noqa: ASYNC110 - a plain counter
                    await asyncio.sleep(0.05)
                counter.spans = 0
                before, wall = _cpu_seconds(process.pid), time.perf_counter()
                in_flight = [export(payloads[i % len(payloads)], timeout=60) for i in range(requests)]
                for start in range(0, requests, 4):  # four exports in flight, as an SDK's exporters
                    await asyncio.gather(*in_flight[start : start + 4])
                expected = requests * spans_per_request
                while counter.spans < expected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                return _cpu_seconds(process.pid) - before, expected, time.perf_counter() - wall
        finally:
            process.terminate()
            process.wait(30)
            for server in servers:
                await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--spans", type=int, default=500, help="application spans per request")
    parser.add_argument("--share", type=float, default=0.1, help="GenAI share of the application's spans")
    parser.add_argument("--tier", choices=("gateway", "sampler", "both"), default="both")
    args = parser.parse_args()
    rng = random.Random(12)
    payloads = [application_request(rng, args.spans, args.share).SerializeToString() for _ in range(8)]
    print(f"{args.requests} requests x {args.spans} application spans, {args.share:.0%} GenAI")
    for tier in ("gateway", "sampler") if args.tier == "both" else (args.tier,):
        cpu, spans, wall = asyncio.run(run_tier(tier, payloads, args.spans, args.requests))
        print(
            f"  {tier:<8}: {spans} application spans, collector CPU {cpu:.2f} s "
            f"-> {spans / cpu:,.0f} application spans per collector CPU-second ({wall:.1f} s wall)"
        )


if __name__ == "__main__":
    main()
