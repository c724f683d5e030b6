"""CPU the instrumentation adds per OpenAI chat call: none vs genai-otel vs the official one.

One process, one thread, the fake provider's in-process `httpx2` transport (no sockets), a
real SDK `TracerProvider` with a `BatchSpanProcessor` to an exporter that drops spans, and
a real `MeterProvider` (in-memory reader). Blocks of calls alternate between the modes
(none, genai-otel, official) so drift hits all alike; each figure is the median over blocks.

    .venv/bin/python benchmarks/bench_instrumentation.py [--calls 25] [--blocks 60]

Per call it reports the calling thread's CPU (`time.thread_time`: the application's hot
path; the batch exporter's thread is not counted) and what each instrumentation adds over
none, as the median of per-block differences (short blocks, rotating order, so load from
other processes hits every mode alike). The "sdk floor" row makes the uninstrumented call
inside the OpenTelemetry SDK calls that produce exactly the telemetry genai-otel emits for it
(the same span name, kind and attributes, current while the call runs, and the same
histogram records), with no instrumentation code: its "added" figure is what any
instrumentation emitting these spans and metrics through this SDK costs at the least.
A calibration line gives the CPU of one bare SDK span and one histogram record on the
machine, to compare figures across machines. The official instrumentation is the
`opentelemetry-instrumentation-genai-openai` package (the `bench` extra).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx2
import openai
from genai_otel.instrumentation import semconv
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AnyValue

from genai_otel.fake_provider import FakeTransport

FLOOR = "sdk floor"
MESSAGES = [{"role": "user", "content": "Summarise the benchmark in one sentence."}]


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Mode:
    def __init__(self, name: str, on: Callable[[], None], off: Callable[[], None]) -> None:
        self.name, self.on, self.off = name, on, off


def _modes(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list[Mode]:
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    modes = [
        Mode("none", lambda: None, lambda: None),
        Mode(
            "genai-otel",
            lambda: OpenAIInstrumentor().instrument(**providers),
            lambda: OpenAIInstrumentor().uninstrument(),
        ),
    ]
    try:
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as Official
    except ImportError:
        print("official instrumentation not installed (pip install '.[bench]'); skipping it", file=sys.stderr)
    else:
        modes.append(
            Mode(
                "official",
                lambda: Official().instrument(skip_dep_check=True, **providers),
                lambda: Official().uninstrument(),
            )
        )
    return modes


def _chat(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]


def _chat_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(  # type: ignore[call-overload]
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass


# Span attributes known when the call starts (the rest are set when it ends).
_REQUEST_KEYS = (
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
)
_HISTOGRAMS = {
    semconv.METRIC_CLIENT_TOKEN_USAGE: ("{token}", semconv.TOKEN_USAGE_BUCKETS),
    semconv.METRIC_CLIENT_OPERATION_DURATION: ("s", semconv.DURATION_BUCKETS),
    semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK: ("s", semconv.TIME_TO_FIRST_CHUNK_BUCKETS),
}


class SdkFloor:
    """Replays, through the SDK alone, the telemetry genai-otel emits for one call of a kind."""

    def __init__(
        self,
        call: Callable[[openai.OpenAI], None],
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
    ) -> None:
        exporter = InMemorySpanExporter()
        capture_tracer_provider = TracerProvider()
        capture_tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        OpenAIInstrumentor().instrument(
            tracer_provider=capture_tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
        )
        client = _client()
        try:
            call(client)
        finally:
            OpenAIInstrumentor().uninstrument()
            client.close()
        (span,) = exporter.get_finished_spans()
        self.call = call
        attributes = dict(span.attributes or {})
        self.name = span.name
        self.request = {
            key: value
            for key, value in attributes.items()
            if key in _REQUEST_KEYS or key.startswith("gen_ai.request.")
        }
        self.response = {key: value for key, value in attributes.items() if key not in self.request}
        self.tracer = tracer_provider.get_tracer("sdk-floor")
        meter = meter_provider.get_meter("sdk-floor")
        self.records: list[tuple[Any, float, Mapping[str, AnyValue]]] = []
        data = reader.get_metrics_data()
        assert data is not None
        for metric in data.resource_metrics[0].scope_metrics[0].metrics:
            unit, buckets = _HISTOGRAMS[metric.name]
            histogram = meter.create_histogram(
                metric.name, unit=unit, explicit_bucket_boundaries_advisory=buckets
            )
            for point in metric.data.data_points:
                assert isinstance(point, HistogramDataPoint) and point.count == 1
                self.records.append((histogram, point.sum, point.attributes or {}))

    def once(self, client: openai.OpenAI) -> None:
        """The uninstrumented call inside the SDK work of its telemetry: run in place, so the
        SDK code meets the same cold caches as it does behind a real instrumentation."""
        span = self.tracer.start_span(self.name, kind=SpanKind.CLIENT, attributes=self.request)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            self.call(client)
        finally:
            otel_context.detach(token)
        span.set_attributes(self.response)
        span.end()
        for histogram, value, attributes in self.records:
            histogram.record(value, attributes)


def _block(call: Callable[[openai.OpenAI], None], client: openai.OpenAI, calls: int) -> float:
    """CPU of the calling thread per call, in µs."""
    gc.collect()
    start = time.thread_time()
    for _ in range(calls):
        call(client)
    return (time.thread_time() - start) / calls * 1e6


def _calibration(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> tuple[float, float]:
    """CPU of one bare SDK span (start+end) and one histogram record here: the machine's scale."""
    tracer = tracer_provider.get_tracer("calibration")
    histogram = meter_provider.get_meter("calibration").create_histogram("calibration")
    attributes: dict[str, AnyValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "server.port": 1,
    }
    count = 5000
    start = time.thread_time()
    for _ in range(count):
        tracer.start_span("calibration").end()
    span_us = (time.thread_time() - start) / count * 1e6
    start = time.thread_time()
    for _ in range(count):
        histogram.record(1.0, attributes)
    return span_us, (time.thread_time() - start) / count * 1e6


