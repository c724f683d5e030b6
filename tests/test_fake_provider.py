"""The fake provider, exercised through the real openai and anthropic SDKs over real HTTP."""

from __future__ import annotations

import datetime
import enum
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pydantic
import pytest
from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent, ToolUseBlock
from openai.types.responses import ResponseCompletedEvent, ResponseFunctionToolCall, ResponseIncompleteEvent

from genai_otel.fake_provider import (
    AsyncFakeTransport,
    Defaults,
    FakeProvider,
    FakeRequest,
    FakeTransport,
    respond,
)

HELLO: Any = [{"role": "user", "content": "Hello"}]  # Any: both SDKs' message param types
# Token formula: 4 per message + ceil(chars / 4); "Hello" -> 4 + 2.
HELLO_TOKENS = 6
DEFAULT_OUTPUT = 16


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx2.Client]:
    """One HTTP client for the module: the SDKs' own clients build an SSL context each (~0.1 s)."""
    with httpx2.Client() as client:
        yield client


@pytest.fixture
def oai(fake_provider: FakeProvider, http_client: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake_provider.openai_base_url, api_key="x", max_retries=0, http_client=http_client
    )


@pytest.fixture
def claude(fake_provider: FakeProvider, http_client: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=fake_provider.base_url, api_key="x", max_retries=0, http_client=http_client
    )


# --- OpenAI chat completions ------------------------------------------------------------------


def test_chat_plain_parses_with_exact_usage(oai: openai.OpenAI, fake_provider: FakeProvider) -> None:
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    (choice,) = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert len(choice.message.content or "") == 4 * DEFAULT_OUTPUT - 1
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        HELLO_TOKENS,
        DEFAULT_OUTPUT,
    )
    assert completion.usage.total_tokens == HELLO_TOKENS + DEFAULT_OUTPUT
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    (recorded,) = fake_provider.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.body["messages"] == HELLO
    assert recorded.headers["authorization"] == "Bearer x"


def test_chat_stream_with_usage_ends_with_usage_only_chunk(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) == 4 * DEFAULT_OUTPUT - 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *_, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (HELLO_TOKENS, DEFAULT_OUTPUT)
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))

    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


# --- Anthropic messages -----------------------------------------------------------------------


def test_messages_plain_parses_with_exact_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO)

    (block,) = message.content
    assert block.type == "text"
    assert len(block.text) == 4 * DEFAULT_OUTPUT - 1
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens == HELLO_TOKENS
    assert message.usage.output_tokens == DEFAULT_OUTPUT
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0


def test_messages_stream_helper_accumulates_final_message(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert len(text) == 4 * DEFAULT_OUTPUT - 1
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (HELLO_TOKENS, DEFAULT_OUTPUT)


def test_messages_raw_stream_event_sequence(claude: anthropic.Anthropic) -> None:
    events: list[Any] = list(
        claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO, stream=True)
    )

    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert types.count("content_block_delta") == DEFAULT_OUTPUT
    start, delta = events[0], events[-2]
    assert isinstance(start, RawMessageStartEvent)
    assert start.message.usage.input_tokens == HELLO_TOKENS
    assert isinstance(delta, RawMessageDeltaEvent)
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == DEFAULT_OUTPUT


def test_chat_usage_headers_set_cache_reasoning_and_output_tokens(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,
        extra_headers={
            "x-fake-cache-read-tokens": "1024",
            "x-fake-reasoning-tokens": "7",
            "x-fake-output-tokens": "3",
            "x-fake-response-model": "gpt-4o-mini-2024-07-18",
        },
    )

    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == "the fox ran"
    # OpenAI accounting: prompt_tokens includes the cached tokens, completion_tokens the reasoning ones.
    assert usage.prompt_tokens == HELLO_TOKENS + 1024
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens == 3 + 7
    assert usage.completion_tokens_details.reasoning_tokens == 7
    assert usage.total_tokens == HELLO_TOKENS + 1024 + 10


def test_chat_media_token_headers_report_openai_details(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o-audio-preview",
        messages=HELLO,
        extra_headers={
            "x-fake-input-media-tokens": "image=85,audio=20",
            "x-fake-output-media-tokens": "audio=30",
        },
    )

    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    # media tokens come on top of the text; audio-capable models also report text and image tokens
    assert usage.prompt_tokens == HELLO_TOKENS + 85 + 20
    assert usage.prompt_tokens_details.model_dump(exclude_none=True) == {
        "audio_tokens": 20,
        "cached_tokens": 0,
        "text_tokens": HELLO_TOKENS,
        "image_tokens": 85,
    }
    assert usage.completion_tokens == DEFAULT_OUTPUT + 30
    assert (usage.completion_tokens_details.audio_tokens, usage.completion_tokens_details.text_tokens) == (  # type: ignore[attr-defined]
        30,
        DEFAULT_OUTPUT,
    )


