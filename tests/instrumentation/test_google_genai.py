"""Google Gen AI instrumentation: the real `google-genai` SDK over real HTTP to the fake provider."""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel, console_summary, port_of, run_instrumented_app

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider, message_tokens

MODEL = "gemini-2.5-flash"
PROMPT = "Say hello to the tests"
PROMPT_TOKENS = message_tokens(PROMPT)  # 4 + ceil(22 / 4) = 10


def fake(**headers: Any) -> dict[str, Any]:
    """A request config sending `x-fake-*` headers (cache_read_tokens=30 -> x-fake-cache-read-tokens)."""
    sent = {f"x-fake-{name.replace('_', '-')}": str(value) for name, value in headers.items()}
    return {"http_options": {"headers": sent}}


def attributes_of(otel: Otel) -> dict[str, Any]:
    (span,) = otel.spans()
    return dict(span.attributes or {})


def test_generate_content_span_normalises_usage(
    otel: Otel, gemini: genai.Client, provider: FakeProvider
) -> None:
    response = gemini.models.generate_content(
        model=f"models/{MODEL}",
        contents=PROMPT,
        config={
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "max_output_tokens": 64,
            "stop_sequences": ["END"],
            "seed": 7,
            **fake(cache_read_tokens=30, reasoning_tokens=7),
        },
    )
    usage = response.usage_metadata
    assert usage is not None
    # Gemini's own accounting: the prompt count includes the cached part, candidates exclude thinking
    assert (usage.prompt_token_count, usage.cached_content_token_count) == (PROMPT_TOKENS + 30, 30)
    assert (usage.candidates_token_count, usage.thoughts_token_count) == (16, 7)
    (span,) = otel.spans()
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == semconv.GENAI_OTEL_SCOPE_GOOGLE_GENAI
    assert span.instrumentation_scope.version == importlib.metadata.version("genai-otel")
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "generate_content",
        semconv.GEN_AI_PROVIDER_NAME: "gcp.gemini",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
        semconv.GEN_AI_REQUEST_STREAM: False,
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        semconv.GEN_AI_REQUEST_TOP_P: 0.9,
        semconv.GEN_AI_REQUEST_TOP_K: 40,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_RESPONSE_ID: response.response_id,
        semconv.GEN_AI_RESPONSE_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: PROMPT_TOKENS + 30,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 16 + 7,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 30,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 7,
    }
    tokens = {
        attrs[semconv.GEN_AI_TOKEN_TYPE]: (p.count, p.sum)
        for attrs, p in otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": (1, PROMPT_TOKENS + 30), "output": (1, 23)}
    ((duration_attributes, duration),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert duration.count == 1
    assert duration_attributes == {
        semconv.GEN_AI_OPERATION_NAME: "generate_content",
        semconv.GEN_AI_PROVIDER_NAME: "gcp.gemini",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
    }


def test_response_model_max_tokens_and_json_output(otel: Otel, gemini: genai.Client) -> None:
    gemini.models.generate_content(
        model=MODEL,
        contents=PROMPT,
        config={
            "max_output_tokens": 5,
            "response_mime_type": "application/json",
            "candidate_count": 2,
            **fake(response_model="gemini-2.5-flash-preview-09-2025"),
        },
    )
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-flash-preview-09-2025"
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("max_tokens",)
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert attributes[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] == 2


def test_stream_exhausted_keeps_final_usage_and_time_to_first_chunk(otel: Otel, gemini: genai.Client) -> None:
    chunks = list(
        gemini.models.generate_content_stream(
            model=MODEL, contents=PROMPT, config=fake(cache_read_tokens=4, reasoning_tokens=3)
        )
    )
    assert len(chunks) == 16  # one word per chunk
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == chunks[0].response_id
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS + 4
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 16 + 3
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 3
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    ttfc = attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    ((_, point),) = otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(ttfc)


def test_stream_left_early_ends_once_with_what_was_known(otel: Otel, gemini: genai.Client) -> None:
    for _chunk in gemini.models.generate_content_stream(model=MODEL, contents=PROMPT):
        break
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS  # from the first chunk
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes
    assert len(otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)) == 1


def test_abandoned_stream_is_ended_by_garbage_collection(otel: Otel, gemini: genai.Client) -> None:
    stream = gemini.models.generate_content_stream(model=MODEL, contents=PROMPT)
    next(stream)
    assert otel.spans() == []
    del stream
    gc.collect()
    (span,) = otel.spans()
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(
    ("scenario", "error_type", "category"),
    [
        ("stream_break", "RemoteProtocolError", "provider_down"),
        ("invalid_json", "UnknownApiResponseError", "invalid_response"),
    ],
)
def test_stream_failing_midway_ends_with_the_error(
    otel: Otel, gemini: genai.Client, scenario: str, error_type: str, category: str
) -> None:
    received = []
    with pytest.raises((httpx2.RemoteProtocolError, errors.UnknownApiResponseError)) as raised:
        for chunk in gemini.models.generate_content_stream(
            model=MODEL, contents=PROMPT, config=fake(scenario=scenario)
        ):
            received.append(chunk)
    assert type(raised.value).__name__ == error_type
    assert received  # it failed after the first chunk
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes[semconv.ERROR_TYPE] == error_type
    assert attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == received[0].response_id  # kept


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("rate_limit", (errors.ClientError, 429, "rate_limit")),
        ("context_length", (errors.ClientError, 400, "context_window_exceeded")),
        ("auth", (errors.ClientError, 400, "auth")),
        ("server_error", (errors.ServerError, 500, "provider_down")),
        ("overloaded", (errors.ServerError, 503, "provider_down")),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_categories(
    otel: Otel,
    gemini: genai.Client,
    scenario: str,
    expected: tuple[type[errors.APIError], int, str],
    stream: bool,
) -> None:
    error_class, code, category = expected
    with pytest.raises(error_class) as raised:
        if stream:
            list(
                gemini.models.generate_content_stream(
                    model=MODEL, contents=PROMPT, config=fake(scenario=scenario)
                )
            )
        else:
            gemini.models.generate_content(model=MODEL, contents=PROMPT, config=fake(scenario=scenario))
    assert raised.value.code == code  # the application gets the SDK's own exception
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes[semconv.ERROR_TYPE] == error_class.__qualname__
    assert attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category
    ((labels, _),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert labels[semconv.ERROR_TYPE] == error_class.__qualname__
    assert otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE) == []


def test_unparseable_body_is_invalid_response(otel: Otel, gemini: genai.Client) -> None:
    with pytest.raises(json.JSONDecodeError):
        gemini.models.generate_content(model=MODEL, contents=PROMPT, config=fake(scenario="invalid_json"))
    assert attributes_of(otel)[semconv.GENAI_OTEL_ERROR_CATEGORY] == "invalid_response"


def test_timeout_is_timeout(otel: Otel, gemini: genai.Client) -> None:
    config = {"http_options": {"timeout": 300, "headers": {"x-fake-scenario": "hang"}}}  # milliseconds
    with pytest.raises(httpx2.ReadTimeout):  # httpx2's own, passed through by the SDK
        gemini.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    attributes = attributes_of(otel)
    assert attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "timeout"


@pytest.mark.parametrize("scenario", ["content_filter", "content_filter_finish"])
@pytest.mark.parametrize("stream", [False, True])
def test_blocked_prompt_and_safety_finish_are_content_filter(
    otel: Otel, gemini: genai.Client, scenario: str, stream: bool
) -> None:
    if stream:
        list(
            gemini.models.generate_content_stream(
                model=MODEL, contents=PROMPT, config=fake(scenario=scenario)
            )
        )
    else:
        response = gemini.models.generate_content(
            model=MODEL, contents=PROMPT, config=fake(scenario=scenario)
        )
        assert response.text is None
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes[semconv.ERROR_TYPE] == "content_filter"
    assert attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "content_filter"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    expected_reasons = ("safety",) if scenario == "content_filter_finish" else None
    assert attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS) == expected_reasons


