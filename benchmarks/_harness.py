"""What the processor benchmarks share: OTLP values, a counting next hop, the processor as a child
process, and readings of its /proc entries."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from genai_otel.stack.runner import free_port

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


_SPAN_IDS = itertools.count(1 << 56)


def fresh_exports(payloads: list[bytes], count: int) -> list[bytes]:
    """`count` requests cycling through `payloads`, every span under a span id of its own: new
    calls of the same kinds. Sending the same bytes again would be a retry, whose spans the
    processor forwards and counts nothing for, so a replay would measure that cheaper path. Built
    before the measured part: the ids cost the processor nothing."""
    exports = []
    for i in range(count):
        request = ExportTraceServiceRequest.FromString(payloads[i % len(payloads)])
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    span.span_id = next(_SPAN_IDS).to_bytes(8, "big")
        exports.append(request.SerializeToString())
    return exports


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


class Sink:
    """The next hop: counts the spans and exports it receives."""

    def __init__(self) -> None:
        self.spans = 0
        self.calls = 0

    async def export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        self.spans += sum(len(ss.spans) for rs in ExportTraceServiceRequest.FromString(request).resource_spans
                          for ss in rs.scope_spans)  # fmt: skip
        return b""

    async def serve(self) -> tuple[grpc.aio.Server, int]:
        """Started on 127.0.0.1 with no receive limit; (server, port)."""
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                {"Export": grpc.unary_unary_rpc_method_handler(self.export)}),)
        )  # fmt: skip
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port


def start_processor(
    sink_port: int, *settings: str, under: tuple[str, ...] = (), quiet: bool = False
) -> tuple[subprocess.Popen[bytes], int, int]:
    """`genai-otel processor` forwarding to `sink_port`, with `--set` `settings` (KEY=VALUE), run
    under `under` (e.g. valgrind); (process, OTLP port, metrics port)."""
    port, metrics_port = free_port(), free_port()
    sets = [arg for setting in ("log_level=WARNING", *settings) for arg in ("--set", setting)]
    process = subprocess.Popen(
        [*under, sys.executable, "-m", "genai_otel", "processor", "--listen", f"127.0.0.1:{port}",
         "--metrics-listen", f"127.0.0.1:{metrics_port}", "--forward-endpoint", f"127.0.0.1:{sink_port}",
         *sets],
        stderr=subprocess.DEVNULL if quiet else None,
    )  # fmt: skip
    return process, port, metrics_port


def proc_status_mib(pid: int, field: str) -> float:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (utime + stime, every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scrape(port: int, openmetrics: bool = True) -> bytes:
    """One /metrics scrape on 127.0.0.1:port, on a connection of its own; the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
    writer.write(
        f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: {accept}\r\n\r\n".encode()
    )
    response = await reader.read()
    writer.close()
    status, _, body = response.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"scrape failed: {status[:80]!r}")
    return body