def run(calls: int, blocks: int) -> tuple[dict[str, dict[str, tuple[float, float]]], tuple[float, float]]:
    """Per call type and mode: (median thread µs per call, median added µs over none in the same block)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    modes = _modes(tracer_provider, meter_provider)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for label, call in (("chat", _chat), ("chat_stream", _chat_stream)):
        floor = SdkFloor(call, tracer_provider, meter_provider)
        rotation = [*modes, Mode(FLOOR, lambda: None, lambda: None)]
        per_call: dict[str, list[float]] = {mode.name: [] for mode in rotation}
        added: dict[str, list[float]] = {mode.name: [] for mode in rotation}
        client = _client()
        for block in range(blocks + 1):  # block 0 warms every mode up and is discarded
            if block % 20 == 0:  # the transport records requests: do not let them pile up
                client.close()
                client = _client()
            order = rotation[block % len(rotation) :] + rotation[: block % len(rotation)]
            sample: dict[str, float] = {}
            for mode in order:
                mode.on()
                try:
                    sample[mode.name] = _block(floor.once if mode.name == FLOOR else call, client, calls)
                finally:
                    mode.off()
            if block:
                for name, value in sample.items():
                    per_call[name].append(value)
                    added[name].append(value - sample["none"])
        client.close()
        results[label] = {
            name: (statistics.median(per_call[name]), statistics.median(added[name])) for name in per_call
        }
    calibration = _calibration(tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results, calibration


def _client() -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://fake/v1",
        api_key="bench",
        max_retries=0,
        http_client=httpx2.Client(transport=FakeTransport()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=25, help="calls per mode per block (default 25)")
    parser.add_argument("--blocks", type=int, default=60, help="measured blocks (default 60)")
    args = parser.parse_args(argv)
    results, (span_us, record_us) = run(args.calls, args.blocks)
    print(f"{'call':<12} {'mode':<11} {'CPU µs/call':>12} {'added µs':>9}")
    for label, modes in results.items():
        for name, (per_call_us, added_us) in modes.items():
            print(f"{label:<12} {name:<11} {per_call_us:>12.1f} {added_us:>+9.1f}")
    for label, modes in results.items():
        ours, floor = modes["genai-otel"][1], modes[FLOOR][1]
        print(
            f"{label}: genai-otel adds {ours:.1f} µs/call, of which {floor:.1f} µs is the SDK floor"
            f" and {ours - floor:.1f} µs genai-otel's own code"
        )
    print(f"machine scale: bare SDK span start+end {span_us:.1f} µs, one histogram record {record_us:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
