"""OpenAI instrumentation: the real `openai` SDK over real HTTP to the fake provider."""

from __future__ import annotations

import gc
import json

import httpx2
import openai
import pytest
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel, port_of
from pydantic import BaseModel

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the tests"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def _base(
    provider: FakeProvider, stream: bool, operation: str = "chat", model: str = MODEL
) -> dict[str, object]:
    return {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
        semconv.GEN_AI_REQUEST_STREAM: stream,
    }


def test_chat_completion_span_has_every_conventional_attribute(
    otel: Otel, oai: openai.OpenAI, provider
) -> None:
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.2,
        max_completion_tokens=50,
        top_p=0.9,
        seed=7,
        stop=["END"],
        extra_headers={"x-fake-cache-read-tokens": "40", "x-fake-cache-write-tokens": "8"},
    )

    (span,) = otel.spans()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert dict(span.attributes or {}) == {
        **_base(provider, stream=False),
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 50,
        semconv.GEN_AI_REQUEST_TOP_P: 0.9,
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        semconv.GEN_AI_RESPONSE_ID: completion.id,
        semconv.GEN_AI_RESPONSE_MODEL: completion.model,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 8,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        semconv.OPENAI_RESPONSE_SERVICE_TIER: completion.service_tier,
        semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: completion.system_fingerprint,
    }
    # input tokens include the cached ones (OpenAI already reports them so)
    assert usage.prompt_tokens >= 48


def test_metrics_follow_the_conventions(otel: Otel, oai: openai.OpenAI, provider) -> None:
    completion = oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.usage is not None
    metric_base = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_MODEL: completion.model,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
    }
    tokens = otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE)
    assert sorted((attrs[semconv.GEN_AI_TOKEN_TYPE], p.sum) for attrs, p in tokens) == [
        ("input", completion.usage.prompt_tokens),
        ("output", completion.usage.completion_tokens),
    ]
    for attrs, point in tokens:
        assert {k: v for k, v in attrs.items() if k != semconv.GEN_AI_TOKEN_TYPE} == metric_base
        assert tuple(point.explicit_bounds) == semconv.TOKEN_USAGE_BUCKETS
    ((attrs, duration),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert attrs == metric_base
    assert duration.count == 1
    assert tuple(duration.explicit_bounds) == semconv.DURATION_BUCKETS
    assert otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK) == []


async def test_async_chat_completion(otel: Otel, aoai: openai.AsyncOpenAI, provider) -> None:
    completion = await aoai.chat.completions.create(model=MODEL, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.name == f"chat {MODEL}"
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == completion.id
    assert span.attributes[semconv.GEN_AI_REQUEST_STREAM] is False


def test_parse_is_traced(otel: Otel, oai: openai.OpenAI) -> None:
    class Greeting(BaseModel):
        text: str

    parsed = oai.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Greeting)
    (span,) = otel.spans()
    assert span.name == f"chat {MODEL}"
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_RESPONSE_ID] == parsed.id
    assert span.attributes[semconv.GEN_AI_OUTPUT_TYPE] == "json"


