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

import sys
import time
from collections.abc import Callable

import httpx2
import openai
from _instrumentation_harness import (
    FLOOR,
    Mode,
    Results,
    SdkFloor,
    capture,
    dropping_providers,
    idle,
    instrumented,
    parser,
    print_table,
    rotate,
)
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AnyValue

from genai_otel.fake_provider import FakeTransport

MESSAGES = [{"role": "user", "content": "Summarise the benchmark in one sentence."}]


def _modes(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list[Mode]:
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    modes = [idle("none"), instrumented("genai-otel", OpenAIInstrumentor, **providers)]
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


def sdk_floor(
    call: Callable[[openai.OpenAI], None], tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> SdkFloor:
    """The SDK floor of one call of a kind: its telemetry captured once, then replayed."""
    captured = capture(OpenAIInstrumentor, call, _client, close=lambda client: client.close())
    return SdkFloor(call, captured, tracer_provider, meter_provider)


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


def run(calls: int, blocks: int) -> tuple[Results, tuple[float, float]]:
    """Per call type and mode: (median thread µs per call, median added µs over none in the same block)."""
    tracer_provider, meter_provider = dropping_providers()
    modes = _modes(tracer_provider, meter_provider)
    results: Results = {}
    for label, call in (("chat", _chat), ("chat_stream", _chat_stream)):
        floor = sdk_floor(call, tracer_provider, meter_provider)
        rotation = [*modes, idle(FLOOR, floor.once)]
        results[label] = rotate(rotation, call, _client, calls, blocks, close=lambda client: client.close())
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
    args = parser(__doc__, calls=25, blocks=60).parse_args(argv)
    results, (span_us, record_us) = run(args.calls, args.blocks)
    print_table(results)
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
