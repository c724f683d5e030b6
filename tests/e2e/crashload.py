"""Pieces of the crash, overload and soak runs: a paced OTLP load of uniquely numbered spans, a next
hop that counts spans by span id (optionally throttled), the processor as a child process that can
be killed and restarted on the same ports, and samplers for its /metrics and RSS.

Shared by tests/e2e/test_crash_overload.py and benchmarks/soak.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
APP_REQUEST_SPANS = 50  # spans per request of the load's application
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

GENAI_ATTRIBUTES = (
    ("gen_ai.operation.name", AnyValue(string_value="chat")),
    ("gen_ai.provider.name", AnyValue(string_value="openai")),
    ("gen_ai.request.model", AnyValue(string_value="gpt-4o-mini")),
    ("gen_ai.response.model", AnyValue(string_value="gpt-4o-mini")),
    ("gen_ai.usage.input_tokens", AnyValue(int_value=1200)),
    ("gen_ai.usage.output_tokens", AnyValue(int_value=300)),
)
PLAIN_ATTRIBUTES = (
    ("http.request.method", AnyValue(string_value="GET")),
    ("url.path", AnyValue(string_value="/orders")),
)


def span_id(number: int) -> bytes:
    return struct.pack(">Q", number)


def is_genai(number: int) -> bool:
    """Every other span is a GenAI call; the rest are plain application spans."""
    return number % 2 == 0


def build_request(first: int, count: int, service: str = "crash-app") -> bytes:
    """`count` spans numbered from `first` (span id = the number), one trace per 10 spans."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "crash.load"
    now = time.time_ns()
    for number in range(first, first + count):
        genai = is_genai(number)
        span = Span(
            trace_id=struct.pack(">QQ", 0xC0FFEE, number // 10 + 1),
            span_id=span_id(number + 1),  # an all-zero span id is invalid
            name="chat gpt-4o-mini" if genai else "GET /orders",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=now - 900_000_000,
            end_time_unix_nano=now,
        )
        span.attributes.extend(
            KeyValue(key=k, value=v) for k, v in (GENAI_ATTRIBUTES if genai else PLAIN_ATTRIBUTES)
        )
        scope_spans.spans.append(span)
    return request.SerializeToString()


class Load:
    """Sends `rate` spans/s to an OTLP gRPC endpoint in requests of `batch` spans, from a thread.

    A span counts as sent once the receiver acknowledged its request; a refused request is sent
    again (after 0.2 s) until it is acknowledged, as an SDK exporter with retries would.
    """

    def __init__(self, endpoint: str, rate: float, batch: int = APP_REQUEST_SPANS, first: int = 0) -> None:
        self.rate = rate
        self.batch = batch
        self.next_number = first
        self.sent = 0  # acknowledged spans, numbered first .. first + sent - 1
        self.sent_genai = 0
        self.refusals: Counter[str] = Counter()
        self._first = first
        self._channel = grpc.insecure_channel(endpoint)
        self._export = self._channel.unary_unary(EXPORT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        budget = 0.0  # spans owed by the schedule so far
        last = started
        while not self._stop.is_set():
            now = time.monotonic()
            budget += (now - last) * self.rate
            last = now
            if budget < self.batch:
                time.sleep(min(0.05, (self.batch - budget) / max(self.rate, 1.0)))
                continue
            budget -= self.batch
            payload = build_request(self.next_number, self.batch)
            while not self._stop.is_set():
                try:
                    self._export(payload, timeout=10)
                    break
                except grpc.RpcError as error:
                    self.refusals[error.code().name] += 1  # type: ignore[attr-defined]
                    time.sleep(0.2)
            else:
                return  # stopped while the request was refused: it does not count as sent
            self.sent_genai += sum(
                1 for n in range(self.next_number, self.next_number + self.batch) if is_genai(n)
            )
            self.next_number += self.batch
            self.sent += self.batch

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self._channel.close()

    def sent_ids(self) -> set[bytes]:
        return {span_id(n + 1) for n in range(self._first, self._first + self.sent)}

    def sent_genai_ids(self) -> set[bytes]:
        """The acknowledged GenAI spans: the only ones the collector sends to the processor."""
        return {span_id(n + 1) for n in range(self._first, self._first + self.sent) if is_genai(n)}


@dataclass
class CountingSink:
    """The next hop: an OTLP trace receiver on 127.0.0.1 that counts spans by span id.

    `latency_seconds`: each export is answered that long after it arrived (a next hop some way
    off; exports overlap). `spans_per_second` throttles it (None: as fast as it goes): each export
    is answered only after spans / rate seconds, one export at a time, so whatever sends to it gets
    at most that rate. A span is counted when its export has been taken in, before the answer, as
    a receiver that hands data on before answering does.
    """

    latency_seconds: float = 0.0
    spans_per_second: float | None = None
    count_ids: bool = True  # False: count exports only (a soak at high rates; parsing costs CPU)
    port: int = 0
    arrivals: Counter[bytes] = field(default_factory=Counter)
    exports: int = 0
    in_flight: int = 0  # spans of exports taken in and not answered yet
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _throttle: threading.Lock = field(default_factory=threading.Lock)
    _server: Any = None

    def _handle(self, request: bytes, context: Any) -> bytes:
        if not self.count_ids:
            with self._lock:
                self.exports += 1
            return b""  # an empty ExportTraceServiceResponse
        parsed = ExportTraceServiceRequest.FromString(request)
        ids = [span.span_id for rs in parsed.resource_spans for ss in rs.scope_spans for span in ss.spans]
        with self._lock:
            self.arrivals.update(ids)
            self.exports += 1
            self.in_flight += len(ids)
        try:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            rate = self.spans_per_second
            if rate:
                with self._throttle:
                    time.sleep(len(ids) / rate)
        finally:
            with self._lock:
                self.in_flight -= len(ids)
        return ExportTraceServiceResponse().SerializeToString()  # type: ignore[no-any-return]

    def start(self) -> CountingSink:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        handler = grpc.method_handlers_generic_handler(
            TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._handle)}
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait()

    def snapshot(self) -> Counter[bytes]:
        with self._lock:
            return Counter(self.arrivals)

    def holds(self, ids: set[bytes]) -> bool:
        with self._lock:
            return all(i in self.arrivals for i in ids)


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


def sample_value(exposition: str, name: str, labels: str = "") -> float:
    """The sum of `name` samples whose label text contains `labels` (0 when there is none)."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        head, _, _ = line.partition(" # ")  # an exemplar
        series, _, value = head.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric == name and labels in label_text:
            total += float(value)
    return total


class Processor:
    """`genai-otel processor` as a child process on fixed ports, in its own process group."""

    def __init__(
        self, otlp_port: int, metrics_port: int, forward_port: int, log: Path, *settings: str
    ) -> None:
        self.otlp_port = otlp_port
        self.metrics_port = metrics_port
        self.forward_port = forward_port
        self.log = log
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    def start(self, timeout: float = 30) -> Processor:
        command = [
            sys.executable, "-m", "genai_otel", "processor",
            "--listen", f"127.0.0.1:{self.otlp_port}",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--forward-endpoint", f"127.0.0.1:{self.forward_port}",
        ]  # fmt: skip
        for setting in self.settings:
            command += ["--set", setting]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GENAI_OTEL_PROCESSOR_", "OTEL_"))}
        env["OTEL_SDK_DISABLED"] = "true"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the processor exited at start; see {self.log}")
            with contextlib.suppress(OSError):
                scrape(self.metrics_url)
                return self
            time.sleep(0.1)
        raise RuntimeError(f"the processor did not come up in {timeout}s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, as the OOM killer or a node failure would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, grace: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()


class Sampler:
    """Every `interval` seconds, from a thread: the processor's /metrics and RSS, and optionally
    the collector's own metrics. Keeps (monotonic time, pid, processor exposition or None, RSS KiB,
    collector exposition or None)."""

    def __init__(self, processor: Processor, interval: float, collector_url: str | None = None) -> None:
        self.processor = processor
        self.interval = interval
        self.collector_url = collector_url
        self.samples: list[tuple[float, int, str | None, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            process = self.processor.process
            pid = process.pid if process is not None and process.poll() is None else 0
            exposition = None
            with contextlib.suppress(OSError):
                exposition = scrape(self.processor.metrics_url) if pid else None
            collector = None
            if self.collector_url:
                with contextlib.suppress(OSError):
                    collector = scrape(self.collector_url)
            self.samples.append((time.monotonic(), pid, exposition, rss_kib(pid) if pid else 0, collector))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