def test_streamed_chat_records_first_chunk_and_usage(otel: Otel, oai: openai.OpenAI, provider) -> None:
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-ttfc-ms": "30", "x-fake-reasoning-tokens": "5"},
    )
    assert isinstance(stream, openai.Stream)
    assert otel.spans() == []  # open until the stream ends
    chunks = list(stream)

    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    ttfc = attributes.pop(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    assert isinstance(ttfc, float) and 0.03 <= ttfc < 5
    usage = chunks[-1].usage
    assert usage is not None
    assert attributes == {
        **_base(provider, stream=True),
        semconv.GEN_AI_RESPONSE_ID: chunks[0].id,
        semconv.GEN_AI_RESPONSE_MODEL: chunks[0].model,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: usage.prompt_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: usage.completion_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 5,
        semconv.OPENAI_RESPONSE_SERVICE_TIER: chunks[0].service_tier,
        semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: chunks[0].system_fingerprint,
    }
    ((_, ttfc_point),) = otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
    assert ttfc_point.count == 1 and ttfc_point.sum == pytest.approx(ttfc)
    assert tuple(ttfc_point.explicit_bounds) == semconv.TIME_TO_FIRST_CHUNK_BUCKETS


def _one_ended_span(otel: Otel) -> dict[str, object]:
    (span,) = otel.spans()
    assert span.end_time is not None
    return dict(span.attributes or {})


def test_stream_broken_out_of_and_closed_ends_span_once(otel: Otel, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for chunk in stream:
        first_id = chunk.id
        break
    assert otel.spans() == []
    stream.close()
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == first_id  # partial knowledge kept
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes
    stream.close()
    assert len(otel.spans()) == 1


def test_stream_context_manager_exit_ends_span(otel: Otel, oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    attributes = _one_ended_span(otel)
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attributes


def test_abandoned_stream_ends_span_when_collected(otel: Otel, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True


def test_stream_failing_midway_records_error_and_reraises(otel: Otel, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers={"x-fake-scenario": "stream_break"}
    )
    with pytest.raises(Exception) as raised:
        for _ in stream:
            pass
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] in {"invalid_response", "provider_down"}


async def test_async_stream_exhausted_and_closed(otel: Otel, aoai: openai.AsyncOpenAI) -> None:
    stream = await aoai.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert isinstance(attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS], int)

    otel.exporter.clear()
    stream = await aoai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    async with stream:
        await stream.__anext__()
    _one_ended_span(otel)


def test_stream_helper_early_exit_ends_span(otel: Otel, oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        for _event in stream:
            break
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True


def test_tool_calls_recorded_without_arguments(otel: Otel, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    tool_calls = completion.choices[0].message.tool_calls
    assert tool_calls
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] == (tool_calls[0].id,)
    assert not any("messages" in key for key in attributes)


def test_streamed_tool_calls_recorded(otel: Otel, oai: openai.OpenAI) -> None:
    list(oai.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True))
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_responses_create_and_stream(otel: Otel, oai: openai.OpenAI, provider) -> None:
    response = oai.responses.create(model=MODEL, input="hello", max_output_tokens=40)
    attributes = _one_ended_span(otel)
    assert response.usage is not None
    assert attributes == {
        **_base(provider, stream=False),
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 40,
        semconv.GEN_AI_RESPONSE_ID: response.id,
        semconv.GEN_AI_RESPONSE_MODEL: response.model,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: response.usage.input_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: response.usage.output_tokens,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 0,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        semconv.OPENAI_RESPONSE_SERVICE_TIER: response.service_tier,
    }

    otel.exporter.clear()
    events = list(oai.responses.create(model=MODEL, input="hello", stream=True))
    attributes = _one_ended_span(otel)
    final = events[-1].response  # type: ignore[union-attr]
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == final.id
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attributes

    otel.exporter.clear()
    with oai.responses.stream(model=MODEL, input="hello") as stream:
        final_response = stream.get_final_response()
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == final_response.id


def test_embeddings(otel: Otel, oai: openai.OpenAI, provider) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    (span,) = otel.spans()
    assert span.name == "embeddings text-embedding-3-small"
    assert dict(span.attributes or {}) == {
        **_base(provider, stream=False, operation="embeddings", model="text-embedding-3-small"),
        semconv.GEN_AI_REQUEST_ENCODING_FORMATS: ("float",),
        semconv.GEN_AI_RESPONSE_MODEL: result.model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: result.usage.prompt_tokens,
        semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(result.data[0].embedding),
    }


def test_with_raw_response_is_traced_with_usage(otel: Otel, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    completion = raw.parse()
    attributes = _one_ended_span(otel)
    assert completion.usage is not None
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == completion.id
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    assert raw.parse() is completion  # the application's parse() is unaffected


@pytest.mark.parametrize(
    ("scenario", "exception", "category"),
    [
        ("rate_limit", openai.RateLimitError, "rate_limit"),
        ("context_length", openai.BadRequestError, "context_window_exceeded"),
        ("content_filter", openai.BadRequestError, "content_filter"),
        ("auth", openai.AuthenticationError, "auth"),
        ("server_error", openai.InternalServerError, "provider_down"),
        ("overloaded", openai.APIStatusError, "provider_down"),
    ],
)
def test_error_categories(
    otel: Otel, oai: openai.OpenAI, scenario: str, exception: type, category: str
) -> None:
    with pytest.raises(exception) as raised:
        oai.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": scenario}
        )
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category
    ((attrs, _),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert attrs[semconv.ERROR_TYPE] == type(raised.value).__qualname__
    assert otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE) == []


def test_timeout_and_invalid_json_categories(otel: Otel, provider) -> None:
    client = openai.OpenAI(base_url=provider.openai_base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": "hang"}
        )
    with pytest.raises(Exception) as raised:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": "invalid_json"}
        )
    timeout_span, invalid_span = otel.spans()
    assert timeout_span.attributes is not None and invalid_span.attributes is not None
    assert timeout_span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "timeout"
    assert timeout_span.attributes[semconv.ERROR_TYPE] == "APITimeoutError"
    assert invalid_span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "invalid_response"
    assert invalid_span.attributes[semconv.ERROR_TYPE] == type(raised.value).__qualname__


def test_content_filter_finish_is_an_error_of_that_category(otel: Otel, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL, messages=MESSAGES, extra_headers={"x-fake-scenario": "content_filter_finish"}
    )
    assert completion.choices[0].finish_reason == "content_filter"
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "content_filter"
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("content_filter",)


def test_connection_refused_is_provider_down(otel: Otel) -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.attributes is not None
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "provider_down"


def test_caller_exception_is_the_sdk_exception_object(otel: Otel, oai: openai.OpenAI, monkeypatch) -> None:
    seen: list[BaseException] = []
    original = httpx2.Client.send

    def failing_send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        error = httpx2.ConnectError("boom", request=request)
        seen.append(error)
        raise error

    monkeypatch.setattr(httpx2.Client, "send", failing_send)
    with pytest.raises(openai.APIConnectionError) as raised:
        oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    monkeypatch.setattr(httpx2.Client, "send", original)
    assert raised.value.__cause__ is seen[0]  # the SDK's own chain, untouched


def test_our_failure_never_reaches_the_caller(otel: Otel, oai: openai.OpenAI, monkeypatch) -> None:
    from genai_otel.instrumentation.openai import _wrappers

    def broken(*args: object) -> object:
        raise RuntimeError("instrumentation bug")

    monkeypatch.setattr(_wrappers, "_usage_chat", broken)
    completion = oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content
    (span,) = otel.spans()  # still ended, exactly once
    assert span.end_time is not None


def test_content_capture_is_off_by_default_then_span_and_event(
    otel: Otel, oai: openai.OpenAI, monkeypatch
) -> None:
    oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    (span,) = otel.spans()
    assert span.attributes is not None
    assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes and not span.events

    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_AND_EVENT")
    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH, "60")
    otel.reinstrument()
    otel.exporter.clear()
    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "be brief"}, *MESSAGES]
    )
    (span,) = otel.spans()
    assert span.attributes is not None
    input_messages = span.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    assert (
        input_messages
        == json.dumps([{"role": "user", "parts": [{"type": "text", "content": MESSAGES[0]["content"]}]}])[:60]
    )
    assert span.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] == '[{"type": "text", "content": "be brief"}]'
    output = str(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert len(output) == 60 and output.startswith('[{"role": "assistant"')
    assert str(completion.choices[0].message.content)[:5] in output or len(output) == 60
    assert [event.name for event in span.events] == [semconv.EVENT_INFERENCE_DETAILS] * 2


def test_event_only_capture_keeps_content_off_the_span(otel: Otel, oai: openai.OpenAI, monkeypatch) -> None:
    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "EVENT_ONLY")
    otel.reinstrument()
    oai.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    (span,) = otel.spans()
    assert span.attributes is not None
    assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes
    input_event, output_event = span.events
    assert input_event.attributes is not None and output_event.attributes is not None
    assert "Say hello" in str(input_event.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert '"arguments"' in str(output_event.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])  # tool arguments


