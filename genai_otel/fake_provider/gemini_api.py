"""Gemini-shaped endpoints of the fake provider (the Gemini Developer API the `google-genai` SDK calls).

`POST /{version}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
`:batchEmbedContents`, with Google's error shape (`{"error": {"code", "message", "status"}}`);
also Vertex AI's express-mode paths (`/v1beta1/publishers/google/models/{model}:...`, where
`embed_content` calls `:embedContent`).

Token accounting follows Gemini: `promptTokenCount` INCLUDES the cached part of the prompt
(`cachedContentTokenCount`); `candidatesTokenCount` EXCLUDES thinking, which is reported apart as
`thoughtsTokenCount`; `totalTokenCount` is their sum. Gemini reports no cache writes.
"""

from __future__ import annotations

import re
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
    sse_data,
)
from .openai_api import embedding_vector

JSON_HEADERS = {"content-type": "application/json; charset=UTF-8"}
SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
CONTEXT_WINDOW = 1048576
EMBEDDING_DEFAULT_DIMENSIONS = 8

# /v1beta/models/gemini-2.5-flash:generateContent (also v1 and v1alpha, and tunedModels/...), and
# Vertex AI's express mode (an API key, no project): /v1beta1/publishers/google/models/...
PATH = re.compile(
    r"^/(?:v1|v1beta|v1alpha|v1beta1)/(?P<model>(?:models|tunedModels|publishers/[^/]+/models)/[^/:]+)"
    r":(?P<method>generateContent|streamGenerateContent|batchEmbedContents|embedContent)$"
)

# scenario -> (HTTP status, Google status, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "context_length": (
        400,
        "INVALID_ARGUMENT",
        f"The input token count ({CONTEXT_WINDOW + 1000}) exceeds the maximum number of tokens "
        f"allowed ({CONTEXT_WINDOW}).",
    ),
    "auth": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "server_error": (500, "INTERNAL", "Internal error encountered."),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def error_response(status: int, google_status: str, message: str) -> FakeResponse:
    payload: JSON = {"error": {"code": status, "message": message, "status": google_status}}
    if message.startswith("API key not valid"):
        payload["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ]
    return FakeResponse(status=status, headers=dict(JSON_HEADERS), body=compact_json(payload).encode())


def scenario_error(scenario: str | None, ctx: CallContext, model: str) -> FakeResponse | None:
    if scenario not in _ERRORS:
        return None
    return error_response(*_ERRORS[scenario])


def request_error(error: RequestError) -> FakeResponse:
    return error_response(400, "INVALID_ARGUMENT", error.message)


def not_found(path: str) -> FakeResponse:
    return error_response(404, "NOT_FOUND", f"Not found: {path}")


# --- reading requests ----------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """All text in a Gemini `Content`: text parts, function-call arguments and function responses."""
    if not isinstance(content, dict):
        return ""
    pieces: list[str] = []
    for part in content.get("parts") or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            pieces.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict) and call.get("args") is not None:
            pieces.append(compact_json(call["args"]))
        response = part.get("functionResponse")
        if isinstance(response, dict) and response.get("response") is not None:
            pieces.append(compact_json(response["response"]))
    return "".join(pieces)


