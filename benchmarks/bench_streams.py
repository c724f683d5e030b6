"""CPU genai-otel adds per call of every instrumented SDK, streamed and not, beside the SDK floor.

The method of `bench_instrumentation.py`: one thread, the fake provider's in-process `httpx2`
transport (no sockets), a real `TracerProvider` with a `BatchSpanProcessor` to an exporter that
drops spans, a real `MeterProvider`; blocks of calls rotate between the modes (none, genai-otel,
sdk floor) so drift hits all alike; each figure is the median over blocks of the calling thread's
CPU (`time.thread_time`), "added" the median of per-block differences to none.

The SDK floor emits exactly genai-otel's telemetry for the call (span name, kind and attributes,
the same histogram records) with the OpenTelemetry SDK alone, in the least code that can:

* a plain call runs inside one current span, ended with the response attributes, then the
  duration and token records;
* a streamed call starts that span around the request, then swaps the SDK stream's own chunk
  iterator (`_iterator`) for a generator that notes the time of the first chunk and the usage
  where it appears (the usage chunk or event) and, when the chunks run out, ends the span with
  the time to first chunk and records the duration, time-to-first-chunk and token histograms.
  For google-genai, whose stream is a bare generator, and boto3's Converse event stream, the
  generator wraps the public one.

Streams carry 50 output tokens (`x-fake-output-tokens`): the "chunks" column counts what passes
through genai-otel's stream generator (the SDK's chunks or raw events), and "own µs/chunk" is
(genai-otel added - floor added) / chunks.

    cd benchmarks && ../.venv/bin/python bench_streams.py [--calls 20] [--blocks 30] [--cases a,b]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

os.environ.setdefault("ANTHROPIC_OPEN_TELEMETRY", "false")  # no native SDK span in any mode

import anthropic
import httpx2
import openai
from _instrumentation_harness import (
    FLOOR,
    capture,
    dropping_providers,
    floor_histograms,
    idle,
    instrumented,
    rotate,
)
from bench_instrumentation_bedrock import MESSAGES as CONVERSE_MESSAGES
from bench_instrumentation_bedrock import MODEL as BEDROCK_MODEL
from bench_instrumentation_bedrock import _client as _bedrock_client
from genai_otel.instrumentation.anthropic import AnthropicInstrumentor
from genai_otel.instrumentation.bedrock import BedrockInstrumentor
from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from google import genai
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from genai_otel import semconv
from genai_otel.fake_provider import FakeTransport

# Output tokens of a streamed call (one chunk each); BENCH_STREAM_TOKENS changes it (per-chunk slopes).
TOKENS = {"x-fake-output-tokens": os.environ.get("BENCH_STREAM_TOKENS", "50")}
MESSAGES: Any = [{"role": "user", "content": "Summarise the benchmark in one sentence."}]
GPT, CLAUDE, GEMINI = "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"
_TTFC = semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK


# --------------------------------------------------------------------------------------
# The floor: genai-otel's telemetry for one call, captured once, replayed through the SDK
# --------------------------------------------------------------------------------------
class Floor:
    def __init__(self, case: Case, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        captured = capture(case.instrumentor, case.call, case.client)
        self.name, self.request, self.response = captured.name, captured.request, captured.response
        self.tracer = tracer_provider.get_tracer("sdk-floor")
        histograms = floor_histograms(meter_provider)
        self.duration: tuple[Any, Mapping[str, Any]] | None = None
        self.ttfc: tuple[Any, Mapping[str, Any]] | None = None
        self.tokens: list[tuple[Any, Mapping[str, Any]]] = []
        for name, _value, attributes in captured.records:
            record = (histograms[name], attributes)
            if name == semconv.METRIC_CLIENT_OPERATION_DURATION:
                self.duration = record
            elif name == semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK:
                self.ttfc = record
            else:  # input first, then output (the order genai-otel records them)
                self.tokens.append(record)

    def begin(self) -> tuple[Any, Any, float]:
        start = perf_counter()
        span = self.tracer.start_span(self.name, kind=SpanKind.CLIENT, attributes=self.request)
        return span, otel_context.attach(trace.set_span_in_context(span)), start

    def end(self, span: Any, start: float, first: float | None, tokens: tuple[int, ...]) -> None:
        elapsed = perf_counter() - start
        if first is None:
            span.set_attributes(self.response)
        else:
            span.set_attributes({**self.response, _TTFC: first - start})
        span.end()
        assert self.duration is not None
        histogram, attributes = self.duration
        histogram.record(elapsed, attributes)
        if first is not None and self.ttfc is not None:
            self.ttfc[0].record(first - start, self.ttfc[1])
        for (histogram, attributes), value in zip(self.tokens, tokens, strict=True):
            histogram.record(value, attributes)


def _plain_floor(request: Callable[[Any], Any], tokens: Callable[[Any], tuple[int, ...]]) -> Any:
    def floor_call(client: Any, floor: Floor) -> None:
        span, token, start = floor.begin()
        try:
            result = request(client)
        finally:
            otel_context.detach(token)
        floor.end(span, start, None, tokens(result))

    return floor_call


# The per-chunk generators of the floor: note the first chunk and the usage, end at the end.
def _chat_chunks(chunks: Any, floor: Floor, span: Any, start: float) -> Iterator[Any]:
    first = usage = None
    for chunk in chunks:
        if first is None:
            first = perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage
        yield chunk
    floor.end(span, start, first, (usage.prompt_tokens, usage.completion_tokens) if usage else ())


_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _responses_events(events: Any, floor: Floor, span: Any, start: float) -> Iterator[Any]:
    first = usage = None
    for event in events:
        if first is None:
            first = perf_counter()
        if event.type in _FINAL_RESPONSE_EVENTS:
            usage = event.response.usage
        yield event
    floor.end(span, start, first, (usage.input_tokens, usage.output_tokens) if usage else ())


def _anthropic_events(events: Any, floor: Floor, span: Any, start: float) -> Iterator[Any]:
    first = None
    input_tokens = output_tokens = 0
    for event in events:
        if first is None:
            first = perf_counter()
        kind = event.type
        if kind == "message_start":
            input_tokens = event.message.usage.input_tokens
        elif kind == "message_delta":
            output_tokens = event.usage.output_tokens
        yield event
    floor.end(span, start, first, (input_tokens, output_tokens))


def _gemini_chunks(chunks: Any, floor: Floor, span: Any, start: float) -> Iterator[Any]:
    first = usage = None
    for chunk in chunks:
        if first is None:
            first = perf_counter()
        if chunk.usage_metadata is not None:
            usage = chunk.usage_metadata
        yield chunk
    tokens = (usage.prompt_token_count, usage.candidates_token_count) if usage else ()
    floor.end(span, start, first, tokens)


def _converse_events(events: Any, floor: Floor, span: Any, start: float) -> Iterator[Any]:
    first = usage = None
    for event in events:
        if first is None:
            first = perf_counter()
        metadata = event.get("metadata")
        if metadata is not None:
            usage = metadata["usage"]
        yield event
    floor.end(span, start, first, (usage["inputTokens"], usage["outputTokens"]) if usage else ())


def _sdk_stream_floor(request: Callable[[Any], Any], watch: Callable[..., Iterator[Any]]) -> Any:
    """Floor of an openai/anthropic stream: the SDK stream's own iterator goes through `watch`."""

    def floor_call(client: Any, floor: Floor) -> None:
        span, token, start = floor.begin()
        try:
            stream = request(client)
        finally:
            otel_context.detach(token)
        stream._iterator = watch(stream._iterator, floor, span, start)
        for _ in stream:
            pass

    return floor_call


