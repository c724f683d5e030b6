"""Bedrock-Runtime-shaped endpoints of the fake provider (what boto3's `bedrock-runtime` client calls).

`POST /model/{modelId}/converse`, `/converse-stream`, `/invoke` and `/invoke-with-response-stream`.
Streams use AWS's binary event-stream framing (`application/vnd.amazon.eventstream`: a prelude of
total and headers length with its CRC32, string headers, the JSON payload, the message's CRC32).
Errors have Bedrock's shape: the exception name in `x-amzn-ErrorType`, `{"message": ...}` in the body.

Requests must carry an `Authorization` header shaped like SigV4
(`AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/bedrock/aws4_request, SignedHeaders=..., Signature=HEX`)
plus `x-amz-date`, or a Bedrock API key (`Bearer ...`); the signature itself is not verified.

Token accounting follows Bedrock: Converse's `inputTokens` EXCLUDES cache reads and writes
(`cacheReadInputTokens`, `cacheWriteInputTokens`, reported apart; `totalTokens` includes them).
`invoke` bodies are each model family's own: Anthropic Messages (as `/v1/messages`, cache tokens
apart), Meta Llama (`prompt_token_count`, `generation_token_count`), Amazon Nova (as Converse, with
`cacheReadInputTokenCount` / `cacheWriteInputTokenCount`), Amazon Titan Text and Titan Embeddings.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from . import anthropic_api
from .core import (
    DEFAULT_OUTPUT_TOKENS,
    JSON,
    CallContext,
    Chunk,
    FakeRequest,
    FakeResponse,
    RequestError,
    compact_json,
    count_tokens,
    example_from_schema,
    make_text,
    message_tokens,
    split_pieces,
    text_of,
)
from .openai_api import embedding_vector

PATH = re.compile(
    r"^/model/(?P<model>[^/]+)/(?P<method>converse|converse-stream|invoke|invoke-with-response-stream)$"
)
JSON_HEADERS = {"content-type": "application/json"}
EVENT_STREAM_HEADERS = {"content-type": "application/vnd.amazon.eventstream"}
CONTEXT_WINDOW = 200000
EMBEDDING_DEFAULT_DIMENSIONS = 8
# Cross-region inference profiles put a geography before the model id: us.anthropic.claude-...
_PROFILE_PREFIX = re.compile(r"^(?:us|eu|apac|au|ca|jp|in|us-gov|global)\.")
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/[a-z0-9-]+/bedrock/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$"
)

# scenario -> (HTTP status, exception name, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "auth": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
    "server_error": (500, "InternalServerException", "The server encountered an internal error."),
    "overloaded": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def error_response(status: int, name: str, message: str, ctx: CallContext | None = None) -> FakeResponse:
    headers = {
        **JSON_HEADERS,
        "x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-requestid": _request_id(ctx),
    }
    return FakeResponse(status=status, headers=headers, body=compact_json({"message": message}).encode())


def scenario_error(scenario: str | None, ctx: CallContext, model: str) -> FakeResponse | None:
    if scenario not in _ERRORS:
        return None
    return error_response(*_ERRORS[scenario], ctx)


def request_error(error: RequestError) -> FakeResponse:
    return error_response(400, "ValidationException", error.message)


def not_found(path: str) -> FakeResponse:
    return error_response(404, "UnknownOperationException", f"Not found: {path}")


def signature_error(headers: Mapping[str, str]) -> FakeResponse | None:
    """403 unless the request is signed (SigV4's header shape, not its value) or has an API key."""
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer ") and len(authorization) > len("Bearer "):
        return None
    if _SIGV4.match(authorization) and headers.get("x-amz-date"):
        return None
    return error_response(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def _request_id(ctx: CallContext | None) -> str:
    if ctx is None:
        return "00000000-0000-0000-0000-000000000000"
    digest = ctx.make_id("", "request", 32)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


# --- the event-stream framing --------------------------------------------------------------------


def event_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC32), string headers, payload, CRC32."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", 7, len(value)) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def event(event_type: str, payload: JSON) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return event_frame(headers, compact_json(payload).encode())


