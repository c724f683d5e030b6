"""OpenAI-shaped endpoints of the fake provider: chat completions, responses, embeddings, errors.

Token accounting follows OpenAI: `prompt_tokens` / `input_tokens` INCLUDE cached (and cache-write)
tokens, `completion_tokens` / `output_tokens` INCLUDE reasoning tokens.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any

from .core import (
    DEFAULT_OUTPUT_TOKENS,
    JSON,
    REASONING_TOKENS_PER_OUTPUT_TOKEN,
    CallContext,
    Chunk,
    FakeRequest,
    FakeResponse,
    RequestError,
    compact_json,
    count_tokens,
    example_from_schema,
    is_reasoning_model,
    make_text,
    message_tokens,
    split_pieces,
    sse_data,
    sse_event,
    text_of,
)

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
SYSTEM_FINGERPRINT = "fp_fake0000"
CONTEXT_WINDOW = 128000
CONTENT_FILTER_TOKENS = 4

# scenario -> (status, error type, error code, message, param)
_ERRORS: dict[str, tuple[int, str, str | None, str, str | None]] = {
    "rate_limit": (
        429,
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 1s.",
        None,
    ),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "{over} tokens. Please reduce the length of the messages.",
        "messages",
    ),
    "content_filter": (
        400,
        "invalid_request_error",
        "content_filter",
        "The response was filtered due to the prompt triggering the content management policy. "
        "Please modify your prompt and retry.",
        "prompt",
    ),
    "auth": (
        401,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake. You can find your API key in your account settings.",
        None,
    ),
    "server_error": (
        500,
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    "overloaded": (
        503,
        "server_error",
        None,
        "The engine is currently overloaded, please try again later.",
        None,
    ),
}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse(
        status=status, headers={**JSON_HEADERS, **(headers or {})}, body=compact_json(payload).encode()
    )


def error_response(
    status: int, message: str, type_: str, code: str | None = None, param: str | None = None
) -> FakeResponse:
    payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    headers = {"retry-after": "1", "x-ratelimit-remaining-requests": "0"} if status == 429 else {}
    return json_response(status, payload, headers)


def scenario_error(scenario: str | None, model: str) -> FakeResponse | None:
    if scenario not in _ERRORS:
        return None
    status, type_, code, template, param = _ERRORS[scenario]
    message = template.format(model=model, over=CONTEXT_WINDOW + 1000)
    return error_response(status, message, type_, code, param)


def request_error(error: RequestError) -> FakeResponse:
    return error_response(400, error.message, "invalid_request_error", None, error.param)


def not_found(path: str) -> FakeResponse:
    return error_response(404, f"Invalid URL (POST {path})", "invalid_request_error")


def _require(body: Any, key: str) -> Any:
    if not isinstance(body, dict) or body.get(key) in (None, "", []):
        raise RequestError(f"Missing required parameter: '{key}'.", key)
    return body[key]


def _usage_numbers(ctx: CallContext, prompt: int, visible: int, model: str) -> tuple[int, int, int, int, int]:
    """(input incl. cache, cache read, cache write, output incl. reasoning, reasoning)."""
    options = ctx.options
    reasoning = options.reasoning_tokens
    if reasoning is None:
        reasoning = REASONING_TOKENS_PER_OUTPUT_TOKEN * visible if is_reasoning_model(model) else 0
    read, write = options.cache_read_tokens, options.cache_write_tokens
    prompt += sum(tokens for _, tokens in options.input_media)
    return prompt + read + write, read, write, visible + reasoning, reasoning


# --- chat completions ---------------------------------------------------------------------------


def chat_last_user_text(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


@dataclass
class _Choice:
    index: int
    finish_reason: str
    tokens: int
    pieces: list[str] = field(default_factory=list)
    tool_call: JSON | None = None

    @property
    def content(self) -> str | None:
        return None if self.tool_call is not None else "".join(self.pieces)


def _chat_tool(body: JSON) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
        return next((t["function"] for t in tools if t["function"].get("name") == wanted), None)
    called = {
        call["function"].get("name")
        for message in body.get("messages") or []
        if isinstance(message, dict) and message.get("role") == "assistant"
        for call in message.get("tool_calls") or []
        if isinstance(call, dict) and isinstance(call.get("function"), dict)
    }
    # as a model does: each tool once, then an answer in text (an agent's loop ends)
    return next((t.get("function") or None for t in tools if t["function"].get("name") not in called), None)


def _json_schema_content(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return "{}"
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return compact_json(example_from_schema(schema))
    return None


def _plan_choices(body: JSON, ctx: CallContext) -> list[_Choice]:
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1 or n > 128:
        raise RequestError(f"Invalid 'n': expected an integer between 1 and 128, got {n!r}.", "n")
    options = ctx.options
    tool = _chat_tool(body)
    json_content = _json_schema_content(body.get("response_format"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    choices = []
    for index in range(n):
        if options.scenario == "content_filter_finish":
            choices.append(
                _Choice(index, "content_filter", CONTENT_FILTER_TOKENS, make_text(CONTENT_FILTER_TOKENS))
            )
        elif tool is not None:
            name = str(tool.get("name", "tool"))
            arguments = compact_json(example_from_schema(tool.get("parameters") or {}))
            tokens = options.output_tokens
            if tokens is None:
                tokens = count_tokens(name) + count_tokens(arguments)
            call = {
                "id": ctx.make_id("call_", f"tool{index}"),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            choices.append(_Choice(index, "tool_calls", tokens, split_pieces(arguments), call))
        elif json_content is not None:
            tokens = (
                options.output_tokens if options.output_tokens is not None else count_tokens(json_content)
            )
            choices.append(_Choice(index, "stop", tokens, split_pieces(json_content)))
        else:
            tokens = DEFAULT_OUTPUT_TOKENS if options.output_tokens is None else options.output_tokens
            finish = "stop"
            if isinstance(max_tokens, int) and tokens > max_tokens:
                tokens, finish = max_tokens, "length"
            choices.append(_Choice(index, finish, tokens, make_text(tokens, offset=index)))
    return choices


def _chat_usage(ctx: CallContext, prompt: int, visible: int, model: str) -> JSON:
    total_in, read, write, total_out, reasoning = _usage_numbers(ctx, prompt, visible, model)
    options = ctx.options
    audio_in, audio_out = options.media("input", "audio"), options.media("output", "audio")
    total_out += audio_out  # chat output is text or audio: other output media are ignored
    prompt_details: JSON = {"cached_tokens": read, "audio_tokens": audio_in}
    if write:
        prompt_details["cache_write_tokens"] = write
    completion_details: JSON = {
        "reasoning_tokens": reasoning,
        "audio_tokens": audio_out,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    if options.input_media or options.output_media:  # as audio-capable models: text and image too
        # video and document tokens are in the total only: no detail names them
        prompt_details["text_tokens"] = total_in - sum(tokens for _, tokens in options.input_media)
        prompt_details["image_tokens"] = options.media("input", "image")
        completion_details["text_tokens"] = total_out - audio_out
    return {
        "prompt_tokens": total_in,
        "completion_tokens": total_out,
        "total_tokens": total_in + total_out,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
    }


def chat_completions(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    body = request.body
    model = str(_require(body, "model"))
    messages = _require(body, "messages")
    if not isinstance(messages, list):
        raise RequestError("Invalid type for 'messages': expected an array.", "messages")
    prompt = sum(message_tokens(text_of(m)) for m in messages)
    choices = _plan_choices(body, ctx)
    usage = _chat_usage(ctx, prompt, sum(c.tokens for c in choices), model)
    head = {
        "id": ctx.make_id("chatcmpl-", "chat"),
        "created": int(ctx.now),
        "model": ctx.options.response_model or model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _chat_stream(head, choices, usage if include_usage else None)
    payload = {
        **head,
        "object": "chat.completion",
        "choices": [
            {
                "index": c.index,
                "message": {
                    "role": "assistant",
                    "content": c.content,
                    "refusal": None,
                    "annotations": [],
                    **({"tool_calls": [c.tool_call]} if c.tool_call else {}),
                },
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage,
    }
    return json_response(200, payload)


def _chat_stream(head: JSON, choices: list[_Choice], usage: JSON | None) -> FakeResponse:
    base = {**head, "object": "chat.completion.chunk"}
    if usage is not None:
        base["usage"] = None

    def chunk(index: int, delta: JSON, finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_data({**base, "choices": [choice]})

    chunks: list[bytes] = []
    for c in choices:
        if c.tool_call is not None:
            call, function = c.tool_call, c.tool_call["function"]
            opening = {"index": 0, "id": call["id"], "type": "function"}
            opening["function"] = {"name": function["name"], "arguments": ""}
            chunks.append(chunk(c.index, {"role": "assistant", "content": None, "tool_calls": [opening]}))
            for piece in c.pieces:
                chunks.append(
                    chunk(c.index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
        else:
            chunks.append(chunk(c.index, {"role": "assistant", "content": "", "refusal": None}))
            chunks.extend(chunk(c.index, {"content": piece}) for piece in c.pieces)
        chunks.append(chunk(c.index, {}, c.finish_reason))
    if usage is not None:
        chunks.append(sse_data({**base, "choices": [], "usage": usage}))
    chunks.append(b"data: [DONE]\n\n")
    return FakeResponse(status=200, headers=dict(SSE_HEADERS), chunks=[Chunk(data) for data in chunks])


# --- responses ------------------------------------------------------------------------------------


def responses_last_user_text(body: Any) -> str:
    items = body.get("input") if isinstance(body, dict) else None
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return text_of(item.get("content"))
    return ""


def _responses_prompt_tokens(body: JSON) -> int:
    instructions = body.get("instructions")
    tokens = message_tokens(instructions) if isinstance(instructions, str) and instructions else 0
    items = body.get("input")
    if isinstance(items, str):
        return tokens + message_tokens(items)
    if not isinstance(items, list):
        raise RequestError("Invalid type for 'input': expected a string or an array.", "input")
    return tokens + sum(message_tokens(text_of(item)) for item in items)


def _responses_tool(body: JSON) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    items = body.get("input")
    called = {
        item.get("name")
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and item.get("type") == "function_call"
    }
    # as a model does: each tool once, then an answer in text (an agent's loop ends)
    return next((t for t in tools if t.get("name") not in called), None)


def _responses_json_content(body: JSON) -> str | None:
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return "{}"
    if fmt.get("type") == "json_schema":
        return compact_json(example_from_schema(fmt.get("schema") or {}))
    return None


def responses(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    body = request.body
    model = str(_require(body, "model"))
    _require(body, "input")
    prompt = _responses_prompt_tokens(body)
    options = ctx.options
    status, incomplete = "completed", None
    filtered = options.scenario == "content_filter_finish"
    tool = None if filtered else _responses_tool(body)
    json_content = _responses_json_content(body)
    max_tokens = body.get("max_output_tokens")
    message_id = ctx.make_id("msg_", "message", 48)
    if filtered:
        pieces = make_text(CONTENT_FILTER_TOKENS)
        visible, status, incomplete = CONTENT_FILTER_TOKENS, "incomplete", {"reason": "content_filter"}
    elif tool is not None:
        name = str(tool.get("name", "tool"))
        arguments = compact_json(example_from_schema(tool.get("parameters") or {}))
        pieces = split_pieces(arguments)
        default_visible = count_tokens(name) + count_tokens(arguments)
        visible = default_visible if options.output_tokens is None else options.output_tokens
    elif json_content is not None:
        pieces = split_pieces(json_content)
        visible = options.output_tokens if options.output_tokens is not None else count_tokens(json_content)
    else:
        visible = DEFAULT_OUTPUT_TOKENS if options.output_tokens is None else options.output_tokens
        if isinstance(max_tokens, int) and visible > max_tokens:
            visible, status, incomplete = max_tokens, "incomplete", {"reason": "max_output_tokens"}
        pieces = make_text(visible)
    total_in, read, write, total_out, reasoning = _usage_numbers(ctx, prompt, visible, model)
    usage = {
        "input_tokens": total_in,
        "input_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "output_tokens": total_out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total_in + total_out,
    }
    output: list[JSON] = []
    if reasoning:
        output.append({"id": ctx.make_id("rs_", "reasoning", 48), "type": "reasoning", "summary": []})
    if tool is not None:
        output.append(
            {
                "id": ctx.make_id("fc_", "function", 48),
                "type": "function_call",
                "status": "completed",
                "call_id": ctx.make_id("call_", "tool0"),
                "name": str(tool.get("name", "tool")),
                "arguments": "".join(pieces),
            }
        )
    else:
        text_part = {"type": "output_text", "text": "".join(pieces), "annotations": [], "logprobs": []}
        output.append(
            {
                "id": message_id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [text_part],
            }
        )
    response = {
        "id": ctx.make_id("resp_", "response", 48),
        "object": "response",
        "created_at": int(ctx.now),
        "status": status,
        "completed_at": int(ctx.now) if status == "completed" else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": max_tokens,
        "model": options.response_model or model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }
    if body.get("stream"):
        return _responses_stream(response, pieces)
    return json_response(200, response)


def _responses_stream(final: JSON, pieces: list[str]) -> FakeResponse:
    events: list[tuple[str, JSON]] = []

    def emit(type_: str, **fields: Any) -> None:
        events.append((type_, {"type": type_, "sequence_number": len(events), **fields}))

    pending = {**final, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    pending["incomplete_details"] = None
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    for output_index, item in enumerate(final["output"]):
        if item["type"] == "reasoning":
            emit("response.output_item.added", output_index=output_index, item=item)
            emit("response.output_item.done", output_index=output_index, item=item)
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in pieces:
                emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=output_index,
                    delta=piece,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=output_index,
                name=item["name"],
                arguments=item["arguments"],
            )
            emit("response.output_item.done", output_index=output_index, item=item)
        else:
            part = item["content"][0]
            where = {"item_id": item["id"], "output_index": output_index, "content_index": 0}
            emit(
                "response.output_item.added",
                output_index=output_index,
                item={**item, "status": "in_progress", "content": []},
            )
            emit("response.content_part.added", **where, part={**part, "text": ""})
            for piece in pieces:
                emit("response.output_text.delta", **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=part["text"], logprobs=[])
            emit("response.content_part.done", **where, part=part)
            emit("response.output_item.done", output_index=output_index, item=item)
    emit("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
    return FakeResponse(
        status=200,
        headers=dict(SSE_HEADERS),
        chunks=[Chunk(sse_event(type_, payload)) for type_, payload in events],
    )


# --- embeddings -----------------------------------------------------------------------------------


def embeddings_last_user_text(body: Any) -> str:
    value = body.get("input") if isinstance(body, dict) else None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], str):
        return value[-1]
    return ""


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [list(value)]
    if isinstance(value, list) and value and all(isinstance(v, str | list) for v in value):
        return list(value)
    raise RequestError("Invalid 'input': expected a string, an array of strings or of token arrays.", "input")


def embedding_vector(model: str, item: str | list[int], dimensions: int) -> list[float]:
    """Unit-length vector from SHA-256 of (model, input); values are exact float32 numbers."""
    key = f"{model}\x00{item if isinstance(item, str) else compact_json(item)}".encode()
    raw = []
    for i in range(dimensions):
        digest = hashlib.sha256(key + i.to_bytes(4, "big")).digest()
        raw.append(int.from_bytes(digest[:8], "big") / 2**63 - 1.0)
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def embeddings(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    body = request.body
    model = str(_require(body, "model"))
    inputs = _embedding_inputs(_require(body, "input"))
    dimensions = body.get("dimensions") or 8
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise RequestError(f"Invalid 'dimensions': expected 1..4096, got {dimensions!r}.", "dimensions")
    tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
    encoding = body.get("encoding_format") or "float"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(model, item, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    payload = {
        "object": "list",
        "data": data,
        "model": ctx.options.response_model or model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_response(200, payload)
