"""CPU the instrumentation adds per google-genai call: none vs genai-otel vs the SDK floor.

The same method as `bench_instrumentation.py` (which measures the openai SDK): one thread, the
fake provider's in-process `httpx2` transport (the SDK takes it as `http_options.httpx_client`),
a real `TracerProvider` with a `BatchSpanProcessor` to an exporter that drops spans, a real
`MeterProvider`; blocks of calls rotate between the modes and each figure is the median over
blocks. "sdk floor" wraps the uninstrumented call in exactly the telemetry genai-otel emits for
it, made with the OpenTelemetry SDK alone: the least any instrumentation emitting it can cost.

    .venv/bin/python benchmarks/bench_instrumentation_gemini.py [--calls 25] [--blocks 60]

Calls: `generate_content` (16 output tokens) and `generate_content_stream` of 50 chunks.
"""

from __future__ import annotations

import sys

import httpx2
from _instrumentation_harness import Results, compare, compare_main
from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor
from google import genai

from genai_otel.fake_provider import FakeTransport

MODEL = "gemini-2.5-flash"
PROMPT = "Summarise the benchmark in one sentence."
STREAM_CONFIG = {"http_options": {"headers": {"x-fake-output-tokens": "50"}}}  # 50 chunks


def _generate(client: genai.Client) -> None:
    client.models.generate_content(model=MODEL, contents=PROMPT)


def _generate_stream(client: genai.Client) -> None:
    for _ in client.models.generate_content_stream(model=MODEL, contents=PROMPT, config=STREAM_CONFIG):  # type: ignore[arg-type]
        pass


def _client() -> genai.Client:
    return genai.Client(
        api_key="bench",
        http_options={"base_url": "http://fake", "httpx_client": httpx2.Client(transport=FakeTransport())},
    )


def run(calls: int, blocks: int) -> Results:
    calls_by_label = {"generate": _generate, "stream_50": _generate_stream}
    return compare(GoogleGenAIInstrumentor, calls_by_label, lambda _call: _client, calls, blocks)


def main(argv: list[str] | None = None) -> int:
    return compare_main(__doc__, run, argv)


if __name__ == "__main__":
    sys.exit(main())