def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


def test_automatic_function_calling_is_one_span_per_model_call(otel: Otel, gemini: genai.Client) -> None:
    response = gemini.models.generate_content(model=MODEL, contents=PROMPT, config={"tools": [get_weather]})
    assert response.text  # the second call answered the function's result
    first, second = otel.spans()
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert first.attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] == ("",)  # Gemini sends no id
    assert semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES not in second.attributes
    # each span has its own request's usage: the second prompt holds the call and its result
    assert first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert second.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] > PROMPT_TOKENS
    tokens = sum(
        p.sum
        for attrs, p in otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE)
        if attrs["gen_ai.token.type"] == "input"
    )
    assert (
        tokens
        == first.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
        + second.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
    )


def test_chat_session_calls_are_traced(otel: Otel, gemini: genai.Client) -> None:
    chat = gemini.chats.create(model=MODEL)
    chat.send_message(PROMPT)
    for _chunk in chat.send_message_stream("and again"):
        pass
    assert [span.attributes[semconv.GEN_AI_REQUEST_STREAM] for span in otel.spans() if span.attributes] == [
        False,
        True,
    ]


def test_embed_content(otel: Otel, gemini: genai.Client, provider: FakeProvider) -> None:
    result = gemini.models.embed_content(
        model="gemini-embedding-001", contents=["abcd efgh", "ijkl"], config={"output_dimensionality": 4}
    )
    assert result.embeddings is not None and len(result.embeddings) == 2
    (span,) = otel.spans()
    assert span.name == "embeddings gemini-embedding-001"
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "embeddings",
        semconv.GEN_AI_PROVIDER_NAME: "gcp.gemini",
        semconv.GEN_AI_REQUEST_MODEL: "gemini-embedding-001",
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
        semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: 4,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 3 + 1,  # ceil(9 / 4) + ceil(4 / 4)
    }
    (path,) = [request.path for request in provider.requests]
    assert path.endswith("/models/gemini-embedding-001:batchEmbedContents")


