"""What the instrumentation benchmarks share: the dropping exporter, the modes and their rotation
over blocks of calls, genai-otel's telemetry for one call captured for the SDK floor to replay,
the result table, and the callgrind count of the instruction benchmarks."""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
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

from genai_otel import semconv

FLOOR = "sdk floor"
# Per call label, per mode: (median thread µs per call, median added µs over "none").
Results = dict[str, dict[str, tuple[float, float]]]

# Span attributes known when the call starts (the rest are set when it ends).
REQUEST_KEYS = (
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
)
HISTOGRAMS = {
    semconv.METRIC_CLIENT_TOKEN_USAGE: ("{token}", semconv.TOKEN_USAGE_BUCKETS),
    semconv.METRIC_CLIENT_OPERATION_DURATION: ("s", semconv.DURATION_BUCKETS),
    semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK: ("s", semconv.TIME_TO_FIRST_CHUNK_BUCKETS),
    # the opt-in names (OTEL_SEMCONV_STABILITY_OPT_IN); their usage counters are replayed as counters
    semconv.METRIC_CLIENT_INFERENCE_DURATION: ("s", semconv.DURATION_BUCKETS),
    semconv.METRIC_CLIENT_INFERENCE_TIME_TO_FIRST_CHUNK: ("s", semconv.TIME_TO_FIRST_CHUNK_BUCKETS),
    semconv.METRIC_CLIENT_INFERENCE_OPERATION_INPUT_TOKENS: ("{token}", semconv.TOKEN_USAGE_BUCKETS),
    semconv.METRIC_CLIENT_INFERENCE_OPERATION_OUTPUT_TOKENS: ("{token}", semconv.TOKEN_USAGE_BUCKETS),
}


class DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Mode:
    """A mode of the rotation: `on` before its block, `off` after; `call` replaces the measured
    call in its blocks (the SDK floor's replay)."""

    def __init__(
        self,
        name: str,
        on: Callable[[], None],
        off: Callable[[], None],
        call: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name, self.on, self.off, self.call = name, on, off, call


def idle(name: str, call: Callable[[Any], Any] | None = None) -> Mode:
    """A mode that instruments nothing: "none", or the SDK floor with its replaying call."""
    return Mode(name, lambda: None, lambda: None, call)


def instrumented(name: str, instrumentor: Callable[[], Any], **providers: Any) -> Mode:
    return Mode(
        name,
        lambda: instrumentor().instrument(**providers),
        lambda: instrumentor().uninstrument(),
    )


def dropping_providers() -> tuple[TracerProvider, MeterProvider]:
    """A real tracer provider batching to a dropping exporter, and a real meter provider."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def quiet_providers(spans: int) -> tuple[TracerProvider, MeterProvider]:
    """Providers that export nothing while `spans` spans are made: the batch worker thread would
    add its own instructions to a callgrind count."""
    tracer_provider = TracerProvider()
    queue = max(2048, spans * 2)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            DroppingExporter(),
            max_queue_size=queue,
            max_export_batch_size=queue,
            schedule_delay_millis=3_600_000,
        )
    )
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


@dataclass
class Captured:
    """genai-otel's telemetry for one call: span name, attributes known at the start (`request`)
    and at the end (`response`), and the histogram records as (histogram name, value, attributes)."""

    name: str
    request: dict[str, AnyValue]
    response: dict[str, AnyValue]
    records: list[tuple[str, float, Mapping[str, AnyValue]]]


def capture(
    instrumentor: Callable[[], Any],
    call: Callable[[Any], Any],
    new_client: Callable[[], Any],
    close: Callable[[Any], None] | None = None,
) -> Captured:
    """Runs `call` once under genai-otel with capturing providers, on a client made once
    instrumented (some instrumentations hook clients as they are made), `close` closing it."""
    exporter = InMemorySpanExporter()
    capture_tracer_provider = TracerProvider()
    capture_tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor().instrument(
        tracer_provider=capture_tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    client = new_client()
    try:
        call(client)
    finally:
        instrumentor().uninstrument()
        if close is not None:
            close(client)
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    request = {
        key: value
        for key, value in attributes.items()
        if key in REQUEST_KEYS or key.startswith("gen_ai.request.")
    }
    response = {key: value for key, value in attributes.items() if key not in request}
    records: list[tuple[str, float, Mapping[str, AnyValue]]] = []
    data = reader.get_metrics_data()
    assert data is not None
    for metric in data.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric.data.data_points:
            if isinstance(point, NumberDataPoint):  # a counter's one add (the opt-in usage counters)
                records.append((metric.name, point.value, point.attributes or {}))
                continue
            assert isinstance(point, HistogramDataPoint) and point.count == 1
            records.append((metric.name, point.sum, point.attributes or {}))
    return Captured(span.name, request, response, records)


def floor_histograms(meter_provider: MeterProvider) -> dict[str, Any]:
    """The floor's own histograms, one per genai-otel metric, with genai-otel's units and buckets."""
    meter = meter_provider.get_meter("sdk-floor")
    return {
        name: meter.create_histogram(name, unit=unit, explicit_bucket_boundaries_advisory=buckets)
        for name, (unit, buckets) in HISTOGRAMS.items()
    }


class SdkFloor:
    """Replays, through the SDK alone, the telemetry genai-otel emits for one call of a kind."""

    def __init__(
        self,
        call: Callable[[Any], Any],
        captured: Captured,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
    ) -> None:
        self.call, self.name = call, captured.name
        self.request, self.response = captured.request, captured.response
        self.tracer = tracer_provider.get_tracer("sdk-floor")
        histograms = floor_histograms(meter_provider)
        meter = meter_provider.get_meter("sdk-floor")
        self.records = [
            (
                histograms[name].record
                if name in histograms
                else meter.create_counter(name, unit="{token}").add,  # the same counter for a name
                value,
                attributes,
            )
            for name, value, attributes in captured.records
        ]

    def once(self, client: Any) -> None:
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
        for record, value, attributes in self.records:
            record(value, attributes)


def block(call: Callable[[Any], Any], client: Any, calls: int) -> float:
    """CPU of the calling thread per call, in µs."""
    gc.collect()
    start = time.thread_time()
    for _ in range(calls):
        call(client)
    return (time.thread_time() - start) / calls * 1e6


def rotate(
    modes: Sequence[Mode],
    call: Callable[[Any], Any],
    new_client: Callable[[], Any],
    calls: int,
    blocks: int,
    *,
    renew_every: int | None = 20,
    close: Callable[[Any], None] | None = None,
    fresh_client_for: str | None = None,
) -> dict[str, tuple[float, float]]:
    """Per mode: (median thread µs per call, median added µs over "none" in the same block).

    Block 0 warms every mode up and is discarded; each block starts the rotation one mode later.
    The client is renewed every `renew_every` blocks (the fake transport records requests: they
    must not pile up), `close` closing the old one; the mode named `fresh_client_for` makes a new
    client once it is on and warms it up outside the timed block (for instrumentations that hook
    clients as they are created)."""
    per_call: dict[str, list[float]] = {mode.name: [] for mode in modes}
    added: dict[str, list[float]] = {mode.name: [] for mode in modes}
    client = new_client()
    for index in range(blocks + 1):
        if renew_every and index % renew_every == 0:
            if close is not None:
                close(client)
            client = new_client()
        order = [*modes[index % len(modes) :], *modes[: index % len(modes)]]
        sample: dict[str, float] = {}
        for mode in order:
            mode.on()
            if mode.name == fresh_client_for:
                client = new_client()
                call(client)
            try:
                sample[mode.name] = block(mode.call or call, client, calls)
            finally:
                mode.off()
        if index:
            for name, value in sample.items():
                per_call[name].append(value)
                added[name].append(value - sample["none"])
    if close is not None:
        close(client)
    return {name: (statistics.median(per_call[name]), statistics.median(added[name])) for name in per_call}


def compare(
    instrumentor: Callable[[], Any],
    calls_by_label: Mapping[str, Callable[[Any], Any]],
    client_for: Callable[[Callable[[Any], Any]], Callable[[], Any]],
    calls: int,
    blocks: int,
    **rotation: Any,
) -> Results:
    """Per call label, `rotate`'s figures for none, genai-otel (`instrumentor`) and the SDK floor;
    `client_for(call)` makes that call's clients, `rotation` passes options on to `rotate`."""
    tracer_provider, meter_provider = dropping_providers()
    genai_otel = instrumented(
        "genai-otel", instrumentor, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    results: Results = {}
    for label, call in calls_by_label.items():
        new_client = client_for(call)
        floor = SdkFloor(call, capture(instrumentor, call, new_client), tracer_provider, meter_provider)
        modes = [idle("none"), genai_otel, idle(FLOOR, floor.once)]
        results[label] = rotate(modes, call, new_client, calls, blocks, **rotation)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


def compare_main(doc: str | None, run: Callable[[int, int], Results], argv: list[str] | None = None) -> int:
    """The command line of a benchmark comparing genai-otel with the SDK floor: its table and ratios."""
    args = parser(doc, calls=25, blocks=60).parse_args(argv)
    results = run(args.calls, args.blocks)
    print_table(results)
    print_ratios(results)
    return 0


def parser(doc: str | None, calls: int, blocks: int) -> argparse.ArgumentParser:
    """The command line every rotation benchmark takes: --calls and --blocks."""
    result = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    result.add_argument(
        "--calls", type=int, default=calls, help=f"calls per mode per block (default {calls})"
    )
    result.add_argument("--blocks", type=int, default=blocks, help=f"measured blocks (default {blocks})")
    return result


def print_table(results: Results) -> None:
    """Per call and mode: the CPU per call and what the mode adds over none."""
    print(f"{'call':<12} {'mode':<11} {'CPU µs/call':>12} {'added µs':>9}")
    for label, modes in results.items():
        for name, (per_call_us, added_us) in modes.items():
            print(f"{label:<12} {name:<11} {per_call_us:>12.1f} {added_us:>+9.1f}")


def print_ratios(results: Results) -> None:
    """Per call: what genai-otel adds beside what the SDK floor adds."""
    for label, modes in results.items():
        ours, floor = modes["genai-otel"][1], modes[FLOOR][1]
        ratio = ours / floor if floor > 0 else float("nan")
        print(f"{label}: genai-otel adds {ours:.1f} µs/call, the SDK floor {floor:.1f} µs ({ratio:.2f}x)")


def count_instructions(script: str, arguments: Sequence[str], what: str) -> int:
    """Instructions callgrind counts inside `functools.reduce` while `script arguments` runs."""
    return count_instruction_parts(script, arguments, what, 0)[0]


def count_instruction_parts(script: str, arguments: Sequence[str], what: str, parts: int) -> list[int]:
    """As count_instructions; with `parts` > 0, one count per `functools.reduce` call (each its
    own callgrind part, `--dump-after`), of which there must be exactly `parts`."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--toggle-collect=functools_reduce",
            *(["--dump-after=functools_reduce"] if parts else []),
            f"--callgrind-out-file={out}",
            sys.executable,
            script,
            *arguments,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        files = [out] if not parts else [out.with_name(f"{out.name}.{n}") for n in range(1, parts + 1)]
        if parts and out.with_name(f"{out.name}.{parts + 1}").exists():
            raise RuntimeError(f"more than {parts} functools.reduce calls in {what}")
        counts = []
        for file in files:
            match = re.search(r"^summary: (\d+)", file.read_text(), re.MULTILINE) if file.exists() else None
            if match is None:
                raise RuntimeError(f"no instruction summary for {what} ({file.name})")
            counts.append(int(match.group(1)))
        return counts
