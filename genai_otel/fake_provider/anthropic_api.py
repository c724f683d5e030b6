"""Anthropic-shaped endpoint of the fake provider: `POST /v1/messages` and its errors.

Token accounting follows Anthropic: `input_tokens` EXCLUDES cache reads and cache writes, which are
reported separately; `output_tokens` includes thinking tokens.
"""

from __future__ import annotations

from typing import Any

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
    sse_event,
    text_of,
)

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
CONTEXT_WINDOW = 200000
REFUSAL_TOKENS = 4

# scenario -> (status, error type, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "Please try again later.",
    ),
    "context_length": (
        400,
        "invalid_request_error",
        f"prompt is too long: {CONTEXT_WINDOW + 1000} tokens > {CONTEXT_WINDOW} maximum",
    ),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "server_error": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
}


def error_response(status: int, type_: str, message: str, ctx: CallContext | None = None) -> FakeResponse:
    request_id = ctx.make_id("req_", "request") if ctx is not None else "req_fake"
    payload = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    headers = {**JSON_HEADERS, "request-id": request_id}
    if status == 429:
        headers.update({"retry-after": "1", "anthropic-ratelimit-requests-remaining": "0"})
    return FakeResponse(status=status, headers=headers, body=compact_json(payload).encode())


def scenario_error(scenario: str | None, ctx: CallContext) -> FakeResponse | None:
    if scenario not in _ERRORS:
        return None
    status, type_, message = _ERRORS[scenario]
    return error_response(status, type_, message, ctx)


def request_error(error: RequestError) -> FakeResponse:
    return error_response(400, "invalid_request_error", error.message)


def not_found(path: str) -> FakeResponse:
    return error_response(404, "not_found_error", f"Not found: {path}")


def last_user_text(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _require(body: Any, key: str) -> Any:
    if not isinstance(body, dict) or body.get(key) in (None, "", []):
        raise RequestError(f"{key}: Field required", key)
    return body[key]


def _chosen_tool(body: JSON) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    choice = body.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    return tools[0]


def messages(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    body = request.body
    message, pieces = build_message(body, ctx, str(_require(body, "model")))
    headers = {"request-id": ctx.make_id("req_", "request")}
    if body.get("stream"):
        return FakeResponse(
            status=200,
            headers={**SSE_HEADERS, **headers},
            chunks=[Chunk(sse_event(name, payload)) for name, payload in stream_events(message, pieces)],
        )
    return FakeResponse(status=200, headers={**JSON_HEADERS, **headers}, body=compact_json(message).encode())


def build_message(body: JSON, ctx: CallContext, model: str) -> tuple[JSON, list[str]]:
    """The whole answer to a Messages request (also Bedrock's Anthropic body), and the pieces a
    stream sends it in."""
    max_tokens = _require(body, "max_tokens")
    conversation = _require(body, "messages")
    if not isinstance(conversation, list) or not isinstance(max_tokens, int):
        raise RequestError("messages must be an array and max_tokens an integer")
    system = text_of(body.get("system"))
    prompt = (message_tokens(system) if system else 0) + sum(message_tokens(text_of(m)) for m in conversation)
    options = ctx.options
    tool = None if options.scenario in ("content_filter", "content_filter_finish") else _chosen_tool(body)
    stop_details = None
    block: JSON
    if tool is not None:
        arguments = example_from_schema(tool.get("input_schema") or {})
        pieces = split_pieces(compact_json(arguments))
        visible = options.output_tokens
        if visible is None:
            visible = count_tokens(str(tool["name"])) + count_tokens(compact_json(arguments))
        block = {
            "type": "tool_use",
            "id": ctx.make_id("toolu_", "tool"),
            "name": tool["name"],
            "input": arguments,
        }
        stop_reason = "tool_use"
    else:
        if options.scenario in ("content_filter", "content_filter_finish"):
            visible, stop_reason = REFUSAL_TOKENS, "refusal"
            stop_details = {"type": "refusal", "category": None, "explanation": None}
        else:
            visible = DEFAULT_OUTPUT_TOKENS if options.output_tokens is None else options.output_tokens
            stop_reason = "end_turn"
            if visible > max_tokens:
                visible, stop_reason = max_tokens, "max_tokens"
        pieces = make_text(visible)
        block = {"type": "text", "text": "".join(pieces)}
    thinking = options.reasoning_tokens or 0
    usage: JSON = {
        "input_tokens": prompt + sum(tokens for _, tokens in options.input_media),
        "cache_creation_input_tokens": options.cache_write_tokens,
        "cache_read_input_tokens": options.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": options.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": visible + thinking,
        "service_tier": "standard",
    }
    if thinking:
        usage["output_tokens_details"] = {"thinking_tokens": thinking}
    message = {
        "id": ctx.make_id("msg_", "message"),
        "type": "message",
        "role": "assistant",
        "model": options.response_model or model,
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if stop_details is not None:
        message["stop_details"] = stop_details
    return message, pieces


def stream_events(message: JSON, pieces: list[str]) -> list[tuple[str, JSON]]:
    """The (event name, payload) sequence of a streamed answer."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    started = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    started.pop("stop_details", None)
    block = message["content"][0]
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
    delta: JSON = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    if "stop_details" in message:
        delta["stop_details"] = message["stop_details"]
    final_usage = {
        key: value for key, value in usage.items() if key not in ("cache_creation", "service_tier")
    }
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": started}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": opening}),
        ("ping", {"type": "ping"}),
        *(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
