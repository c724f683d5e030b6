"""Soak: the real `genai-otel processor` at half its measured capacity for a long time; does its
memory grow?

    .venv/bin/python benchmarks/soak.py --minutes 30            # the run the README asks for
    .venv/bin/python benchmarks/soak.py --minutes 3             # a quick check

First the processor's capacity on this machine is measured (`--capacity-seconds` of exports as
fast as `--senders` threads can push them, counted by the processor's forwarded spans); then it is
fed at `--load` (0.5) of that rate, paced, for `--minutes`. Its RSS (/proc/<pid>/status VmRSS)
is sampled once a minute; growth is the last sample over the first one taken after a minute of
warm-up. Spans go straight to the processor (no collector: the Python load generator could not
drive a collector in front at these rates on a small machine) and on to a sink that only counts
exports. Exit status 1 when growth is at or over `--max-growth` (5%).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from genai_otel.stack.runner import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the repository root is on the path only now (the script runs from benchmarks/)
from tests.e2e.crashload import (
    EXPORT,
    CountingSink,
    Processor,
    build_request,
    rss_kib,
    sample_value,
    scrape,
)

REQUEST_SPANS = 500
FORWARDED = "genai_otel_processor_spans_forwarded_total"


def _requests(kinds: int = 16) -> list[bytes]:
    """A few distinct requests (services, span numbers) sent over and over: building a fresh one per
    export would cost the load generator more CPU than the processor spends on it."""
    return [build_request(i * REQUEST_SPANS, REQUEST_SPANS, service=f"soak-{i % 8}") for i in range(kinds)]


def _forwarded(processor: Processor) -> float:
    return sample_value(scrape(processor.metrics_url), FORWARDED)


def _send(endpoint: str, stop: threading.Event, pace: float | None, requests: list[bytes]) -> None:
    """Export `requests` round-robin until `stop`; `pace`: requests per second for this sender."""
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(EXPORT)
        started = time.monotonic()
        sent = 0
        while not stop.is_set():
            if pace is not None:
                wait = started + sent / pace - time.monotonic()
                if wait > 0:  # one reading of the clock: a second one could be past `due`
                    time.sleep(min(0.5, wait))
                    continue
            try:
                export(requests[sent % len(requests)], timeout=10)
            except grpc.RpcError:
                time.sleep(0.1)  # refused (queue full): as a sender with retries would, later
                continue
            sent += 1


def _run_senders(endpoint: str, senders: int, rate: float | None, seconds: float) -> None:
    stop = threading.Event()
    requests = _requests()
    pace = None if rate is None else rate / REQUEST_SPANS / senders
    threads = [
        threading.Thread(target=_send, args=(endpoint, stop, pace, requests), daemon=True)
        for _ in range(senders)
    ]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--load", type=float, default=0.5, help="share of the measured capacity")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--max-growth", type=float, default=0.05)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    # SIGTERM ends the run through the `finally` below, so the processor child is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sink = CountingSink(count_ids=False).start()
    log = Path(tempfile.mkdtemp(prefix="genai-otel-soak-")) / "processor.log"
    processor = Processor(free_port(), free_port(), sink.port, log).start()
    endpoint = f"127.0.0.1:{processor.otlp_port}"
    samples: list[tuple[float, int]] = []
    try:
        before = _forwarded(processor)
        started = time.monotonic()
        _run_senders(endpoint, args.senders, None, args.capacity_seconds)
        time.sleep(1.0)  # let the last forwards settle
        capacity = (_forwarded(processor) - before) / (time.monotonic() - started)
        rate = capacity * args.load
        print(f"capacity {capacity:,.0f} spans/s; soaking at {rate:,.0f} spans/s", file=sys.stderr)

        soak = threading.Thread(
            target=lambda: _run_senders(endpoint, args.senders, rate, args.minutes * 60), daemon=True
        )
        before = _forwarded(processor)
        soak_started = time.monotonic()
        soak.start()
        while True:  # a sample at every full minute, and one as the load ends
            soak.join(max(0.0, soak_started + 60 * (len(samples) + 1) - time.monotonic()))
            at = time.monotonic() - soak_started
            if not samples or at - samples[-1][0] > 5:  # the end may fall on a minute's sample
                rss = rss_kib(processor.pid)
                samples.append((round(at), rss))
                print(f"  {at / 60:.1f} min: RSS {rss / 1024:.1f} MiB", file=sys.stderr)
            if not soak.is_alive():
                break
        achieved = (_forwarded(processor) - before) / (time.monotonic() - soak_started)
    finally:
        processor.stop()
        sink.stop()

    baseline = samples[1][1] if len(samples) > 2 else samples[0][1]  # after a minute of warm-up
    growth = (samples[-1][1] - baseline) / baseline
    figures = {
        "minutes": args.minutes,
        "capacity_spans_per_s": round(capacity),
        "soak_rate_spans_per_s": round(achieved),
        "rss_mib_by_second": {at: round(rss / 1024, 1) for at, rss in samples},
        "rss_growth_after_warmup": round(growth, 4),
        "processor_log": str(log),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if growth < args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