# --------------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------------
def _openai() -> openai.OpenAI:
    transport = FakeTransport()
    return openai.OpenAI(
        base_url="http://fake/v1",
        api_key="bench",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def _anthropic() -> anthropic.Anthropic:
    transport = FakeTransport()
    return anthropic.Anthropic(
        base_url="http://fake", api_key="bench", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def _gemini() -> genai.Client:
    options: Any = {"base_url": "http://fake", "httpx_client": httpx2.Client(transport=FakeTransport())}
    return genai.Client(api_key="bench", http_options=options)


def _chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model=GPT, messages=MESSAGES)


def _chat_stream_request(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(
        model=GPT,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=TOKENS,
    )


def _responses_stream_request(client: openai.OpenAI) -> Any:
    return client.responses.create(
        model=GPT, input="Summarise the benchmark.", stream=True, extra_headers=TOKENS
    )


def _messages(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)


def _messages_stream_request(client: anthropic.Anthropic) -> Any:
    return client.messages.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True, extra_headers=TOKENS
    )


def _messages_helper_manager(client: anthropic.Anthropic) -> Any:
    return client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=TOKENS)


def _messages_helper(client: anthropic.Anthropic) -> None:
    with _messages_helper_manager(client) as stream:
        for _ in stream:
            pass


