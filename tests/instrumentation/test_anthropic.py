"""Anthropic instrumentation: the real `anthropic` SDK over real HTTP to the fake provider."""

from __future__ import annotations

import contextlib
import gc
import http.server
import importlib.metadata
import json
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel, port_of

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": "Say hello to the tests"}]
CACHE = {"x-fake-cache-read-tokens": "30", "x-fake-cache-write-tokens": "12"}


def test_message_span_normalises_input_tokens_to_include_cache(
    otel: Otel, claude: anthropic.Anthropic, provider: FakeProvider
) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=64, stop_sequences=["END"], messages=MESSAGES, extra_headers=CACHE
    )
    (span,) = otel.spans()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == semconv.GENAI_OTEL_SCOPE_ANTHROPIC
    assert span.instrumentation_scope.version == importlib.metadata.version("genai-otel")
    usage = message.usage
    assert usage.cache_read_input_tokens == 30 and usage.cache_creation_input_tokens == 12
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
        semconv.GEN_AI_REQUEST_STREAM: False,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        semconv.GEN_AI_RESPONSE_ID: message.id,
        semconv.GEN_AI_RESPONSE_MODEL: message.model,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: (message.stop_reason,),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens + 30 + 12,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 30,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 12,
    }
    tokens = {
        attrs[semconv.GEN_AI_TOKEN_TYPE]: p.sum for attrs, p in otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": usage.input_tokens + 42, "output": usage.output_tokens}


def test_streamed_create_keeps_usage_from_start_and_delta(otel: Otel, claude: anthropic.Anthropic) -> None:
    events = list(
        claude.messages.create(
            model=MODEL, max_tokens=64, messages=MESSAGES, stream=True, extra_headers=CACHE
        )
    )
    start = next(e for e in events if e.type == "message_start")
    delta = next(e for e in events if e.type == "message_delta")
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == start.message.usage.input_tokens + 42  # type: ignore[union-attr]
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == delta.usage.output_tokens  # type: ignore[union-attr]
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (delta.delta.stop_reason,)  # type: ignore[union-attr]
    assert attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert len(otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK)) == 1


def test_messages_stream_helper_sync(otel: Otel, claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        assert otel.spans() == []
        final = stream.get_final_message()
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens


def test_messages_stream_helper_left_early_ends_span(otel: Otel, claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        for _event in stream:
            break
    (span,) = otel.spans()
    assert span.attributes is not None
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes
    assert semconv.GEN_AI_RESPONSE_ID in span.attributes  # from message_start: kept


async def test_messages_stream_helper_async(otel: Otel, aclaude: anthropic.AsyncAnthropic) -> None:
    async with aclaude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        async for _event in stream:
            pass
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)


async def test_async_create(otel: Otel, aclaude: anthropic.AsyncAnthropic) -> None:
    message = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == message.id


def test_abandoned_stream_is_ended_by_garbage_collection(otel: Otel, claude: anthropic.Anthropic) -> None:
    stream = claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    (span,) = otel.spans()
    assert span.end_time is not None


def test_tool_use_recorded(otel: Otel, claude: anthropic.Anthropic) -> None:
    tool = {
        "name": "get_weather",
        "description": "weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    message = claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, tools=[tool])  # type: ignore[list-item]
    tool_uses = [block for block in message.content if block.type == "tool_use"]
    assert tool_uses
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert span.attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] == (tool_uses[0].id,)


@pytest.mark.parametrize(
    ("scenario", "category"),
    [
        ("rate_limit", "rate_limit"),
        ("context_length", "context_window_exceeded"),
        ("auth", "auth"),
        ("overloaded", "provider_down"),
        ("server_error", "provider_down"),
    ],
)
def test_error_categories(otel: Otel, claude: anthropic.Anthropic, scenario: str, category: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        claude.messages.create(
            model=MODEL, max_tokens=64, messages=MESSAGES, extra_headers={"x-fake-scenario": scenario}
        )
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category


def test_refusal_is_content_filter(otel: Otel, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=MESSAGES,
        extra_headers={"x-fake-scenario": "content_filter_finish"},
    )
    assert message.stop_reason == "refusal"
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "content_filter"


@pytest.mark.parametrize("native_tracing", ["unset", "false"])
def test_one_call_one_span_whatever_the_sdk_tracing_switch(
    otel: Otel, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, native_tracing: str
) -> None:
    if native_tracing == "unset":
        monkeypatch.delenv(semconv.ANTHROPIC_SDK_TRACING_ENV, raising=False)
    else:
        monkeypatch.setenv(semconv.ANTHROPIC_SDK_TRACING_ENV, native_tracing)
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="k", max_retries=0)  # reads the env

    otel.uninstrument()  # first: the SDK alone, to show what the switch does
    client.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    native = otel.spans()
    expected_native = [semconv.ANTHROPIC_SDK_SPAN_NAME] if native_tracing == "unset" else []
    assert [span.name for span in native] == expected_native
    assert all(
        s.instrumentation_scope and s.instrumentation_scope.name == semconv.ANTHROPIC_SDK_SCOPE
        for s in native
    )

    otel.exporter.clear()
    otel.instrument()
    client.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)
    with client.messages.stream(model=MODEL, max_tokens=16, messages=MESSAGES) as stream:
        stream.until_done()
    assert [span.name for span in otel.spans()] == [f"chat {MODEL}", f"chat {MODEL}"]
    assert {s.instrumentation_scope.name for s in otel.spans() if s.instrumentation_scope} == {
        semconv.GENAI_OTEL_SCOPE_ANTHROPIC
    }