@pytest.mark.parametrize("value", ["smell=3", "image=-1", "image", "audio=two"])
def test_chat_media_token_header_must_name_modality_and_tokens(oai: openai.OpenAI, value: str) -> None:
    with pytest.raises(openai.BadRequestError, match="x-fake-input-media-tokens must list modality=tokens"):
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, extra_headers={"x-fake-input-media-tokens": value}
        )


@pytest.mark.parametrize(("model", "reasoning"), [("o4-mini", 2 * DEFAULT_OUTPUT), ("gpt-4.1", 0)])
def test_chat_reasoning_tokens_default_by_model_family(
    oai: openai.OpenAI, model: str, reasoning: int
) -> None:
    completion = oai.chat.completions.create(model=model, messages=HELLO)

    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == reasoning
    assert completion.usage.completion_tokens == DEFAULT_OUTPUT + reasoning


def test_chat_n_choices_and_max_tokens_truncation(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o", messages=HELLO, n=3, max_tokens=5)

    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.finish_reason for c in completion.choices} == {"length"}
    assert len({c.message.content for c in completion.choices}) == 3
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3 * 5


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}


def test_chat_tool_call_plain(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL])

    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "", "unit": "c"},
    )
    assert completion.usage is not None
    # ceil(len("get_weather") / 4) + ceil(len('{"city":"","unit":"c"}') / 4)
    assert completion.usage.completion_tokens == 3 + 6


def test_chat_tool_call_streamed_as_deltas(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL]) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()

    assert len(deltas) > 1
    (call,) = final.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "", "unit": "c"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_chat_tool_choice_none_answers_with_text(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o", messages=HELLO, tools=[WEATHER_TOOL], tool_choice="none"
    )

    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None


class Forecast(pydantic.BaseModel):
    city: str
    temperature: float
    tags: list[str]
    sunny: bool