def _messages_helper_floor(client: anthropic.Anthropic, floor: Floor) -> None:
    """`messages.stream()` sends its request when entered: the floor hooks that request (the
    place genai-otel hooks too) and swaps the raw stream's iterator as for `create(stream=True)`."""
    manager = _messages_helper_manager(client)
    request = manager._MessageStreamManager__api_request

    def floored_request() -> Any:
        span, token, start = floor.begin()
        try:
            raw = request()
        finally:
            otel_context.detach(token)
        raw._iterator = _anthropic_events(raw._iterator, floor, span, start)
        return raw

    manager._MessageStreamManager__api_request = floored_request
    with manager as stream:
        for _ in stream:
            pass


def _generate(client: genai.Client) -> Any:
    return client.models.generate_content(model=GEMINI, contents="Summarise the benchmark in one sentence.")


def _generate_stream_request(client: genai.Client) -> Any:
    config: Any = {"http_options": {"headers": TOKENS}}
    return client.models.generate_content_stream(
        model=GEMINI, contents="Summarise the benchmark.", config=config
    )


def _generate_stream_floor(client: genai.Client, floor: Floor) -> None:
    span, token, start = floor.begin()
    try:
        stream = _generate_stream_request(client)
    finally:
        otel_context.detach(token)
    for _ in _gemini_chunks(stream, floor, span, start):
        pass


def _bedrock() -> Any:
    return _bedrock_client(TOKENS["x-fake-output-tokens"])


def _converse_stream_request(client: Any) -> Any:
    return client.converse_stream(modelId=BEDROCK_MODEL, messages=CONVERSE_MESSAGES)["stream"]


def _converse_stream_floor(client: Any, floor: Floor) -> None:
    span, token, start = floor.begin()
    try:
        stream = _converse_stream_request(client)
    finally:
        otel_context.detach(token)
    for _ in _converse_events(stream, floor, span, start):
        pass


def _exhaust(request: Callable[[Any], Any]) -> Callable[[Any], None]:
    def call(client: Any) -> None:
        for _ in request(client):
            pass

    return call


def _count(request: Callable[[Any], Any]) -> Callable[[Any], int]:
    return lambda client: sum(1 for _ in request(client))


@dataclass
class Case:
    label: str
    instrumentor: Callable[[], Any]
    client: Callable[[], Any]
    call: Callable[[Any], Any]  # the application's call, uninstrumented or under genai-otel
    floor_call: Callable[[Any, Floor], None]
    chunks: Callable[[Any], int] | None = None  # streams: chunks through genai-otel's generator
    fresh_client: bool = False  # the instrumentation hooks clients as they are made (boto3)


