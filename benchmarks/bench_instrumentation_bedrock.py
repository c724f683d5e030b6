"""CPU the instrumentation adds per Bedrock Runtime call (boto3): none vs genai-otel vs the SDK floor.

The same method as `bench_instrumentation.py` (which measures the openai SDK): one thread, the
fake provider answering in-process (a botocore `before-send` handler hands the request to its
`Responder` and returns the answer, so no socket is opened; the request is still built, signed
with SigV4 and parsed by botocore), a real `TracerProvider` with a `BatchSpanProcessor` to an
exporter that drops spans, a real `MeterProvider`; blocks of calls rotate between the modes and
each figure is the median over blocks. "sdk floor" wraps the uninstrumented call in exactly the
telemetry genai-otel emits for it, made with the OpenTelemetry SDK alone.

    .venv/bin/python benchmarks/bench_instrumentation_bedrock.py [--calls 25] [--blocks 60]

Calls: `converse` (16 output tokens) and `converse_stream` of 50 chunks.
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from bench_instrumentation import _HISTOGRAMS, _REQUEST_KEYS, FLOOR, DroppingExporter, Mode
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from genai_otel.instrumentation.bedrock import BedrockInstrumentor
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AnyValue

from genai_otel.fake_provider import Responder

MODEL = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarise the benchmark in one sentence."}]}]


class _Raw:
    """The urllib3 response botocore reads: `read()` for plain bodies, `stream()` for event streams."""

    def __init__(self, data: bytes) -> None:
        self._body = io.BytesIO(data)

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        return self._body.read(amt)

    def stream(self, amt: int = 1024, decode_content: bool = True) -> Any:
        while chunk := self._body.read(amt):
            yield chunk


def _client(stream_tokens: str | None = None) -> Any:
    responder = Responder(max_recorded=0)
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url="http://fake",
        aws_access_key_id="AKIDBENCH",
        aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 1}),
    )

    def send(request: Any, **_: Any) -> AWSResponse:
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        if stream_tokens:
            headers["x-fake-output-tokens"] = stream_tokens
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        answer = responder.handle(request.method, urlsplit(request.url).path, headers, body)
        data = answer.body if answer.chunks is None else b"".join(chunk.data for chunk in answer.chunks)
        headers_out = {**answer.headers, "content-length": str(len(data))}
        return AWSResponse(request.url, answer.status, headers_out, _Raw(data))

    client.meta.events.register("before-send.bedrock-runtime.*", send)
    return client


def _converse(client: Any) -> None:
    client.converse(modelId=MODEL, messages=MESSAGES)


def _converse_stream(client: Any) -> None:
    for _ in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
        pass


class BedrockFloor:
    """Replays, through the SDK alone, the telemetry genai-otel emits for one call of a kind."""

    def __init__(
        self,
        call: Callable[[Any], None],
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
    ) -> None:
        exporter = InMemorySpanExporter()
        capture = TracerProvider()
        capture.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        BedrockInstrumentor().instrument(
            tracer_provider=capture, meter_provider=MeterProvider(metric_readers=[reader])
        )
        try:
            call(_client("50" if call is _converse_stream else None))
        finally:
            BedrockInstrumentor().uninstrument()
        (span,) = exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        self.call, self.name = call, span.name
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

    def once(self, client: Any) -> None:
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


def _block(call: Callable[[Any], None], client: Any, calls: int) -> float:
    gc.collect()
    start = time.thread_time()
    for _ in range(calls):
        call(client)
    return (time.thread_time() - start) / calls * 1e6


def run(calls: int, blocks: int) -> dict[str, dict[str, tuple[float, float]]]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    modes = [
        Mode("none", lambda: None, lambda: None),
        Mode(
            "genai-otel",
            lambda: BedrockInstrumentor().instrument(**providers),
            lambda: BedrockInstrumentor().uninstrument(),
        ),
        Mode(FLOOR, lambda: None, lambda: None),
    ]
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for label, call in (("converse", _converse), ("stream_50", _converse_stream)):
        floor = BedrockFloor(call, tracer_provider, meter_provider)
        per_call: dict[str, list[float]] = {mode.name: [] for mode in modes}
        added: dict[str, list[float]] = {mode.name: [] for mode in modes}
        stream_tokens = "50" if call is _converse_stream else None
        # Instrumentation hooks clients as they are created: the genai-otel mode makes a new
        # client once instrumented (outside the timed block); uninstrument() untraces it again.
        client = _client(stream_tokens)
        for block in range(blocks + 1):  # block 0 warms every mode up and is discarded
            order = modes[block % len(modes) :] + modes[: block % len(modes)]
            sample: dict[str, float] = {}
            for mode in order:
                mode.on()
                if mode.name == "genai-otel":  # a new client warms its caches up first
                    client = _client(stream_tokens)
                    call(client)
                try:
                    sample[mode.name] = _block(floor.once if mode.name == FLOOR else call, client, calls)
                finally:
                    mode.off()
            if block:
                for name, value in sample.items():
                    per_call[name].append(value)
                    added[name].append(value - sample["none"])
        results[label] = {
            name: (statistics.median(per_call[name]), statistics.median(added[name])) for name in per_call
        }
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=25, help="calls per mode per block (default 25)")
    parser.add_argument("--blocks", type=int, default=60, help="measured blocks (default 60)")
    args = parser.parse_args(argv)
    results = run(args.calls, args.blocks)
    print(f"{'call':<12} {'mode':<11} {'CPU µs/call':>12} {'added µs':>9}")
    for label, modes in results.items():
        for name, (per_call_us, added_us) in modes.items():
            print(f"{label:<12} {name:<11} {per_call_us:>12.1f} {added_us:>+9.1f}")
    for label, modes in results.items():
        ours, floor = modes["genai-otel"][1], modes[FLOOR][1]
        ratio = ours / floor if floor > 0 else float("nan")
        print(f"{label}: genai-otel adds {ours:.1f} µs/call, the SDK floor {floor:.1f} µs ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