def exception_event(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return event_frame(headers, compact_json({"message": message}).encode())


# A frame whose message checksum is wrong (the `invalid_json` scenario of streams).
MALFORMED_FRAME = event("chunk", {"bytes": ""})[:-4] + b"\0\0\0\0"


def _chunk(payload: JSON) -> bytes:
    """An invoke-with-response-stream event: the model's own JSON, base64 encoded, as `bytes`."""
    return event("chunk", {"bytes": base64.b64encode(compact_json(payload).encode()).decode()})


def _event_stream(frames: list[bytes], ctx: CallContext) -> FakeResponse:
    if ctx.options.scenario == "stream_exception":  # the model fails half way through
        frames = [*frames[: max(1, len(frames) // 2)], exception_event("modelStreamErrorException", "boom")]
    headers = {**EVENT_STREAM_HEADERS, "x-amzn-requestid": _request_id(ctx)}
    return FakeResponse(status=200, headers=headers, chunks=[Chunk(frame) for frame in frames])


def _json(payload: JSON, ctx: CallContext, extra: Mapping[str, str] | None = None) -> FakeResponse:
    headers = {**JSON_HEADERS, "x-amzn-requestid": _request_id(ctx), **(extra or {})}
    return FakeResponse(status=200, headers=headers, body=compact_json(payload).encode())


# --- reading requests ----------------------------------------------------------------------------


def base_model(model_id: str) -> str:
    """The foundation model behind an id: without an ARN's path or an inference profile's geography."""
    model = model_id.rsplit("/", 1)[-1]
    return _PROFILE_PREFIX.sub("", model, count=1)


def _converse_text(block: Any) -> str:
    """The text of a Converse content block: text, tool-use input, tool results."""
    if not isinstance(block, dict):
        return ""
    if isinstance(block.get("text"), str):
        return str(block["text"])
    if isinstance(block.get("toolUse"), dict):
        return compact_json(block["toolUse"].get("input", {}))
    result = block.get("toolResult")
    if isinstance(result, dict):
        return "".join(
            str(part["text"]) if isinstance(part, dict) and "text" in part else compact_json(part)
            for part in result.get("content") or []
        )
    return ""


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    return "".join(_converse_text(block) for block in content or []) if isinstance(content, list) else ""


def last_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("inputText", "prompt"):  # Titan, Meta
        if isinstance(body.get(key), str):
            return str(body[key])
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(
                _converse_text(block) or text_of(block) for block in content or [] if isinstance(block, dict)
            )
    return ""


def _prompt_tokens(body: JSON) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: Member must not be null")
    system = "".join(_converse_text(block) for block in body.get("system") or [])
    return (message_tokens(system) if system else 0) + sum(message_tokens(_message_text(m)) for m in messages)


# --- Converse --------------------------------------------------------------------------------------


def _chosen_tool(body: JSON) -> JSON | None:
    config = body.get("toolConfig") or {}
    tools = [t["toolSpec"] for t in config.get("tools") or [] if isinstance(t, dict) and "toolSpec" in t]
    if not tools:
        return None
    wanted = ((config.get("toolChoice") or {}).get("tool") or {}).get("name")
    if wanted:
        return next((tool for tool in tools if tool.get("name") == wanted), None)
    return tools[0]


def _usage(prompt: int, output: int, ctx: CallContext, read_key: str, write_key: str) -> JSON:
    options = ctx.options
    usage: JSON = {
        "inputTokens": prompt,
        "outputTokens": output,
        "totalTokens": prompt + output + options.cache_read_tokens + options.cache_write_tokens,
    }
    if options.cache_read_tokens or options.cache_write_tokens:
        usage[read_key] = options.cache_read_tokens
        usage[write_key] = options.cache_write_tokens
    return usage


def _answer(body: JSON, ctx: CallContext, max_tokens: Any) -> tuple[JSON, list[str], str, int]:
    """(content block, stream pieces, stop reason, output tokens) of a Converse-shaped answer
    (Converse, Nova); output tokens include `x-fake-reasoning-tokens`."""
    options = ctx.options
    reasoning = options.reasoning_tokens or 0
    tool = None if options.scenario in ("content_filter", "content_filter_finish") else _chosen_tool(body)
    if tool is not None:
        arguments = example_from_schema((tool.get("inputSchema") or {}).get("json") or {}) or {}
        use = {"toolUseId": ctx.make_id("tooluse_", "tool"), "name": tool["name"], "input": arguments}
        visible = options.output_tokens
        if visible is None:
            visible = count_tokens(str(tool["name"])) + count_tokens(compact_json(arguments))
        return {"toolUse": use}, split_pieces(compact_json(arguments)), "tool_use", visible + reasoning
    if options.scenario == "content_filter":  # a guardrail answers in the model's place
        text = "Sorry, I can't help with that."
        return {"text": text}, [text], "guardrail_intervened", count_tokens(text)
    visible = DEFAULT_OUTPUT_TOKENS if options.output_tokens is None else options.output_tokens
    stop = "content_filtered" if options.scenario == "content_filter_finish" else "end_turn"
    if isinstance(max_tokens, int) and visible > max_tokens:
        visible, stop = max_tokens, "max_tokens"
    pieces = make_text(visible)
    return {"text": "".join(pieces)}, pieces, stop, visible + reasoning


def converse(request: FakeRequest, ctx: CallContext, stream: bool) -> FakeResponse:
    body = request.body
    prompt = _prompt_tokens(body)
    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    block, pieces, stop, output = _answer(body, ctx, max_tokens)
    usage = _usage(prompt, output, ctx, "cacheReadInputTokens", "cacheWriteInputTokens")
    metrics = {"latencyMs": int(ctx.options.latency_s * 1000)}
    if not stream:
        answer = {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": stop,
            "usage": usage,
            "metrics": metrics,
        }
        return _json(answer, ctx)
    frames = [event("messageStart", {"role": "assistant"})]
    if "toolUse" in block:
        start = {"toolUse": {key: block["toolUse"][key] for key in ("toolUseId", "name")}}
        frames.append(event("contentBlockStart", {"start": start, "contentBlockIndex": 0}))
        deltas: list[JSON] = [{"toolUse": {"input": piece}} for piece in pieces]
    else:
        deltas = [{"text": piece} for piece in pieces]
    frames += [event("contentBlockDelta", {"delta": delta, "contentBlockIndex": 0}) for delta in deltas]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": stop}))
    frames.append(event("metadata", {"usage": usage, "metrics": metrics}))
    return _event_stream(frames, ctx)


# --- InvokeModel: each family's own body ------------------------------------------------------------


def _invocation_metrics(prompt: int, output: int) -> JSON:
    return {
        "inputTokenCount": prompt,
        "outputTokenCount": output,
        "invocationLatency": 1,
        "firstByteLatency": 1,
    }


def _token_headers(prompt: int, output: int) -> dict[str, str]:
    return {
        "x-amzn-bedrock-input-token-count": str(prompt),
        "x-amzn-bedrock-output-token-count": str(output),
        "x-amzn-bedrock-invocation-latency": "1",
    }


def _anthropic(body: JSON, ctx: CallContext, model: str, stream: bool) -> FakeResponse:
    if not isinstance(body.get("anthropic_version"), str):
        raise RequestError("Malformed input request: required key [anthropic_version] not found")
    message, pieces = anthropic_api.build_message(body, ctx, model)
    message["id"] = ctx.make_id("msg_bdrk_", "message")
    usage = message["usage"]
    prompt, output = usage["input_tokens"], usage["output_tokens"]
    if not stream:
        return _json(message, ctx, _token_headers(prompt, output))
    events = [
        payload for _, payload in anthropic_api.stream_events(message, pieces) if payload["type"] != "ping"
    ]
    events[-1] = {**events[-1], "amazon-bedrock-invocationMetrics": _invocation_metrics(prompt, output)}
    return _event_stream([_chunk(payload) for payload in events], ctx)


def _generated(ctx: CallContext, max_tokens: Any) -> tuple[list[str], bool]:
    """(pieces, cut by the token limit) of a plain-text answer."""
    visible = DEFAULT_OUTPUT_TOKENS if ctx.options.output_tokens is None else ctx.options.output_tokens
    if isinstance(max_tokens, int) and visible > max_tokens:
        return make_text(max_tokens), True
    return make_text(visible), False


def _meta(body: JSON, ctx: CallContext, stream: bool) -> FakeResponse:
    prompt_text = body.get("prompt")
    if not isinstance(prompt_text, str):
        raise RequestError("Malformed input request: required key [prompt] not found")
    prompt = count_tokens(prompt_text)
    pieces, cut = _generated(ctx, body.get("max_gen_len"))
    stop = "length" if cut else "stop"
    if not stream:
        answer = {
            "generation": "".join(pieces),
            "prompt_token_count": prompt,
            "generation_token_count": len(pieces),
            "stop_reason": stop,
        }
        return _json(answer, ctx, _token_headers(prompt, len(pieces)))
    chunks: list[JSON] = [
        {
            "generation": piece,
            "prompt_token_count": prompt if index == 0 else None,
            "generation_token_count": index + 1,
            "stop_reason": stop if index == len(pieces) - 1 else None,
        }
        for index, piece in enumerate(pieces)
    ]
    chunks[-1]["amazon-bedrock-invocationMetrics"] = _invocation_metrics(prompt, len(pieces))
    return _event_stream([_chunk(chunk) for chunk in chunks], ctx)


def _nova(body: JSON, ctx: CallContext, stream: bool) -> FakeResponse:
    prompt = _prompt_tokens(body)
    config = body.get("inferenceConfig") or {}
    block, pieces, stop, output = _answer(body, ctx, config.get("maxTokens", config.get("max_new_tokens")))
    usage = _usage(prompt, output, ctx, "cacheReadInputTokenCount", "cacheWriteInputTokenCount")
    if not stream:
        answer = {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": stop,
            "usage": usage,
        }
        return _json(answer, ctx, _token_headers(prompt, output))
    chunks: list[JSON] = [{"messageStart": {"role": "assistant"}}]
    if "toolUse" in block:
        start = {"toolUse": {key: block["toolUse"][key] for key in ("toolUseId", "name")}}
        chunks.append({"contentBlockStart": {"start": start, "contentBlockIndex": 0}})
        deltas: list[JSON] = [{"toolUse": {"input": piece}} for piece in pieces]
    else:
        deltas = [{"text": piece} for piece in pieces]
    chunks += [{"contentBlockDelta": {"delta": delta, "contentBlockIndex": 0}} for delta in deltas]
    chunks += [{"contentBlockStop": {"contentBlockIndex": 0}}, {"messageStop": {"stopReason": stop}}]
    chunks.append(
        {
            "metadata": {"usage": usage},
            "amazon-bedrock-invocationMetrics": _invocation_metrics(prompt, output),
        }
    )
    return _event_stream([_chunk(chunk) for chunk in chunks], ctx)


def _titan_text(body: JSON, ctx: CallContext, stream: bool) -> FakeResponse:
    text = body.get("inputText")
    if not isinstance(text, str):
        raise RequestError("Malformed input request: required key [inputText] not found")
    prompt = count_tokens(text)
    pieces, cut = _generated(ctx, (body.get("textGenerationConfig") or {}).get("maxTokenCount"))
    reason = "LENGTH" if cut else "FINISH"
    if ctx.options.scenario in ("content_filter", "content_filter_finish"):
        reason = "CONTENT_FILTERED"
    if not stream:
        result = {"tokenCount": len(pieces), "outputText": "".join(pieces), "completionReason": reason}
        answer = {"inputTextTokenCount": prompt, "results": [result]}
        return _json(answer, ctx, _token_headers(prompt, len(pieces)))
    chunks: list[JSON] = [
        {
            "outputText": piece,
            "index": 0,
            "totalOutputTextTokenCount": index + 1,
            "completionReason": reason if index == len(pieces) - 1 else None,
            "inputTextTokenCount": prompt if index == 0 else None,
        }
        for index, piece in enumerate(pieces)
    ]
    chunks[-1]["amazon-bedrock-invocationMetrics"] = _invocation_metrics(prompt, len(pieces))
    return _event_stream([_chunk(chunk) for chunk in chunks], ctx)


def _titan_embed(body: JSON, ctx: CallContext, model: str) -> FakeResponse:
    text = body.get("inputText")
    if not isinstance(text, str):
        raise RequestError("Malformed input request: required key [inputText] not found")
    dimensions = body.get("dimensions") or EMBEDDING_DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise RequestError(f"dimensions must be 1..4096, got {dimensions!r}")
    tokens = count_tokens(text)
    answer = {"embedding": embedding_vector(model, text, dimensions), "inputTextTokenCount": tokens}
    return _json(answer, ctx, _token_headers(tokens, 0))


def invoke(request: FakeRequest, ctx: CallContext, model_id: str, stream: bool) -> FakeResponse:
    model = base_model(model_id)
    body = request.body
    if model.startswith("anthropic."):
        return _anthropic(body, ctx, model.split(".", 1)[1].rsplit("-v", 1)[0], stream)
    if model.startswith("meta."):
        return _meta(body, ctx, stream)
    if model.startswith("amazon.nova"):
        return _nova(body, ctx, stream)
    if model.startswith("amazon.titan-text"):
        return _titan_text(body, ctx, stream)
    if model.startswith("amazon.titan-embed") and not stream:
        return _titan_embed(body, ctx, model)
    raise RequestError(f"The provided model identifier is invalid: {model_id}")


def handle(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    match = PATH.match(request.path.split("?", 1)[0])
    assert match is not None  # routed here by PATH
    model_id, method = unquote(match.group("model")), match.group("method")
    if method in ("converse", "converse-stream"):
        return converse(request, ctx, stream=method == "converse-stream")
    return invoke(request, ctx, model_id, stream=method == "invoke-with-response-stream")
