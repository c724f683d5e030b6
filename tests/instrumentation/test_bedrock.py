"""Bedrock Runtime instrumentation: the real boto3 over real HTTP to the fake provider (SigV4, fake keys)."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EventStreamError
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel, console_summary, port_of, run_instrumented_app

from genai_otel import semconv
from genai_otel.fake_provider import FakeProvider, message_tokens
from genai_otel.fake_provider.bedrock_client import add_headers, bedrock_client

PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
PROMPT = "Say hello to the tests"
PROMPT_TOKENS = message_tokens(PROMPT)  # 4 + ceil(22 / 4) = 10
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]


def make_client(provider: FakeProvider) -> Any:
    return bedrock_client(provider.base_url)


@pytest.fixture
def bedrock(otel: Otel, provider: FakeProvider) -> Iterator[Any]:
    client = make_client(provider)  # created after instrument(): traced
    yield client
    client.close()


def send_headers(client: Any, **headers: Any) -> None:
    """Sends `x-fake-*` headers (cache_read_tokens=30 sends x-fake-cache-read-tokens)."""
    add_headers(client, {f"x-fake-{name.replace('_', '-')}": str(value) for name, value in headers.items()})


def attributes_of(otel: Otel) -> dict[str, Any]:
    (span,) = otel.spans()
    return dict(span.attributes or {})


def test_converse_span_normalises_cache_usage(otel: Otel, bedrock: Any, provider: FakeProvider) -> None:
    send_headers(bedrock, cache_read_tokens=30, cache_write_tokens=20, output_tokens=7)
    response = bedrock.converse(
        modelId=PROFILE,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 64, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        additionalModelRequestFields={"top_k": 40},
    )
    # Bedrock's own accounting: inputTokens excludes the cache reads and writes
    assert response["usage"] == {
        "inputTokens": PROMPT_TOKENS,
        "outputTokens": 7,
        "totalTokens": PROMPT_TOKENS + 7 + 50,
        "cacheReadInputTokens": 30,
        "cacheWriteInputTokens": 20,
    }
    (span,) = otel.spans()
    assert span.name == f"chat {PROFILE}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == semconv.GENAI_OTEL_SCOPE_BEDROCK
    assert dict(span.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        semconv.GEN_AI_REQUEST_MODEL: PROFILE,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
        semconv.GEN_AI_REQUEST_STREAM: False,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        semconv.GEN_AI_REQUEST_TOP_P: 0.9,
        semconv.GEN_AI_REQUEST_TOP_K: 40,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("end_turn",),
        semconv.GEN_AI_USAGE_INPUT_TOKENS: PROMPT_TOKENS + 50,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 30,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 20,
        semconv.AWS_REQUEST_ID: response["ResponseMetadata"]["RequestId"],
    }
    tokens = {
        attrs[semconv.GEN_AI_TOKEN_TYPE]: (p.count, p.sum)
        for attrs, p in otel.points(semconv.METRIC_CLIENT_TOKEN_USAGE)
    }
    assert tokens == {"input": (1, PROMPT_TOKENS + 50), "output": (1, 7)}
    ((duration_attributes, duration),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert duration.count == 1
    assert duration_attributes == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        semconv.GEN_AI_REQUEST_MODEL: PROFILE,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: port_of(provider),
    }


def test_converse_tool_call_and_guardrail(otel: Otel, bedrock: Any) -> None:
    tool = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}
    response = bedrock.converse(
        modelId=PROFILE,
        messages=MESSAGES,
        toolConfig={"tools": [tool]},
        guardrailConfig={"guardrailIdentifier": "sgi5gkybzqak", "guardrailVersion": "1"},
    )
    (block,) = response["output"]["message"]["content"]
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] == (block["toolUse"]["toolUseId"],)
    assert attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] == "sgi5gkybzqak"


def test_converse_stream_exhausted_keeps_usage_and_time_to_first_chunk(otel: Otel, bedrock: Any) -> None:
    send_headers(bedrock, cache_read_tokens=4)
    response = bedrock.converse_stream(modelId="amazon.nova-lite-v1:0", messages=MESSAGES)
    events = list(response["stream"])
    assert len([e for e in events if "contentBlockDelta" in e]) == 16  # one word per event
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS + 4
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert attributes[semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 0
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 16
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[semconv.AWS_REQUEST_ID] == response["ResponseMetadata"]["RequestId"]
    ttfc = attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    ((_, point),) = otel.points(semconv.METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(ttfc)


def test_converse_stream_tool_use(otel: Otel, bedrock: Any) -> None:
    tool = {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}
    events = list(
        bedrock.converse_stream(modelId=PROFILE, messages=MESSAGES, toolConfig={"tools": [tool]})["stream"]
    )
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    attributes = attributes_of(otel)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES] == ("lookup",)
    assert attributes[semconv.GENAI_OTEL_RESPONSE_TOOL_CALL_IDS] == (start["start"]["toolUse"]["toolUseId"],)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)


def test_stream_left_early_ends_once_when_collected(otel: Otel, bedrock: Any) -> None:
    response = bedrock.converse_stream(modelId=PROFILE, messages=MESSAGES)
    for _event in response["stream"]:
        break
    assert otel.spans() == []  # still open: the application may come back to it
    del response, _event
    gc.collect()
    attributes = attributes_of(otel)
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes  # the metadata event never came
    assert semconv.ERROR_TYPE not in attributes


def test_stream_closed_ends_once(otel: Otel, bedrock: Any) -> None:
    stream = bedrock.converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"]
    next(iter(stream))
    stream.close()
    stream.close()
    assert len(otel.spans()) == 1
    del stream
    gc.collect()
    assert len(otel.spans()) == 1


def test_exception_event_mid_stream_fails_the_span_once(otel: Otel, bedrock: Any) -> None:
    send_headers(bedrock, scenario="stream_exception")
    stream = bedrock.converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"]
    with pytest.raises(EventStreamError) as raised:
        list(stream)
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == "EventStreamError"
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "provider_down"
    del stream
    gc.collect()
    assert len(otel.spans()) == 1


ANTHROPIC_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 100,
    "temperature": 0.2,
    "messages": [{"role": "user", "content": PROMPT}],
}


# (model id, body, operation, input tokens, output tokens, cache read, cache write, finish reason)
INVOKE_CASES = [
    pytest.param(
        (
            "eu.anthropic.claude-3-5-sonnet-20241022-v2:0",
            ANTHROPIC_BODY,
            "chat",
            PROMPT_TOKENS + 30 + 20,
            16,
            30,
            20,
            "end_turn",
        ),
        id="anthropic-messages",
    ),
    pytest.param(
        (
            "meta.llama3-1-8b-instruct-v1:0",
            {"prompt": PROMPT, "max_gen_len": 5},
            "text_completion",
            6,  # ceil(22 / 4): the prompt's tokens, no message overhead
            5,
            None,
            None,
            "length",
        ),
        id="meta-llama",
    ),
    pytest.param(
        (
            "us.amazon.nova-lite-v1:0",
            {"messages": MESSAGES, "inferenceConfig": {"max_new_tokens": 50}},
            "chat",
            PROMPT_TOKENS + 30 + 20,
            16,
            30,
            20,
            "end_turn",
        ),
        id="amazon-nova",
    ),
    pytest.param(
        (
            "amazon.titan-text-express-v1",
            {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 8}},
            "text_completion",
            6,
            8,
            None,
            None,
            "LENGTH",
        ),
        id="amazon-titan-text",
    ),
]


@pytest.mark.parametrize("case", INVOKE_CASES)
def test_invoke_model_reads_each_body_format(otel: Otel, bedrock: Any, case: tuple[Any, ...]) -> None:
    model, body, operation, input_tokens, output_tokens, read, write, reason = case
    send_headers(bedrock, cache_read_tokens=30, cache_write_tokens=20)
    response = bedrock.invoke_model(modelId=model, body=json.dumps(body))
    answer = json.loads(response["body"].read())  # the application still reads the whole body
    assert answer
    (span,) = otel.spans()
    attributes = dict(span.attributes or {})
    assert span.name == f"{operation} {model}"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == operation
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == model
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == input_tokens
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
    assert attributes.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == read
    assert attributes.get(semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) == write
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (reason,)
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is False


@pytest.mark.parametrize("case", INVOKE_CASES)
def test_invoke_model_with_response_stream_reads_each_format(
    otel: Otel, bedrock: Any, case: tuple[Any, ...]
) -> None:
    model, body, operation, input_tokens, output_tokens, read, write, reason = case
    send_headers(bedrock, cache_read_tokens=30, cache_write_tokens=20)
    response = bedrock.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    assert len(chunks) > 3
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == operation
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == input_tokens
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == output_tokens
    assert attributes.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) == read
    assert attributes.get(semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) == write
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (reason,)
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attributes


def test_invoke_anthropic_keeps_the_message_id_and_model(otel: Otel, bedrock: Any) -> None:
    response = bedrock.invoke_model(modelId=PROFILE, body=json.dumps(ANTHROPIC_BODY))
    answer = json.loads(response["body"].read())
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == answer["id"]
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == answer["model"] == "claude-3-5-sonnet-20241022"
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 100


def test_titan_embeddings(otel: Otel, bedrock: Any) -> None:
    response = bedrock.invoke_model(
        modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": PROMPT, "dimensions": 4})
    )
    assert len(json.loads(response["body"].read())["embedding"]) == 4
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 4


@pytest.mark.parametrize(
    ("scenario", "exception", "category"),
    [
        ("rate_limit", "ThrottlingException", "rate_limit"),
        ("context_length", "ValidationException", "context_window_exceeded"),
        ("auth", "ClientError", "auth"),  # UnrecognizedClientException is not in the service model
        ("server_error", "InternalServerException", "provider_down"),
        ("overloaded", "ServiceUnavailableException", "provider_down"),
    ],
)
def test_errors_are_classified_and_reraised_unchanged(
    otel: Otel, bedrock: Any, scenario: str, exception: str, category: str
) -> None:
    send_headers(bedrock, scenario=scenario)
    with pytest.raises(Exception) as raised:
        bedrock.converse(modelId=PROFILE, messages=MESSAGES)
    assert type(raised.value).__name__ == exception
    if exception != "ClientError":
        assert isinstance(raised.value, getattr(bedrock.exceptions, exception))
    (span,) = otel.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == exception
    assert span.attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == category
    ((attributes, _),) = otel.points(semconv.METRIC_CLIENT_OPERATION_DURATION)
    assert attributes[semconv.ERROR_TYPE] == exception


def test_throttled_stream_call_is_rate_limit(otel: Otel, bedrock: Any) -> None:
    send_headers(bedrock, scenario="rate_limit")
    with pytest.raises(bedrock.exceptions.ThrottlingException):
        bedrock.invoke_model_with_response_stream(modelId=PROFILE, body=json.dumps(ANTHROPIC_BODY))
    assert attributes_of(otel)[semconv.GENAI_OTEL_ERROR_CATEGORY] == "rate_limit"


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("content_filter", "guardrail_intervened"), ("content_filter_finish", "content_filtered")],
)
def test_filtered_answers_are_content_filter_errors(
    otel: Otel, bedrock: Any, scenario: str, reason: str
) -> None:
    send_headers(bedrock, scenario=scenario)
    response = bedrock.converse(modelId=PROFILE, messages=MESSAGES)
    assert response["stopReason"] == reason
    attributes = attributes_of(otel)
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == (reason,)
    assert attributes[semconv.GENAI_OTEL_ERROR_CATEGORY] == "content_filter"


def test_no_content_unless_opted_in(
    otel: Otel, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(provider)
    client.converse(modelId=PROFILE, messages=MESSAGES, system=[{"text": "Be brief"}])
    (plain,) = otel.spans()
    assert not {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    } & set(plain.attributes or {})
    assert PROMPT not in json.dumps(dict(plain.attributes or {}))
    otel.exporter.clear()

    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    otel.reinstrument()
    client = make_client(provider)  # the clients traced before uninstrument() are no longer
    response = client.converse(modelId=PROFILE, messages=MESSAGES, system=[{"text": "Be brief"}])
    events = list(client.converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"])
    captured, streamed = otel.spans()
    assert json.loads(str((captured.attributes or {})[semconv.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(str((captured.attributes or {})[semconv.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "Be brief"}
    ]
    text = response["output"]["message"]["content"][0]["text"]
    assert json.loads(str((captured.attributes or {})[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "end_turn"}
    ]
    streamed_text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert json.loads(str((streamed.attributes or {})[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": streamed_text}],
            "finish_reason": "end_turn",
        }
    ]


def test_instrumenting_twice_gives_one_span_and_uninstrument_restores(
    otel: Otel, provider: FakeProvider
) -> None:
    from genai_otel.instrumentation.bedrock import BedrockInstrumentor

    BedrockInstrumentor().instrument(tracer_provider=otel.tracer_provider)  # already on: no-op
    client = make_client(provider)
    other = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    assert "_make_api_call" in vars(client)
    assert "_make_api_call" not in vars(other)  # other services are never touched
    client.converse(modelId=PROFILE, messages=MESSAGES)
    assert len(otel.spans()) == 1
    otel.uninstrument()
    assert "_make_api_call" not in vars(client)
    client.converse(modelId=PROFILE, messages=MESSAGES)
    make_client(provider).converse(modelId=PROFILE, messages=MESSAGES)
    assert len(otel.spans()) == 1


APP = """
import sys, boto3
client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=sys.argv[1])
client.converse(
    modelId="us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    messages=[{"role": "user", "content": [{"text": "hi"}]}],
)
print("APP-DONE", flush=True)
"""


def test_opentelemetry_instrument_with_env_vars_only(tmp_path: Path, provider: FakeProvider) -> None:
    spans, _ = run_instrumented_app(
        tmp_path,
        APP,
        provider,
        ("OTEL_", "AWS_"),
        OTEL_SERVICE_NAME="bedrock-app",
        AWS_ACCESS_KEY_ID="AKIDFAKEFAKEFAKE",
        AWS_SECRET_ACCESS_KEY="fake-secret",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    assert [console_summary(span) for span in spans] == [
        {
            "name": "chat us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "kind": "SpanKind.CLIENT",
            "service": "bedrock-app",
            "provider": "aws.bedrock",
            "input_tokens": message_tokens("hi"),
            "output_tokens": 16,
        }
    ]