def test_uninstrument_restores_the_sdk_exactly(otel: Otel, oai: openai.OpenAI) -> None:
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import Embeddings

    otel.uninstrument()
    originals = (
        Completions.__dict__["create"],
        AsyncCompletions.__dict__["parse"],
        Embeddings.__dict__["create"],
    )
    otel.instrument()
    assert Completions.__dict__["create"] is not originals[0]
    otel.uninstrument()
    assert (
        Completions.__dict__["create"],
        AsyncCompletions.__dict__["parse"],
        Embeddings.__dict__["create"],
    ) == originals
    assert all(type(function).__name__ == "function" for function in originals)
    oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert otel.spans() == []


def test_instrumenting_twice_never_doubles_spans(otel: Otel, oai: openai.OpenAI) -> None:
    OpenAIInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    OpenAIInstrumentor()._instrument(tracer_provider=otel.tracer_provider)  # even past the guard
    oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(otel.spans()) == 1


def test_global_providers_are_used_without_arguments(otel: Otel, oai: openai.OpenAI) -> None:
    otel.uninstrument()
    OpenAIInstrumentor().instrument()
    oai.chat.completions.create(model=MODEL, messages=MESSAGES)
    (span,) = otel.spans()  # the global tracer provider of this process has our exporter
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == semconv.GENAI_OTEL_SCOPE_OPENAI