CASES = [
    Case(
        "openai chat",
        OpenAIInstrumentor,
        _openai,
        _chat,
        _plain_floor(_chat, lambda r: (r.usage.prompt_tokens, r.usage.completion_tokens)),
    ),
    Case(
        "openai chat stream",
        OpenAIInstrumentor,
        _openai,
        _exhaust(_chat_stream_request),
        _sdk_stream_floor(_chat_stream_request, _chat_chunks),
        _count(_chat_stream_request),
    ),
    Case(
        "openai responses stream",
        OpenAIInstrumentor,
        _openai,
        _exhaust(_responses_stream_request),
        _sdk_stream_floor(_responses_stream_request, _responses_events),
        _count(_responses_stream_request),
    ),
    Case(
        "anthropic messages",
        AnthropicInstrumentor,
        _anthropic,
        _messages,
        _plain_floor(_messages, lambda r: (r.usage.input_tokens, r.usage.output_tokens)),
    ),
    Case(
        "anthropic stream=True",
        AnthropicInstrumentor,
        _anthropic,
        _exhaust(_messages_stream_request),
        _sdk_stream_floor(_messages_stream_request, _anthropic_events),
        _count(_messages_stream_request),
    ),
    Case(
        "anthropic .stream()",
        AnthropicInstrumentor,
        _anthropic,
        _messages_helper,
        _messages_helper_floor,
        _count(_messages_stream_request),  # the raw events under the helper's
    ),
    Case(
        "gemini generate",
        GoogleGenAIInstrumentor,
        _gemini,
        _generate,
        _plain_floor(
            _generate,
            lambda r: (r.usage_metadata.prompt_token_count, r.usage_metadata.candidates_token_count),
        ),
    ),
    Case(
        "gemini stream",
        GoogleGenAIInstrumentor,
        _gemini,
        _exhaust(_generate_stream_request),
        _generate_stream_floor,
        _count(_generate_stream_request),
    ),
    Case(
        "bedrock converse_stream",
        BedrockInstrumentor,
        _bedrock,
        _exhaust(_converse_stream_request),
        _converse_stream_floor,
        _count(_converse_stream_request),
        fresh_client=True,
    ),
]


# --------------------------------------------------------------------------------------
# The rotation
# --------------------------------------------------------------------------------------
@dataclass
class Result:
    none_us: float
    ours_added: float
    floor_added: float
    chunks: int

    @property
    def ratio(self) -> float:
        return self.ours_added / self.floor_added if self.floor_added > 0 else float("nan")


def measure(
    case: Case, calls: int, blocks: int, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Result:
    floor = Floor(case, tracer_provider, meter_provider)
    chunks = case.chunks(case.client()) if case.chunks else 0
    floor_call = case.floor_call
    modes = [
        idle("none"),
        instrumented(
            "genai-otel", case.instrumentor, tracer_provider=tracer_provider, meter_provider=meter_provider
        ),
        idle(FLOOR, lambda client: floor_call(client, floor)),
    ]
    fresh = "genai-otel" if case.fresh_client else None
    medians = rotate(modes, case.call, case.client, calls, blocks, fresh_client_for=fresh)
    return Result(medians["none"][0], medians["genai-otel"][1], medians[FLOOR][1], chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20, help="calls per mode per block (default 20)")
    parser.add_argument("--blocks", type=int, default=30, help="measured blocks (default 30)")
    parser.add_argument("--cases", default="", help="comma-separated labels (default: all)")
    args = parser.parse_args(argv)
    wanted = {label.strip() for label in args.cases.split(",") if label.strip()}
    tracer_provider, meter_provider = dropping_providers()
    print(f"load average at start: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print(
        f"{'call':<24} {'chunks':>6} {'none µs':>9} {'genai-otel +µs':>15} {'floor +µs':>10}"
        f" {'ratio':>6} {'own µs/chunk':>13}"
    )
    for case in CASES:
        if wanted and case.label not in wanted:
            continue
        result = measure(case, args.calls, args.blocks, tracer_provider, meter_provider)
        own = (
            f"{(result.ours_added - result.floor_added) / result.chunks:>13.2f}"
            if result.chunks
            else f"{'':>13}"
        )
        print(
            f"{case.label:<24} {result.chunks or '':>6} {result.none_us:>9.1f} {result.ours_added:>+15.1f}"
            f" {result.floor_added:>+10.1f} {result.ratio:>5.2f}x {own}",
            flush=True,
        )
    print(f"load average at end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