async def test_async_generate_stream_and_embed(otel: Otel, gemini: genai.Client) -> None:
    response = await gemini.aio.models.generate_content(model=MODEL, contents=PROMPT)
    stream = await gemini.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
    chunks = [chunk async for chunk in stream]
    await gemini.aio.models.embed_content(model="gemini-embedding-001", contents="abcd")
    plain, streamed, embedded = otel.spans()
    assert (
        plain.attributes is not None and streamed.attributes is not None and embedded.attributes is not None
    )
    assert plain.attributes[semconv.GEN_AI_RESPONSE_ID] == response.response_id
    assert plain.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 16
    assert streamed.attributes[semconv.GEN_AI_RESPONSE_ID] == chunks[0].response_id
    assert streamed.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 16
    assert streamed.attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert embedded.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1


async def test_async_stream_closed_early_ends_once(otel: Otel, gemini: genai.Client) -> None:
    stream = await gemini.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
    async for _chunk in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(50):  # the SDK closes its inner generators in tasks of their own
        if otel.spans():
            break
        await asyncio.sleep(0.01)
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes


async def test_async_error_is_classified(otel: Otel, gemini: genai.Client) -> None:
    with pytest.raises(errors.ClientError):
        await gemini.aio.models.generate_content(
            model=MODEL, contents=PROMPT, config=fake(scenario="rate_limit")
        )
    assert attributes_of(otel)[semconv.GENAI_OTEL_ERROR_CATEGORY] == "rate_limit"


