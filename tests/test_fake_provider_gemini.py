"""The fake provider's Gemini API, exercised through the real google-genai SDK over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from genai_otel.fake_provider import FakeProvider, count_tokens, message_tokens

MODEL = "gemini-2.5-flash"


@pytest.fixture
def gemini(fake_provider: FakeProvider) -> Iterator[genai.Client]:
    client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=fake_provider.base_url))
    yield client
    client.close()


def fake(**headers: Any) -> dict[str, Any]:
    return {
        "http_options": {"headers": {f"x-fake-{k.replace('_', '-')}": str(v) for k, v in headers.items()}}
    }


def test_generate_content_usage_follows_gemini_accounting(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model=MODEL,
        contents=[types.Content(role="user", parts=[types.Part(text="Hello")])],
        config={"system_instruction": "Be brief", **fake(cache_read_tokens=20, reasoning_tokens=9)},
    )
    prompt = message_tokens("Be brief") + message_tokens("Hello") + 20  # cached part included
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == prompt
    assert usage.cached_content_token_count == 20
    assert usage.candidates_token_count == 16  # thinking excluded...
    assert usage.thoughts_token_count == 9  # ...and reported apart
    assert usage.total_token_count == prompt + 16 + 9
    assert response.text == "the fox ran far and sat low sun was red sky big day new the fox"
    assert response.model_version == MODEL
    assert response.response_id
    (candidate,) = response.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP


def test_max_output_tokens_and_response_model(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model=MODEL, contents="Hello", config={"max_output_tokens": 3, **fake(response_model="gemini-x")}
    )
    assert response.text == "the fox ran"
    assert response.model_version == "gemini-x"
    assert (response.candidates or [])[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_stream_sends_a_word_per_chunk_and_the_usage_last(
    gemini: genai.Client, fake_provider: FakeProvider
) -> None:
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="Hello"))
    assert len(chunks) == 16
    assert "".join(chunk.text or "" for chunk in chunks).split() == ["the", "fox", "ran", "far"] + [
        w for w in ["and", "sat", "low", "sun", "was", "red", "sky", "big", "day", "new", "the", "fox"]
    ]
    assert {chunk.response_id for chunk in chunks} == {chunks[0].response_id}
    first, last = chunks[0].usage_metadata, chunks[-1].usage_metadata
    assert first is not None and last is not None
    assert (first.prompt_token_count, first.candidates_token_count) == (message_tokens("Hello"), None)
    assert (last.prompt_token_count, last.candidates_token_count) == (message_tokens("Hello"), 16)
    assert [c.candidates[0].finish_reason for c in chunks if c.candidates] == [None] * 15 + [
        types.FinishReason.STOP
    ]
    assert (
        fake_provider.requests[-1].path == f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"
    )  # a custom base URL: v1


def get_weather(city: str) -> str:
    """Weather."""
    return "sunny"


def test_function_call_then_text_answer_to_its_result(
    gemini: genai.Client, fake_provider: FakeProvider
) -> None:
    response = gemini.models.generate_content(
        model=MODEL,
        contents="weather?",
        config={"tools": [get_weather], "automatic_function_calling": {"disable": True}},
    )
    (call,) = response.function_calls or []
    assert call.name == "get_weather"
    assert call.args == {"city": ""}  # built from the schema's required properties
    answered = gemini.models.generate_content(
        model=MODEL, contents="weather?", config={"tools": [get_weather]}
    )
    assert answered.text  # automatic function calling: the second request sent the result
    assert len(fake_provider.requests) == 3


def test_tool_config_none_answers_in_text(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(
        model=MODEL,
        contents="weather?",
        config={
            "tools": [get_weather],
            "tool_config": {"function_calling_config": {"mode": "NONE"}},
            "automatic_function_calling": {"disable": True},
        },
    )
    assert response.function_calls is None
    assert response.text


def test_batch_embed_contents(gemini: genai.Client, fake_provider: FakeProvider) -> None:
    result = gemini.models.embed_content(
        model="gemini-embedding-001", contents=["abcdefgh", "xyz"], config={"output_dimensionality": 3}
    )
    vectors = [e.values for e in result.embeddings or []]
    assert [len(v or []) for v in vectors] == [3, 3]
    assert vectors[0] != vectors[1]
    again = gemini.models.embed_content(
        model="gemini-embedding-001", contents=["abcdefgh"], config={"output_dimensionality": 3}
    )
    assert (again.embeddings or [])[0].values == vectors[0]  # deterministic
    assert result.usage_metadata is not None
    assert result.usage_metadata.prompt_token_count == count_tokens("abcdefgh") + count_tokens("xyz")
    assert fake_provider.requests[0].path == "/v1/models/gemini-embedding-001:batchEmbedContents"


@pytest.mark.parametrize(
    ("scenario", "code", "status"),
    [
        ("rate_limit", 429, "RESOURCE_EXHAUSTED"),
        ("context_length", 400, "INVALID_ARGUMENT"),
        ("auth", 400, "INVALID_ARGUMENT"),
        ("server_error", 500, "INTERNAL"),
        ("overloaded", 503, "UNAVAILABLE"),
    ],
)
def test_error_scenarios_use_googles_error_shape(
    gemini: genai.Client, scenario: str, code: int, status: str
) -> None:
    with pytest.raises(errors.APIError) as raised:
        gemini.models.generate_content(model=MODEL, contents="Hello", config=fake(scenario=scenario))
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.message


def test_inline_marker_and_bad_requests(gemini: genai.Client, fake_provider: FakeProvider) -> None:
    with pytest.raises(errors.ClientError) as raised:
        gemini.models.generate_content(model=MODEL, contents="please [fake:rate_limit]")
    assert raised.value.code == 429
    url = f"{fake_provider.base_url}/v1beta/models/{MODEL}:generateContent"
    missing = httpx2.post(url, json={"generationConfig": {}})
    assert missing.status_code == 400
    assert missing.json()["error"]["status"] == "INVALID_ARGUMENT"
    unknown = httpx2.post(f"{fake_provider.base_url}/v1beta/models/{MODEL}:countTokens", json={})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize("scenario", ["content_filter", "content_filter_finish"])
def test_content_filter_scenarios(gemini: genai.Client, scenario: str) -> None:
    response = gemini.models.generate_content(model=MODEL, contents="Hello", config=fake(scenario=scenario))
    assert response.text is None
    if scenario == "content_filter":
        assert response.prompt_feedback is not None
        assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
        assert response.candidates is None
    else:
        assert (response.candidates or [])[0].finish_reason == types.FinishReason.SAFETY


def test_stream_break_and_invalid_json_fail_mid_stream(gemini: genai.Client) -> None:
    for scenario, error in (
        ("stream_break", httpx2.RemoteProtocolError),
        ("invalid_json", errors.UnknownApiResponseError),
    ):
        received = []
        with pytest.raises(error):
            for chunk in gemini.models.generate_content_stream(
                model=MODEL, contents="Hello", config=fake(scenario=scenario)
            ):
                received.append(chunk)
        assert received


def test_vertex_ai_express_mode_paths(fake_provider: FakeProvider) -> None:
    client = genai.Client(
        vertexai=True, api_key="x", http_options=types.HttpOptions(base_url=fake_provider.base_url)
    )
    response = client.models.generate_content(model=MODEL, contents="Hello")
    assert response.text
    embedded = client.models.embed_content(model="gemini-embedding-001", contents="abcd")
    (embedding,) = embedded.embeddings or []
    assert embedding.statistics is not None and embedding.statistics.token_count == 1
    assert [request.path for request in fake_provider.requests] == [
        f"/v1beta1/publishers/google/models/{MODEL}:generateContent",
        "/v1beta1/publishers/google/models/gemini-embedding-001:embedContent",
    ]