def test_for_loop_over_a_streamed_create_keeps_the_span_open_to_the_end(
    otel: Otel, oai: openai.OpenAI
) -> None:
    received = []
    for chunk in oai.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        gc.collect()  # the stream object itself is gone; only the loop's iterator is left
        assert otel.spans() == []
        received.append(chunk)
    attributes = _one_ended_span(otel)
    assert received[-1].usage is not None
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == received[-1].usage.completion_tokens
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_streamed_content_captured_only_when_opted_in(otel: Otel, oai: openai.OpenAI, monkeypatch) -> None:
    list(oai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    (span,) = otel.spans()
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in (span.attributes or {}) and not span.events

    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    otel.reinstrument()
    otel.exporter.clear()
    chunks = list(oai.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text
    attributes = _one_ended_span(otel)
    assert json.loads(str(attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]

    otel.exporter.clear()
    chunks = list(oai.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True))
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or ()
        if call.function is not None
    )
    attributes = _one_ended_span(otel)
    ((message,),) = [json.loads(str(attributes[semconv.GEN_AI_OUTPUT_MESSAGES]))]
    assert message["parts"] == [{"type": "tool_call", "arguments": arguments}]
    assert message["finish_reason"] == "tool_calls"


def test_responses_stream_closed_early_keeps_the_id_of_its_first_event(
    otel: Otel, oai: openai.OpenAI
) -> None:
    stream = oai.responses.create(model=MODEL, input="hello", stream=True)
    first = next(iter(stream))
    assert first.type == "response.created"
    stream.close()
    attributes = _one_ended_span(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == first.response.id  # type: ignore[union-attr]
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes


def _chunk(chunk_id: str, model: str, choices: list[dict[str, object]], usage: object = None) -> object:
    from openai.types.chat import ChatCompletionChunk

    return ChatCompletionChunk.model_validate(
        {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": choices,
            "usage": usage,
        }
    )


def test_stream_whose_first_chunk_has_no_id_takes_it_from_the_finish_chunk() -> None:
    """Azure OpenAI's first chunk carries prompt-filter results with an empty id and model."""
    from genai_otel.instrumentation.openai._wrappers import ChatAccumulator

    accumulator = ChatAccumulator(capture=False)
    accumulator.first(_chunk("", "", []))
    accumulator.add(_chunk("chatcmpl-9", "gpt-4o-2024-08-06", [{"index": 0, "delta": {"content": "hi"}}]))
    accumulator.add(
        _chunk("chatcmpl-9", "gpt-4o-2024-08-06", [{"index": 0, "delta": {}, "finish_reason": "stop"}])
    )
    outcome = accumulator.outcome()
    assert (outcome.response_id, outcome.response_model) == ("chatcmpl-9", "gpt-4o-2024-08-06")
    assert outcome.finish_reasons == ["stop"]