def last_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("requests"), list):  # batchEmbedContents: the last input
        requests = [r for r in body["requests"] if isinstance(r, dict)]
        return content_text(requests[-1].get("content")) if requests else ""
    contents = body.get("contents")
    for content in reversed(contents if isinstance(contents, list) else []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return content_text(content)
    return ""


def _contents(body: Any) -> list[JSON]:
    contents = body.get("contents") if isinstance(body, dict) else None
    if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
        raise RequestError("* GenerateContentRequest.contents: contents is not specified", "contents")
    return contents


def _answers_a_function(contents: list[JSON]) -> bool:
    """The last turn sends function results: the model answers them in text (so the SDK's
    automatic function calling ends after one round)."""
    parts = contents[-1].get("parts") or []
    return any(isinstance(part, dict) and "functionResponse" in part for part in parts)


def _chosen_function(body: JSON) -> JSON | None:
    """The function a model "calls": per toolConfig (mode NONE: none; allowed names: the first
    allowed), else the first declared function; none when the last turn holds function results."""
    if _answers_a_function(body["contents"]):
        return None
    declarations = [
        declaration
        for tool in body.get("tools") or []
        if isinstance(tool, dict)
        for declaration in tool.get("functionDeclarations") or []
        if isinstance(declaration, dict) and declaration.get("name")
    ]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if not declarations or config.get("mode") == "NONE":
        return None
    allowed = config.get("allowedFunctionNames") or []
    if allowed:
        return next((d for d in declarations if d["name"] in allowed), None)
    return declarations[0]


# --- answers -------------------------------------------------------------------------------------


def generate_content(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    match = PATH.match(request.path.split("?", 1)[0])
    assert match is not None  # routed here by PATH
    model = match.group("model").rsplit("/", 1)[1]
    body = request.body
    contents = _contents(body)
    system = content_text(body.get("systemInstruction"))
    options = ctx.options
    prompt = (message_tokens(system) if system else 0) + sum(
        message_tokens(content_text(c)) for c in contents
    )
    prompt += options.cache_read_tokens
    text_prompt = prompt
    prompt += sum(tokens for _, tokens in options.input_media)
    config = body.get("generationConfig") or {}
    max_tokens = config.get("maxOutputTokens")
    refused = options.scenario in ("content_filter", "content_filter_finish")
    function = None if refused else _chosen_function(body)
    finish = "STOP"
    pieces: list[str] = []
    part: JSON | None
    visible: int | None
    if refused:
        visible, part = 0, None
    elif function is not None:
        # the SDK sends a Python function's schema as `parameters_json_schema`, snake case
        schema: Any = next(
            (
                function[key]
                for key in ("parametersJsonSchema", "parameters_json_schema", "parameters")
                if function.get(key)
            ),
            {},
        )
        arguments = example_from_schema(schema)
        visible = options.output_tokens
        if visible is None:
            visible = count_tokens(str(function["name"])) + count_tokens(compact_json(arguments or {}))
        part = {"functionCall": {"name": function["name"], "args": arguments or {}}}
    else:
        visible = DEFAULT_OUTPUT_TOKENS if options.output_tokens is None else options.output_tokens
        if isinstance(max_tokens, int) and visible > max_tokens:
            visible, finish = max_tokens, "MAX_TOKENS"
        pieces = make_text(visible)
        part = {"text": "".join(pieces)}
    assert visible is not None
    thoughts = options.reasoning_tokens or 0
    # Gemini outputs text, images and audio: other output media are ignored
    media_out = [(m, n) for m, n in options.output_media if m in ("image", "audio")]
    text_visible = visible
    visible += sum(tokens for _, tokens in media_out)
    usage: JSON = {"promptTokenCount": prompt}
    if visible:
        usage["candidatesTokenCount"] = visible
    usage["totalTokenCount"] = prompt + visible + thoughts
    if options.cache_read_tokens:
        usage["cachedContentTokenCount"] = options.cache_read_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": options.cache_read_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    usage["promptTokensDetails"] = _modality_counts([("text", text_prompt), *options.input_media])
    if visible:
        usage["candidatesTokensDetails"] = _modality_counts([("text", text_visible), *media_out])
    head: JSON = {
        "modelVersion": options.response_model or model,
        "responseId": ctx.make_id("", "response", 22),
    }
    candidate: JSON = {"index": 0, "finishReason": finish}
    if part is not None:
        candidate["content"] = {"parts": [part], "role": "model"}
    answer: JSON
    if options.scenario == "content_filter":  # the prompt itself is blocked: no candidate at all
        answer = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage, **head}
    else:
        if options.scenario == "content_filter_finish":
            candidate["finishReason"] = "SAFETY"
        answer = {"candidates": [candidate], "usageMetadata": usage, **head}
    if match.group("method") == "streamGenerateContent":
        return _stream(answer, pieces, prompt)
    return FakeResponse(status=200, headers=dict(JSON_HEADERS), body=compact_json(answer).encode())


def _modality_counts(pairs: list[tuple[str, int]]) -> list[JSON]:
    """Gemini's ModalityTokenCount list: one entry per modality with tokens (TEXT always)."""
    counts: dict[str, int] = {}
    for modality, tokens in pairs:
        if tokens or modality == "text":
            counts[modality.upper()] = counts.get(modality.upper(), 0) + tokens
    return [{"modality": modality, "tokenCount": tokens} for modality, tokens in counts.items()]


def _stream(answer: JSON, pieces: list[str], prompt: int) -> FakeResponse:
    """One chunk per word of text; every chunk but the last carries only the prompt's usage, the
    last one the finish reason and the whole usage. A function call or a refusal is one chunk."""
    if len(pieces) <= 1:
        return FakeResponse(status=200, headers=dict(SSE_HEADERS), chunks=[Chunk(sse_data(answer))])
    head = {key: answer[key] for key in ("modelVersion", "responseId")}
    early_usage = {"promptTokenCount": prompt, "totalTokenCount": prompt}
    chunks = []
    for index, piece in enumerate(pieces):
        candidate: JSON = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        usage = early_usage
        if index == len(pieces) - 1:
            candidate["finishReason"] = answer["candidates"][0]["finishReason"]
            usage = answer["usageMetadata"]
        chunks.append(Chunk(sse_data({"candidates": [candidate], "usageMetadata": usage, **head})))
    return FakeResponse(status=200, headers=dict(SSE_HEADERS), chunks=chunks)


def batch_embed_contents(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    match = PATH.match(request.path.split("?", 1)[0])
    assert match is not None
    model = match.group("model")
    requests = request.body.get("requests")
    if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
        raise RequestError("* BatchEmbedContentsRequest.requests: requests is not specified", "requests")
    embeddings = []
    tokens = 0
    for item in requests:
        text = content_text(item.get("content"))
        dimensions = item.get("outputDimensionality") or EMBEDDING_DEFAULT_DIMENSIONS
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            raise RequestError(f"outputDimensionality must be 1..4096, got {dimensions!r}")
        tokens += count_tokens(text)
        embeddings.append({"values": embedding_vector(model, text, dimensions)})
    payload = {
        "embeddings": embeddings,
        "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
    }
    return FakeResponse(status=200, headers=dict(JSON_HEADERS), body=compact_json(payload).encode())


def embed_content(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    """Vertex AI's one-content form: `{"content": ...}` in, `{"embedding": {"values"}}` out."""
    match = PATH.match(request.path.split("?", 1)[0])
    assert match is not None
    content = request.body.get("content")
    if not isinstance(content, dict):
        raise RequestError("content is not specified", "content")
    dimensions = request.body.get("outputDimensionality") or EMBEDDING_DEFAULT_DIMENSIONS
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise RequestError(f"outputDimensionality must be 1..4096, got {dimensions!r}")
    text = content_text(content)
    tokens = count_tokens(text)
    payload = {
        "embedding": {"values": embedding_vector(match.group("model"), text, dimensions)},
        "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
    }
    return FakeResponse(status=200, headers=dict(JSON_HEADERS), body=compact_json(payload).encode())


def handle(request: FakeRequest, ctx: CallContext) -> FakeResponse:
    match = PATH.match(request.path.split("?", 1)[0])
    method = match.group("method") if match is not None else ""
    if method == "batchEmbedContents":
        return batch_embed_contents(request, ctx)
    if method == "embedContent":
        return embed_content(request, ctx)
    return generate_content(request, ctx)
