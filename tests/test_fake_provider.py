"""The fake provider, exercised through the real openai and anthropic SDKs over real HTTP."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

from genai_otel.fake_provider import FakeProvider

HELLO: Any = [{"role": "user", "content": "Hello"}]  # Any: both SDKs' message param types
# Token formula: 4 per message + ceil(chars / 4); "Hello" -> 4 + 2.
HELLO_TOKENS = 6
DEFAULT_OUTPUT = 16


@pytest.fixture
def oai(fake_provider: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="x", max_retries=0)


@pytest.fixture
def claude(fake_provider: FakeProvider) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake_provider.base_url, api_key="x", max_retries=0)


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
