"""The processor's CPU per small HTTP request: the cost of its HTTP server itself.

    .venv/bin/python benchmarks/bench_http.py [--requests 2000]

Starts the real processor (`genai-otel processor`, a child process) with nothing received, then
makes `--requests` sequential requests, each on a connection of its own (as the server answers
with `Connection: close`), to `/healthz` and then to `/metrics` (a small exposition), after 100 of
each as a warm-up; prints the processor's CPU time (utime + stime) per request and the round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import Sink, cpu_seconds, start_processor


async def get(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    if not response.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path} failed: {response[:80]!r}")


async def run(requests: int) -> None:
    sink = Sink()
    server, sink_port = await sink.serve()
    process, _, metrics_port = start_processor(sink_port)
    try:
        for _ in range(300):  # until it listens
            try:
                await get(metrics_port, "/healthz")
                break
            except OSError:
                await asyncio.sleep(0.1)
        for path in ("/healthz", "/metrics"):
            for _ in range(100):
                await get(metrics_port, path)
            cpu, wall = cpu_seconds(process.pid), time.perf_counter()
            for _ in range(requests):
                await get(metrics_port, path)
            cpu, wall = cpu_seconds(process.pid) - cpu, time.perf_counter() - wall
            print(f"{path}: {cpu / requests * 1e6:.0f} µs processor CPU per request,"
                  f" {wall / requests * 1e3:.2f} ms round trip ({requests} requests)")  # fmt: skip
    finally:
        process.terminate()
        process.wait(60)
        await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(run(parser.parse_args().requests))


if __name__ == "__main__":
    main()