def test_chat_parse_returns_json_matching_the_schema(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.parse(model="gpt-4o", messages=HELLO, response_format=Forecast)

    assert completion.choices[0].message.parsed == Forecast(city="", temperature=0, tags=[], sunny=False)


class Unit(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Reading(pydantic.BaseModel):
    at: datetime.datetime
    unit: Unit
    note: str | None


class Report(pydantic.BaseModel):
    station: str
    readings: list[Reading]
    latest: Reading


def test_chat_parse_follows_refs_enums_and_nullable_fields(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.parse(model="gpt-4o", messages=HELLO, response_format=Report)

    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    latest = Reading(at=epoch, unit=Unit.CELSIUS, note="")
    assert completion.choices[0].message.parsed == Report(station="", readings=[], latest=latest)


async def test_async_sdk_streams_over_http(fake_provider: FakeProvider) -> None:
    async with openai.AsyncOpenAI(
        base_url=fake_provider.openai_base_url, api_key="x", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]

    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == DEFAULT_OUTPUT


# --- OpenAI responses ---------------------------------------------------------------------------

RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * DEFAULT_OUTPUT,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_plain_with_cache_usage(oai: openai.OpenAI) -> None:
    response = oai.responses.create(
        model="gpt-4.1",
        input="Hello",
        instructions="Be brief",
        extra_headers={"x-fake-cache-read-tokens": "64"},
    )

    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert len(response.output_text) == 4 * DEFAULT_OUTPUT - 1
    assert response.usage is not None
    # instructions count as one message: 4 + ceil(8 / 4) = 6; input "Hello" = 6; plus 64 cached
    assert response.usage.input_tokens == 6 + HELLO_TOKENS + 64
    assert response.usage.input_tokens_details.cached_tokens == 64
    assert response.usage.output_tokens == DEFAULT_OUTPUT
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.usage.total_tokens == 6 + HELLO_TOKENS + 64 + DEFAULT_OUTPUT


def test_responses_raw_stream_event_sequence(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-4.1", input=HELLO, stream=True))

    assert [e.type for e in events] == RESPONSE_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert completed.response.usage is not None
    assert completed.response.usage.input_tokens == HELLO_TOKENS


def test_responses_stream_helper_with_reasoning_model(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="o3", input="Hello") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(texts) == final.output_text
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 2 * DEFAULT_OUTPUT
    assert final.usage.output_tokens == 3 * DEFAULT_OUTPUT


def test_responses_truncated_stream_ends_with_incomplete_event(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-4.1", input="Hello", max_output_tokens=3, stream=True))

    last = events[-1]
    assert isinstance(last, ResponseIncompleteEvent)
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert (last.response.output_text, last.response.usage and last.response.usage.output_tokens) == (
        "the fox ran",
        3,
    )


def test_responses_function_tool_call(oai: openai.OpenAI) -> None:
    tool: Any = {"type": "function", "name": "lookup", "parameters": WEATHER_TOOL["function"]["parameters"]}
    with oai.responses.stream(model="gpt-4.1", input="Hello", tools=[tool]) as stream:
        final = stream.get_final_response()

    (call,) = final.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, json.loads(call.arguments)) == ("lookup", {"city": "", "unit": "c"})


def test_responses_parse(oai: openai.OpenAI) -> None:
    response = oai.responses.parse(model="gpt-4.1", input="Hello", text_format=Forecast)

    assert response.output_parsed == Forecast(city="", temperature=0, tags=[], sunny=False)


# --- OpenAI embeddings --------------------------------------------------------------------------


def test_embeddings_dimensions_determinism_and_usage(oai: openai.OpenAI) -> None:
    default = oai.embeddings.create(model="text-embedding-3-small", input=["Hello", "Hello there"])
    again = oai.embeddings.create(model="text-embedding-3-small", input="Hello", encoding_format="float")
    sized = oai.embeddings.create(model="text-embedding-3-small", input="Hello", dimensions=32)

    assert [len(d.embedding) for d in default.data] == [8, 8]
    assert default.data[0].embedding == again.data[0].embedding  # base64 (SDK default) == float
    assert default.data[0].embedding != default.data[1].embedding
    assert sum(v * v for v in default.data[0].embedding) == pytest.approx(1.0, abs=1e-6)
    assert len(sized.data[0].embedding) == 32
    # ceil(5 / 4) + ceil(11 / 4): no per-message overhead for embeddings
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (5, 5)


# --- Anthropic: cache accounting, tools, thinking -------------------------------------------------


def test_messages_cache_tokens_are_excluded_from_input_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-opus-4-1",
        max_tokens=100,
        system="Be brief",
        messages=HELLO,
        extra_headers={
            "x-fake-cache-read-tokens": "2000",
            "x-fake-cache-write-tokens": "300",
            "x-fake-reasoning-tokens": "5",
        },
    )

    usage = message.usage
    assert usage.input_tokens == 6 + HELLO_TOKENS  # system prompt + message, no cache tokens
    assert usage.cache_read_input_tokens == 2000
    assert usage.cache_creation_input_tokens == 300
    assert usage.output_tokens == DEFAULT_OUTPUT + 5
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == 5


def test_messages_stream_reports_cache_tokens_in_message_start(claude: anthropic.Anthropic) -> None:
    events: list[Any] = list(
        claude.messages.create(
            model="claude-opus-4-1",
            max_tokens=100,
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-cache-read-tokens": "2000", "x-fake-cache-write-tokens": "300"},
        )
    )

    start = events[0]
    assert isinstance(start, RawMessageStartEvent)
    assert (start.message.usage.input_tokens, start.message.usage.cache_read_input_tokens) == (
        HELLO_TOKENS,
        2000,
    )
    assert start.message.usage.cache_creation_input_tokens == 300


ANTHROPIC_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_messages_tool_use_plain_and_streamed(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO, tools=[ANTHROPIC_TOOL]
    )
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO, tools=[ANTHROPIC_TOOL]
    ) as stream:
        json_deltas = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()

    for result in (message, final):
        (block,) = result.content
        assert isinstance(block, ToolUseBlock)
        assert (block.name, block.input) == ("get_weather", {"city": ""})
        assert block.id.startswith("toolu_")
        assert result.stop_reason == "tool_use"
    assert len(json_deltas) > 1


# --- failure scenarios --------------------------------------------------------------------------

OPENAI_ERRORS = [
    ("rate_limit", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("context_length", openai.BadRequestError, 400, "context_length_exceeded"),
    ("content_filter", openai.BadRequestError, 400, "content_filter"),
    ("auth", openai.AuthenticationError, 401, "invalid_api_key"),
    ("server_error", openai.InternalServerError, 500, None),
    ("overloaded", openai.InternalServerError, 503, None),
]


@pytest.mark.parametrize(("scenario", "error", "status", "code"), OPENAI_ERRORS)
def test_openai_error_scenarios(
    oai: openai.OpenAI, scenario: str, error: type[openai.APIStatusError], status: int, code: str | None
) -> None:
    with pytest.raises(error) as raised:
        oai.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-fake-scenario": scenario}
        )

    assert raised.value.status_code == status
    assert raised.value.code == code
    if scenario == "rate_limit":
        assert raised.value.response.headers["retry-after"] == "1"


ANTHROPIC_ERRORS = [
    ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("context_length", anthropic.BadRequestError, 400, "invalid_request_error"),
    ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
    ("server_error", anthropic.InternalServerError, 500, "api_error"),
    ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
]


@pytest.mark.parametrize(("scenario", "error", "status", "error_type"), ANTHROPIC_ERRORS)
def test_anthropic_error_scenarios(
    claude: anthropic.Anthropic,
    scenario: str,
    error: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    with pytest.raises(error) as raised:
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=HELLO,
            extra_headers={"x-fake-scenario": scenario},
        )

    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == error_type


def test_context_length_message_matches_anthropic_wording(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"prompt is too long: \d+ tokens > \d+ maximum"):
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=HELLO,
            extra_headers={"x-fake-scenario": "context_length"},
        )


def test_inline_marker_in_last_user_message_triggers_scenario(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    marked: Any = [{"role": "user", "content": "What now? [fake:rate_limit]"}]

    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4o", messages=marked)
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=marked)
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model="gpt-4.1", input="What now? [fake:rate_limit]")


