"""The collector's queue to the processor is on disk: spans accepted while the processor is away
survive a collector restart and are delivered once it is back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from genai_otel.stack.query import wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.tap import OtlpTap


def test_spans_queued_for_an_absent_processor_survive_a_collector_restart(
    tmp_path: Path, require_binaries: Callable[..., None]
) -> None:
    require_binaries("collector")
    ports = free_ports()
    stack = LocalStack(tmp_path / "run", ports=ports, build_missing=False, services=("collector",))
    endpoints = stack.start(timeout=60)
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "queue-e2e"}))
        exporter = OTLPSpanExporter(endpoint=endpoints["otlp_grpc_endpoint"], insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("e2e")
        names = [f"queued {i}" for i in range(5)]
        for name in names:  # GenAI spans: the only ones the collector sends to the processor
            tracer.start_span(name, attributes={"gen_ai.operation.name": "chat"}).end()
        tracer.start_span("plain GET /orders").end()  # goes straight to sampling instead
        provider.shutdown()
        # accepted by the collector (nothing listens on the processor port yet)
        wait_for(
            lambda: (tmp_path / "run" / "collector-storage").exists() or None, what="the queue's storage"
        )
    finally:
        stack.stop()

    processor = OtlpTap(forward_to=None, port=ports["PROCESSOR_OTLP_PORT"]).start()
    try:
        stack.start(timeout=60)
        try:
            delivered = wait_for(
                lambda: sorted(span.name for _, _, span in processor.spans()) or None,
                timeout=60,
                what="queued spans delivered after the restart",
            )
        finally:
            stack.stop()
    finally:
        processor.stop()
    assert delivered == sorted(names)
