"""Routing and failure scenarios: `respond()` is the pure entry point, `Responder` adds state.

`respond(request, defaults, now=..., seed=...)` maps one request to one `FakeResponse` and does
nothing else. `Responder` is what the HTTP server and the in-process transports share: it parses
bodies, records requests, and feeds `respond()` the clock and a unique id seed.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import anthropic_api, bedrock_api, gemini_api, openai_api
from .core import (
    MAX_HANG_SECONDS,
    CallContext,
    CallOptions,
    Chunk,
    Defaults,
    FakeRequest,
    FakeResponse,
    RequestError,
    read_options,
)

Handler = Callable[[FakeRequest, CallContext], FakeResponse]


@dataclass(frozen=True)
class _Route:
    handler: Handler
    last_user_text: Callable[[Any], str]
    scenario_error: Callable[[str | None, CallContext, str], FakeResponse | None]
    request_error: Callable[[RequestError], FakeResponse]
    malformed_chunk: bytes


def _openai_error(scenario: str | None, ctx: CallContext, model: str) -> FakeResponse | None:
    return openai_api.scenario_error(scenario, model)


def _anthropic_error(scenario: str | None, ctx: CallContext, model: str) -> FakeResponse | None:
    return anthropic_api.scenario_error(scenario, ctx)


_CHAT = _Route(
    openai_api.chat_completions,
    openai_api.chat_last_user_text,
    _openai_error,
    openai_api.request_error,
    b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"index":0,"delta":\n\n',
)
_RESPONSES = _Route(
    openai_api.responses,
    openai_api.responses_last_user_text,
    _openai_error,
    openai_api.request_error,
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":\n\n',
)
_EMBEDDINGS = _Route(
    openai_api.embeddings,
    openai_api.embeddings_last_user_text,
    _openai_error,
    openai_api.request_error,
    b"",
)
_MESSAGES = _Route(
    anthropic_api.messages,
    anthropic_api.last_user_text,
    _anthropic_error,
    anthropic_api.request_error,
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":\n\n',
)
_GEMINI = _Route(
    gemini_api.handle,
    gemini_api.last_user_text,
    gemini_api.scenario_error,
    gemini_api.request_error,
    b'data: {"candidates": [{"content": {"parts": [{"text": \n\n',
)
_BEDROCK = _Route(
    bedrock_api.handle,
    bedrock_api.last_user_text,
    bedrock_api.scenario_error,
    bedrock_api.request_error,
    bedrock_api.MALFORMED_FRAME,
)

# OpenAI clients are usually given a base URL ending in /v1; accept the bare paths too.
# Gemini paths carry the model (`/v1beta/models/{model}:{method}`): matched by gemini_api.PATH;
# so do Bedrock's (`/model/{modelId}/converse`): matched by bedrock_api.PATH.
ROUTES: dict[str, _Route] = {
    "/v1/chat/completions": _CHAT,
    "/chat/completions": _CHAT,
    "/v1/responses": _RESPONSES,
    "/responses": _RESPONSES,
    "/v1/embeddings": _EMBEDDINGS,
    "/embeddings": _EMBEDDINGS,
    "/v1/messages": _MESSAGES,
}
HEALTH_PATHS = ("/healthz", "/health")


def respond(request: FakeRequest, defaults: Defaults, *, now: float, seed: str) -> FakeResponse:
    """The whole behaviour of the fake provider for one request, without any I/O."""
    path = request.path.split("?", 1)[0]
    if path in HEALTH_PATHS and request.method in ("GET", "HEAD"):
        return openai_api.json_response(200, {"status": "ok"})
    route = ROUTES.get(path)
    if route is None and gemini_api.PATH.match(path):
        route = _GEMINI
    if route is None and bedrock_api.PATH.match(path):
        route = _BEDROCK
        refused = bedrock_api.signature_error(request.headers)
        if refused is not None:
            return refused
    if route is None:
        if path.startswith(("/v1beta/", "/v1alpha/", "/v1beta1/")):
            return gemini_api.not_found(path)
        if path.startswith("/model/"):
            return bedrock_api.not_found(path)
        is_anthropic = path.startswith("/v1/messages")
        return anthropic_api.not_found(path) if is_anthropic else openai_api.not_found(path)
    if request.method != "POST":
        return route.request_error(RequestError(f"Method {request.method} not allowed on {path}; use POST"))
    if not isinstance(request.body, dict):
        return route.request_error(RequestError("We could not parse the JSON body of your request."))
    try:
        options = read_options(request.headers, defaults, route.last_user_text(request.body))
    except RequestError as error:
        return route.request_error(error)
    ctx = CallContext(options=options, now=now, seed=seed)
    if options.scenario == "hang":
        return FakeResponse(status=200, hang_s=MAX_HANG_SECONDS)
    error_response = route.scenario_error(options.scenario, ctx, str(request.body.get("model", "")))
    if error_response is not None:
        return error_response
    try:
        response = route.handler(request, ctx)
    except RequestError as error:
        return route.request_error(error)
    return _apply_timing_and_faults(response, ctx, route)


def _apply_timing_and_faults(response: FakeResponse, ctx: CallContext, route: _Route) -> FakeResponse:
    options: CallOptions = ctx.options
    if response.chunks is None:
        response = replace(response, delay_s=options.latency_s)
        if options.scenario == "invalid_json":
            response = replace(response, body=response.body[: len(response.body) // 2])
        elif options.scenario == "stream_break":
            response = replace(response, drop_connection=True)
        return response
    chunks = response.chunks
    if options.scenario == "invalid_json":
        chunks = [chunks[0], Chunk(route.malformed_chunk)]
    elif options.scenario == "stream_break":
        chunks = chunks[: max(1, len(chunks) // 2)]
        response = replace(response, drop_connection=True)
    delays = ctx.stream_delays(len(chunks))
    return replace(response, chunks=[Chunk(c.data, d) for c, d in zip(chunks, delays, strict=True)])


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake provider received: header names lower case, body parsed from JSON."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


DEFAULT_MAX_RECORDED = 1000


class Responder:
    """Shared state of one fake provider: defaults, request log, unique id seeds.

    The request log keeps the last `max_recorded` requests (0 keeps none), so a long-running
    server or benchmark does not grow without bound.
    """

    def __init__(
        self,
        defaults: Defaults | None = None,
        clock: Callable[[], float] = time.time,
        max_recorded: int = DEFAULT_MAX_RECORDED,
    ) -> None:
        self.defaults = defaults or Defaults()
        self._clock = clock
        self._salt = os.urandom(6).hex()
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def handle(
        self, method: str, path: str, headers: Mapping[str, str] | Iterable[tuple[str, str]], raw_body: bytes
    ) -> FakeResponse:
        items = headers.items() if isinstance(headers, Mapping) else headers
        lowered = {name.lower(): value for name, value in items}
        body = _parse_json(raw_body)
        if self._requests.maxlen and path.split("?", 1)[0] not in HEALTH_PATHS:
            with self._lock:
                self._requests.append(RecordedRequest(method, path, lowered, body))
        request = FakeRequest(method=method, path=path, headers=lowered, body=body, raw_body=raw_body)
        seed = f"{self._salt}:{next(self._sequence)}"
        return respond(request, self.defaults, now=self._clock(), seed=seed)


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


__all__ = ["DEFAULT_MAX_RECORDED", "ROUTES", "RecordedRequest", "Responder", "respond"]