def test_content_filter_finish_and_refusal(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    headers = {"x-fake-scenario": "content_filter_finish"}
    completion = oai.chat.completions.create(model="gpt-4o", messages=HELLO, extra_headers=headers)
    response = oai.responses.create(model="gpt-4.1", input="Hello", extra_headers=headers)
    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        messages=HELLO,
        extra_headers={"x-fake-scenario": "content_filter"},
    )

    assert completion.choices[0].finish_reason == "content_filter"
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert message.stop_reason == "refusal"


def test_hang_ends_in_client_timeout(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    hang = {"x-fake-scenario": "hang"}

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.2).chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers=hang
        )
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.2).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=HELLO, extra_headers=hang
        )
    assert time.monotonic() - started < 5  # not the server's 30 s bound


def test_stream_break_raises_mid_iteration(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-fake-scenario": "stream_break"}
        ):
            received.append(chunk)
    assert 0 < len(received) < DEFAULT_OUTPUT

    events: list[Any] = []
    # The anthropic SDK lets the transport's error through unwrapped while iterating a stream.
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        for event in claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=HELLO,
            stream=True,
            extra_headers={"x-fake-scenario": "stream_break"},
        ):
            events.append(event)
    assert events[0].type == "message_start"
    assert "message_stop" not in [e.type for e in events]


def test_invalid_json_body_fails_to_parse(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    bad = {"x-fake-scenario": "invalid_json"}
    with pytest.raises(json.JSONDecodeError):
        oai.chat.completions.create(model="gpt-4o", messages=HELLO, extra_headers=bad)
    with pytest.raises(json.JSONDecodeError):
        list(oai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True, extra_headers=bad))
    with pytest.raises(json.JSONDecodeError):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HELLO, extra_headers=bad)


def test_unknown_scenario_is_a_bad_request_naming_the_known_ones(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="rate_limit"):
        oai.chat.completions.create(model="gpt-4o", messages=HELLO, extra_headers={"x-fake-scenario": "nope"})


# --- timing -------------------------------------------------------------------------------------


def test_ttfc_and_latency_headers_delay_the_stream_and_the_answer(oai: openai.OpenAI) -> None:
    started = time.monotonic()
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        extra_headers={"x-fake-ttfc-ms": "100", "x-fake-latency-ms": "400"},
    )
    next(iter(stream))
    first_chunk = time.monotonic() - started
    list(stream)
    total = time.monotonic() - started
    oai.chat.completions.create(model="gpt-4o", messages=HELLO, extra_headers={"x-fake-latency-ms": "150"})
    plain = time.monotonic() - started - total

    # Lower bounds are exact (the server sleeps); upper bounds only catch gross errors on a busy machine.
    assert 0.1 <= first_chunk < 1.5
    assert 0.4 <= total < 2.5
    assert total - first_chunk >= 0.2  # the other chunks follow over 0.3 s: streamed incrementally
    assert 0.15 <= plain < 1.5


def test_server_defaults_apply_when_no_header_is_given(http_client: httpx2.Client) -> None:
    with FakeProvider(latency_ms=120) as provider:
        oai = openai.OpenAI(
            base_url=provider.openai_base_url, api_key="x", max_retries=0, http_client=http_client
        )
        started = time.monotonic()
        oai.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert 0.12 <= time.monotonic() - started < 1.5