def test_vertex_ai_client_is_provider_vertex_ai(otel: Otel, provider: FakeProvider) -> None:
    client = genai.Client(
        vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=provider.base_url)
    )
    client.models.generate_content(model=MODEL, contents=PROMPT)
    client.models.embed_content(model="gemini-embedding-001", contents="abcd")
    generated, embedded = otel.spans()
    assert generated.attributes is not None and embedded.attributes is not None
    assert generated.attributes[semconv.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert generated.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert embedded.attributes[semconv.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert embedded.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1  # from the embedding's statistics
    assert [request.path.split(":")[0] for request in provider.requests] == [
        f"/v1beta1/publishers/google/models/{MODEL}",
        "/v1beta1/publishers/google/models/gemini-embedding-001",
    ]


CONTENT_KEYS = {
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
}


def test_no_content_recorded_by_default(
    otel: Otel, gemini: genai.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, raising=False)
    otel.reinstrument()
    gemini.models.generate_content(model=MODEL, contents=PROMPT, config={"system_instruction": "Be brief"})
    list(gemini.models.generate_content_stream(model=MODEL, contents=PROMPT))
    for span in otel.spans():
        assert not CONTENT_KEYS & set(span.attributes or {})
        assert span.events == ()
        assert not any(PROMPT in str(value) for value in (span.attributes or {}).values())


def test_content_captured_when_opted_in(
    otel: Otel, gemini: genai.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_AND_EVENT")
    otel.reinstrument()
    response = gemini.models.generate_content(
        model=MODEL, contents=PROMPT, config={"system_instruction": "Be brief"}
    )
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents=[PROMPT, "second part"]))
    plain, streamed = otel.spans()
    assert plain.attributes is not None and streamed.attributes is not None
    assert json.loads(str(plain.attributes[semconv.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(str(plain.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "Be brief"}
    ]
    assert json.loads(str(plain.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": response.text}], "finish_reason": "stop"}
    ]
    assert [event.name for event in plain.events] == [semconv.EVENT_INFERENCE_DETAILS] * 2
    assert json.loads(str(streamed.attributes[semconv.GEN_AI_INPUT_MESSAGES])) == [
        {
            "role": "user",
            "parts": [{"type": "text", "content": PROMPT}, {"type": "text", "content": "second part"}],
        }
    ]
    streamed_text = "".join(chunk.text or "" for chunk in chunks)
    assert json.loads(str(streamed.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": streamed_text}], "finish_reason": "stop"}
    ]


def test_instrumenting_twice_gives_one_span_and_uninstrument_restores(
    otel: Otel, gemini: genai.Client
) -> None:
    from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor
    from google.genai.models import AsyncModels, Models

    names = ("_generate_content", "_generate_content_stream", "_embed_content")
    otel.uninstrument()
    originals = [vars(cls)[name] for cls in (Models, AsyncModels) for name in names]
    otel.instrument()
    GoogleGenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider)  # already on: no-op
    gemini.models.generate_content(model=MODEL, contents=PROMPT)
    assert len(otel.spans()) == 1
    otel.uninstrument()
    assert [vars(cls)[name] for cls in (Models, AsyncModels) for name in names] == originals
    gemini.models.generate_content(model=MODEL, contents=PROMPT)
    assert len(otel.spans()) == 1


APP = """
import sys
from google import genai
client = genai.Client(api_key="k", http_options={"base_url": sys.argv[1]})
client.models.generate_content(model="gemini-2.5-flash", contents="hi")
print("APP-DONE", flush=True)
"""


def test_opentelemetry_instrument_with_env_vars_only(tmp_path: Path, provider: FakeProvider) -> None:
    spans, _ = run_instrumented_app(tmp_path, APP, provider, OTEL_SERVICE_NAME="gemini-app")
    assert [console_summary(span) for span in spans] == [
        {
            "name": "generate_content gemini-2.5-flash",
            "kind": "SpanKind.CLIENT",
            "service": "gemini-app",
            "provider": "gcp.gemini",
            "input_tokens": message_tokens("hi"),
            "output_tokens": 16,
        }
    ]


def test_stream_whose_first_chunk_has_no_id_takes_it_from_the_usage_chunk() -> None:
    from genai_otel.instrumentation.google_genai._wrappers import GenerateAccumulator
    from google.genai import types

    def chunk(response_id: str | None, text: str, finish: str | None = None) -> types.GenerateContentResponse:
        return types.GenerateContentResponse(
            response_id=response_id,
            model_version="gemini-2.5-flash",
            candidates=[
                types.Candidate(
                    content=types.Content(role="model", parts=[types.Part(text=text)]), finish_reason=finish
                )
            ],
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=4, candidates_token_count=len(text.split())
            ),
        )

    accumulator = GenerateAccumulator(capture=False)
    accumulator.first(chunk(None, "one"))
    accumulator.add(chunk("resp-7", "one two", "STOP"))
    outcome = accumulator.outcome()
    assert (outcome.response_id, outcome.response_model) == ("resp-7", "gemini-2.5-flash")
    assert (outcome.input_tokens, outcome.output_tokens, outcome.finish_reasons) == (4, 2, ["stop"])