def test_sdk_span_kept_for_calls_we_do_not_instrument(
    otel: Otel, provider: FakeProvider, monkeypatch
) -> None:
    monkeypatch.delenv(semconv.ANTHROPIC_SDK_TRACING_ENV, raising=False)
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="k", max_retries=0)
    client.beta.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
    assert [span.name for span in otel.spans()] == [semconv.ANTHROPIC_SDK_SPAN_NAME]


def test_uninstrument_restores_the_sdk_exactly(otel: Otel) -> None:
    import anthropic._base_client as base_client
    from anthropic.resources.messages.messages import AsyncMessages, Messages

    otel.uninstrument()
    originals = (
        Messages.__dict__["create"],
        AsyncMessages.__dict__["stream"],
        base_client.start_api_call_span,
    )
    otel.instrument()
    assert base_client.start_api_call_span is not originals[2]
    otel.uninstrument()
    assert (
        Messages.__dict__["create"],
        AsyncMessages.__dict__["stream"],
        base_client.start_api_call_span,
    ) == originals


def test_streamed_text_and_tool_input_captured_only_when_opted_in(
    otel: Otel, claude: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    list(claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True))
    (span,) = otel.spans()
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in (span.attributes or {}) and not span.events

    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    otel.reinstrument()
    otel.exporter.clear()
    events = list(claude.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True))
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )  # type: ignore[union-attr]
    assert text
    (span,) = otel.spans()
    (message,) = json.loads(str((span.attributes or {})[semconv.GEN_AI_OUTPUT_MESSAGES]))
    assert message == {
        "role": "assistant",
        "parts": [{"type": "text", "content": text}],
        "finish_reason": "end_turn",
    }


def test_messages_stream_helper_iterated_to_the_end(otel: Otel, claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "text" in kinds and "message_stop" in kinds  # the helper's own events are untouched
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


class _OneAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the server's `answer`: (HTTP status, JSON body)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, body = self.server.answer  # type: ignore[attr-defined]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # no request log on stderr
        pass


@contextlib.contextmanager
def _answering(status: int, body: dict[str, Any]) -> Iterator[str]:
    """A server on 127.0.0.1 (a port the system picks) giving this one answer; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OneAnswer)
    server.answer = (status, body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "error_type", "message", "category"),
    [
        # The words name the cause where the status names a symptom (a timeout): the keyword
        # table's precedence, the processor's too, puts the cause first.
        (408, "rate_limit_error", "Request timed out waiting for capacity", "rate_limit"),
        (
            408,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "context_window_exceeded",
        ),
        # The status stays first where it names the cause.
        (429, "rate_limit_error", "Request deadline_exceeded while queued", "rate_limit"),
        (401, "authentication_error", "Service overloaded; also your key is invalid", "auth"),
        (408, "timeout_error", "Request timed out", "timeout"),
        # Words that say nothing in prose leave a 400 as `other` (they would say something in a name).
        (400, "invalid_request_error", "response_format json is unsupported for 500 tokens", "other"),
    ],
)
def test_error_category_weighs_the_status_against_the_words(
    otel: Otel, status: int, error_type: str, message: str, category: str
) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    with _answering(status, body) as url:
        client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        client.close()
    assert raised.value.status_code == status
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category