# --- in-process transports --------------------------------------------------------------------

VOLATILE = {"id", "call_id", "created", "created_at", "completed_at"}


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _stable(model: pydantic.BaseModel) -> Any:
    """The parsed body minus what must differ between two calls: ids and timestamps."""
    return _without_ids(model.model_dump())


def test_transport_returns_the_same_bodies_as_http(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    local_oai = openai.OpenAI(
        base_url="http://fake/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=FakeTransport()),
    )
    local_claude = anthropic.Anthropic(
        base_url="http://fake",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=FakeTransport()),
    )
    kwargs: Any = {"model": "gpt-4o", "messages": HELLO, "tools": [WEATHER_TOOL]}

    assert _stable(local_oai.chat.completions.create(**kwargs)) == _stable(
        oai.chat.completions.create(**kwargs)
    )
    over_http = [_stable(c) for c in oai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)]
    local = [
        _stable(c) for c in local_oai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    ]
    assert local == over_http
    assert _stable(local_oai.responses.create(model="o3", input="Hello")) == _stable(
        oai.responses.create(model="o3", input="Hello")
    )
    local_message = local_claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO)
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=HELLO)
    assert _stable(local_message) == _stable(message)


def test_transport_reproduces_timeouts_and_dropped_streams() -> None:
    transport = FakeTransport()
    local = openai.OpenAI(
        base_url="http://fake/v1",
        api_key="x",
        max_retries=0,
        timeout=0.2,
        http_client=httpx2.Client(transport=transport),
    )

    with pytest.raises(openai.APITimeoutError):
        local.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-fake-scenario": "hang"}
        )
    with pytest.raises(openai.APIConnectionError):
        list(
            local.chat.completions.create(
                model="gpt-4o", messages=HELLO, stream=True, extra_headers={"x-fake-scenario": "stream_break"}
            )
        )
    assert [r.path for r in transport.requests] == ["/v1/chat/completions"] * 2


async def test_async_transport_streams_messages() -> None:
    local = anthropic.AsyncAnthropic(
        base_url="http://fake",
        api_key="x",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=AsyncFakeTransport()),
    )

    async with local.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()

    assert len(text) == 4 * DEFAULT_OUTPUT - 1
    assert final.usage.output_tokens == DEFAULT_OUTPUT


# --- the pure layer and the command line --------------------------------------------------------


def test_respond_is_deterministic_for_the_same_seed_and_clock() -> None:
    request = FakeRequest("POST", "/v1/chat/completions", {}, {"model": "gpt-4o", "messages": HELLO})

    first = respond(request, Defaults(), now=1_700_000_000, seed="s:1")
    second = respond(request, Defaults(), now=1_700_000_000, seed="s:1")
    other = respond(request, Defaults(), now=1_700_000_000, seed="s:2")

    assert first.body == second.body
    assert first.json()["id"] != other.json()["id"]
    assert first.json()["created"] == 1_700_000_000


def test_request_log_keeps_only_the_last_max_recorded(http_client: httpx2.Client) -> None:
    with FakeProvider(max_recorded=2) as provider:
        oai = openai.OpenAI(
            base_url=provider.openai_base_url, api_key="x", max_retries=0, http_client=http_client
        )
        for count in ("1", "2", "3"):
            oai.chat.completions.create(
                model="gpt-4o", messages=HELLO, extra_headers={"x-fake-output-tokens": count}
            )

        assert [r.headers["x-fake-output-tokens"] for r in provider.requests] == ["2", "3"]


def test_healthz_and_unknown_paths(fake_provider: FakeProvider) -> None:
    with urllib.request.urlopen(fake_provider.base_url + "/healthz", timeout=5) as answer:
        assert (answer.status, json.loads(answer.read())) == (200, {"status": "ok"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(fake_provider.base_url + "/v1/nothing", timeout=5)
    assert raised.value.code == 404
    assert fake_provider.requests[0].path == "/v1/nothing"


def test_chunked_request_bodies_are_read(fake_provider: FakeProvider, http_client: httpx2.Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o", '
        yield b'"messages": [{"role": "user", "content": "Hello"}]}'

    answer = http_client.post(fake_provider.openai_base_url + "/chat/completions", content=body())

    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert (answer.status_code, answer.json()["usage"]["prompt_tokens"]) == (200, HELLO_TOKENS)


def test_cli_serves_healthz_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "genai_otel", "fake-provider", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
