"""Bedrock Runtime through botocore: the hook on new clients, request attributes, outcomes, streams.

How boto3 is hooked: ``botocore.session.Session.create_client`` (the one public door every boto3
and botocore client comes through) is wrapped; when the new client is a ``bedrock-runtime`` one,
its ``_make_api_call`` is replaced *on that instance* by a `TracedApiCall`. Every operation of the
client (``converse``, ``invoke_model``, ...) goes through ``_make_api_call(operation_name,
params)``, so one object sees all four traced operations with the caller's own parameters, and
hands the others straight through. Clients of every other AWS service are never touched (no cost
on S3 or DynamoDB calls), and nothing is registered on botocore's event system, whose handlers
are per session, would run for every event of every operation, and could not keep the span
current across the whole call (retries included).

Parameters and answers are read as ``dict`` s, not ``Mapping`` s: botocore accepts only dicts for
structures and maps (its parameter validation rejects anything else) and parses answers into
dicts; ``isinstance(x, Mapping)`` runs ``ABCMeta.__instancecheck__``, a Python-level call, for
every object checked (dicts and None included), a dozen times per call.
"""

from __future__ import annotations

import io
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from genai_otel.instrumentation._core import (
    Call,
    Outcome,
    Telemetry,
    number,
    record_input_content,
    start_call,
    strings,
)
from genai_otel.instrumentation._stream import TAIL, SyncStreamProxy
from genai_otel.instrumentation.bedrock import _bodies

from genai_otel import semconv
from genai_otel.semconv import Operation

logger = logging.getLogger(__name__)

_CHAT = Operation.CHAT.value
SERVICE = "bedrock-runtime"
# The mark a traced client's `_make_api_call` carries (instrumenting twice wraps once).
_MARK = "_genai_otel_wrapper"
_CONVERSE_NUMBERS = {
    "maxTokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "topP": semconv.GEN_AI_REQUEST_TOP_P,
}


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------
def _begin(
    traced: TracedApiCall, operation: str, params: Mapping[str, Any], attributes: dict[str, Any]
) -> Call:
    model = params.get("modelId")
    guardrail = params.get("guardrailConfig") or params.get("guardrailIdentifier")
    if isinstance(guardrail, dict):
        guardrail = guardrail.get("guardrailIdentifier")
    if isinstance(guardrail, str) and guardrail:
        attributes[semconv.AWS_BEDROCK_GUARDRAIL_ID] = guardrail
    return start_call(
        traced.telemetry,
        operation,
        model=model if isinstance(model, str) and model else None,
        server_address=traced.server_address,
        server_port=traced.server_port,
        request_attributes=attributes,
    )


def _start_converse(traced: TracedApiCall, params: Mapping[str, Any], stream: bool) -> Call:
    attributes: dict[str, Any] = {semconv.GEN_AI_REQUEST_STREAM: stream}
    config = params.get("inferenceConfig")
    if isinstance(config, dict):
        for key, attribute in _CONVERSE_NUMBERS.items():
            value = config.get(key)
            if value is not None and number(value) is not None:
                attributes[attribute] = value
        if stop := strings(config.get("stopSequences")):
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    additional = params.get("additionalModelRequestFields")
    if isinstance(additional, dict):
        top_k = additional.get("top_k", additional.get("topK"))
        if top_k is not None and number(top_k) is not None:
            attributes[semconv.GEN_AI_REQUEST_TOP_K] = top_k
    call = _begin(traced, _CHAT, params, attributes)
    telemetry = traced.telemetry
    if telemetry.captures_content:
        record_input_content(
            telemetry,
            call.span,
            _bodies.converse_messages(params.get("messages")),
            _bodies.converse_parts(params.get("system")),
        )
    return call


def _start_invoke(traced: TracedApiCall, params: Mapping[str, Any], stream: bool) -> Call:
    family = _bodies.family_of(params.get("modelId"))
    body = _bodies.parse_json(params.get("body"))
    attributes: dict[str, Any] = {semconv.GEN_AI_REQUEST_STREAM: stream}
    operation = _bodies.request_attributes(family, body, attributes)
    call = _begin(traced, operation, params, attributes)
    telemetry = traced.telemetry
    if telemetry.captures_content:
        messages, system = _bodies.input_content(family, body)
        record_input_content(telemetry, call.span, messages, system)
    return call


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
def _request_id(result: Any) -> dict[str, Any] | None:
    metadata = result.get("ResponseMetadata") if isinstance(result, dict) else None
    request_id = metadata.get("RequestId") if isinstance(metadata, dict) else None
    return {semconv.AWS_REQUEST_ID: request_id} if isinstance(request_id, str) and request_id else None


def _apply_converse_usage(outcome: Outcome, usage: Any) -> None:
    if isinstance(usage, dict):
        _bodies.apply_split_usage(
            outcome,
            usage.get("inputTokens"),
            usage.get("outputTokens"),
            usage.get("cacheReadInputTokens"),
            usage.get("cacheWriteInputTokens"),
            present="cacheReadInputTokens" in usage or "cacheWriteInputTokens" in usage,
        )


def _finish_converse(call: Call, result: Any, params: Mapping[str, Any]) -> Any:
    outcome = Outcome()
    stop = result.get("stopReason")
    if isinstance(stop, str):
        outcome.finish_reasons = [stop]
        outcome.refused = stop in _bodies.FILTERED
    _apply_converse_usage(outcome, result.get("usage"))
    output = result.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    _bodies.read_converse_message(outcome, message, stop, call.telemetry.captures_content)
    outcome.extra = _request_id(result)
    call.end(outcome)
    return result


def _finish_converse_stream(call: Call, result: Any, params: Mapping[str, Any]) -> Any:
    accumulator = ConverseStreamAccumulator(call.telemetry.captures_content, _request_id(result))
    # No tools, no capture: `messageStop` and `metadata` (the last two events) tell all.
    tail = 0 if call.telemetry.captures_content or params.get("toolConfig") else TAIL
    result["stream"] = SyncStreamProxy(result["stream"], call, accumulator, tail)
    return result


def _finish_invoke(call: Call, result: Any, params: Mapping[str, Any]) -> Any:
    """Reads the answer's body (botocore hands a one-shot stream) and puts the same bytes back,
    in a fresh StreamingBody, for the application; a failure reading it fails the call."""
    from botocore.response import StreamingBody

    family = _bodies.family_of(params.get("modelId"))
    body = result.get("body")
    outcome = None
    if family is not None and body is not None:
        try:
            data = body.read()
        except BaseException as error:
            call.end(None, error)
            raise
        result["body"] = StreamingBody(io.BytesIO(data), len(data))
        outcome = _bodies.response_outcome(family, _bodies.parse_json(data), call.telemetry.captures_content)
    outcome = outcome or Outcome()
    metadata = result.get("ResponseMetadata")
    _bodies.apply_header_usage(outcome, metadata.get("HTTPHeaders") if isinstance(metadata, dict) else None)
    request_id = _request_id(result)
    if request_id:
        outcome.extra = {**(outcome.extra or {}), **request_id}
    call.end(outcome)
    return result


def _finish_invoke_stream(call: Call, result: Any, params: Mapping[str, Any]) -> Any:
    family = _bodies.family_of(params.get("modelId"))
    accumulator = InvokeStreamAccumulator(family, call.telemetry.captures_content, _request_id(result))
    result["body"] = SyncStreamProxy(result["body"], call, accumulator)
    return result


# --------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------
class ConverseStreamAccumulator:
    """ConverseStream events: tool uses, the stop reason and the metadata event's usage."""

    __slots__ = ("_capture", "_outcome", "_parts", "_stop", "_usage")

    def __init__(self, capture: bool, extra: dict[str, Any] | None) -> None:
        self._outcome = Outcome()
        self._outcome.extra = extra
        self._capture = capture
        self._parts: dict[int, dict[str, Any]] = {}
        self._stop: str | None = None
        self._usage: Any = None

    def first(self, event: Any) -> None:
        self.add(event)

    def add(self, event: Any) -> None:
        delta = event.get("contentBlockDelta")
        if delta is not None:
            if self._capture:
                self._add_delta(delta)
            return
        start = event.get("contentBlockStart")
        if start is not None:
            use = (start.get("start") or {}).get("toolUse")
            if use is not None:
                outcome = self._outcome
                if outcome.tool_call_ids is None:
                    outcome.tool_call_ids, outcome.tool_call_names = [], []
                outcome.tool_call_names.append(str(use.get("name", "")))
                outcome.tool_call_ids.append(str(use.get("toolUseId", "")))
                if self._capture:
                    self._parts[start.get("contentBlockIndex", 0)] = {
                        "type": "tool_call",
                        "id": use.get("toolUseId"),
                        "name": use.get("name"),
                        "arguments": "",
                    }
            return
        stop = event.get("messageStop")
        if stop is not None:
            self._stop = stop.get("stopReason")
            return
        metadata = event.get("metadata")
        if metadata is not None:
            self._usage = metadata.get("usage")

    def _add_delta(self, delta: Mapping[str, Any]) -> None:
        index = delta.get("contentBlockIndex", 0)
        piece = delta.get("delta") or {}
        part = self._parts.get(index)
        if "text" in piece:
            if part is None:
                part = self._parts[index] = {"type": "text", "content": ""}
            part["content"] += piece["text"]
        elif "toolUse" in piece and part is not None:
            part["arguments"] += piece["toolUse"].get("input", "")

    def outcome(self) -> Outcome:
        outcome = self._outcome
        if self._stop is not None:
            outcome.finish_reasons = [self._stop]
            outcome.refused = self._stop in _bodies.FILTERED
        _apply_converse_usage(outcome, self._usage)
        if self._capture:
            parts = [self._parts[index] for index in sorted(self._parts)]
            message: dict[str, Any] = {"role": "assistant", "parts": parts}
            if self._stop is not None:
                message["finish_reason"] = self._stop
            outcome.output_messages = [message]
        return outcome


# Chunks of an InvokeModelWithResponseStream answer worth decoding (without content capture), by
# family: the ones that can carry usage, a stop reason or a tool call. Every stream's last chunk
# carries Bedrock's `amazon-bedrock-invocationMetrics`.
_METRICS_MARK = b"amazon-bedrock-invocationMetrics"
_INTERESTING: dict[str | None, tuple[bytes, ...]] = {
    _bodies.ANTHROPIC: (b"message_start", b"message_delta", b"content_block_start", _METRICS_MARK),
    _bodies.NOVA: (b"contentBlockStart", b"messageStop", b"metadata", _METRICS_MARK),
    _bodies.META: (b'prompt_token_count":', _METRICS_MARK),
    _bodies.TITAN_TEXT: (b'inputTextTokenCount":', _METRICS_MARK),
}


class InvokeStreamAccumulator:
    """InvokeModelWithResponseStream chunks: the model's own stream events, as JSON in `bytes`."""

    __slots__ = ("_capture", "_family", "_interesting", "_metrics", "_outcome", "_seen", "_texts")

    def __init__(self, family: str | None, capture: bool, extra: dict[str, Any] | None) -> None:
        self._family = family
        self._capture = capture
        self._outcome = Outcome()
        self._outcome.extra = extra
        self._interesting = _INTERESTING.get(family, (_METRICS_MARK,))
        self._metrics: Any = None
        self._seen = 0
        self._texts: list[str] = []

    def first(self, event: Any) -> None:
        self.add(event)

    def add(self, event: Any) -> None:
        chunk = event.get("chunk")
        data = chunk.get("bytes") if chunk is not None else None
        if not data:
            return
        self._seen += 1
        if not self._capture and self._seen > 1 and not any(mark in data for mark in self._interesting):
            return
        payload = _bodies.parse_json(data)
        if not isinstance(payload, dict):
            return
        metrics = payload.get("amazon-bedrock-invocationMetrics")
        if metrics is not None:
            self._metrics = metrics
        family = self._family
        if family == _bodies.ANTHROPIC:
            self._anthropic(payload)
        elif family == _bodies.NOVA:
            self._nova(payload)
        elif family == _bodies.META:
            self._plain(payload, "generation", "prompt_token_count", "stop_reason")
        elif family == _bodies.TITAN_TEXT:
            self._plain(payload, "outputText", "inputTextTokenCount", "completionReason")

    def _anthropic(self, payload: Mapping[str, Any]) -> None:
        outcome = self._outcome
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message") or {}
            outcome.response_id = message.get("id")
            outcome.response_model = message.get("model")
            _bodies.apply_anthropic_usage(outcome, message.get("usage"))
        elif kind == "message_delta":
            stop = (payload.get("delta") or {}).get("stop_reason")
            if isinstance(stop, str):
                outcome.finish_reasons = [stop]
                outcome.refused = stop in _bodies.FILTERED
            usage = payload.get("usage") or {}
            if isinstance(usage.get("output_tokens"), int):
                outcome.output_tokens = usage["output_tokens"]
        elif kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                self._tool(str(block.get("name", "")), str(block.get("id", "")))
        elif kind == "content_block_delta" and self._capture:
            text = (payload.get("delta") or {}).get("text")
            if isinstance(text, str):
                self._texts.append(text)

    def _nova(self, payload: Mapping[str, Any]) -> None:
        if (delta := payload.get("contentBlockDelta")) is not None:
            text = (delta.get("delta") or {}).get("text")
            if self._capture and isinstance(text, str):
                self._texts.append(text)
        elif (start := payload.get("contentBlockStart")) is not None:
            use = (start.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                self._tool(str(use.get("name", "")), str(use.get("toolUseId", "")))
        elif (stop := payload.get("messageStop")) is not None:
            reason = stop.get("stopReason")
            if isinstance(reason, str):
                self._outcome.finish_reasons = [reason]
                self._outcome.refused = reason in _bodies.FILTERED
        elif (metadata := payload.get("metadata")) is not None:
            _bodies.apply_nova_usage(self._outcome, metadata.get("usage"))

    def _plain(self, payload: Mapping[str, Any], text_key: str, prompt_key: str, stop_key: str) -> None:
        outcome = self._outcome
        if isinstance(prompt := payload.get(prompt_key), int):
            outcome.input_tokens = prompt
        if isinstance(stop := payload.get(stop_key), str):
            outcome.finish_reasons = [stop]
            outcome.refused = stop in _bodies.FILTERED
        if self._capture and isinstance(text := payload.get(text_key), str):
            self._texts.append(text)

    def _tool(self, name: str, tool_id: str) -> None:
        outcome = self._outcome
        if outcome.tool_call_ids is None:
            outcome.tool_call_ids, outcome.tool_call_names = [], []
        outcome.tool_call_names.append(name)
        outcome.tool_call_ids.append(tool_id)

    def outcome(self) -> Outcome:
        outcome = self._outcome
        metrics = self._metrics
        if isinstance(metrics, dict):  # Bedrock's own count: what a family's events lack
            if outcome.input_tokens is None and isinstance(metrics.get("inputTokenCount"), int):
                outcome.input_tokens = metrics["inputTokenCount"]
            if outcome.output_tokens is None and isinstance(metrics.get("outputTokenCount"), int):
                outcome.output_tokens = metrics["outputTokenCount"]
        if self._capture:
            message: dict[str, Any] = {
                "role": "assistant",
                "parts": [{"type": "text", "content": "".join(self._texts)}],
            }
            if outcome.finish_reasons:
                message["finish_reason"] = outcome.finish_reasons[0]
            outcome.output_messages = [message]
        return outcome


# --------------------------------------------------------------------------------------
# The per-client hook
# --------------------------------------------------------------------------------------
Starter = Callable[["TracedApiCall", Mapping[str, Any]], Call]
Finisher = Callable[[Call, Any, Mapping[str, Any]], Any]
OPERATIONS: dict[str, tuple[Starter, Finisher]] = {
    "Converse": (lambda t, p: _start_converse(t, p, False), _finish_converse),
    "ConverseStream": (lambda t, p: _start_converse(t, p, True), _finish_converse_stream),
    "InvokeModel": (lambda t, p: _start_invoke(t, p, False), _finish_invoke),
    "InvokeModelWithResponseStream": (lambda t, p: _start_invoke(t, p, True), _finish_invoke_stream),
}


class TracedApiCall:
    """A `bedrock-runtime` client's `_make_api_call`, traced for the four inference operations."""

    __slots__ = ("__weakref__", "original", "server_address", "server_port", "telemetry")
    _genai_otel_wrapper = True

    def __init__(self, original: Callable[[str, Any], Any], telemetry: Telemetry, endpoint_url: Any) -> None:
        self.original = original
        self.telemetry = telemetry
        self.server_address, self.server_port = _server(endpoint_url)

    def __call__(self, operation_name: str, api_params: Any) -> Any:
        handlers = OPERATIONS.get(operation_name)
        if handlers is None:
            return self.original(operation_name, api_params)
        start, finish = handlers
        try:
            call = start(self, api_params)
        except Exception:
            logger.debug("could not start a GenAI span", exc_info=True)
            return self.original(operation_name, api_params)
        try:
            result = self.original(operation_name, api_params)
        except BaseException as error:
            call.detach()
            call.end(None, error)
            raise
        call.detach()
        try:
            return finish(call, result, api_params)
        except Exception:
            if not call.open:  # the SDK failed reading the answer: the call ended with that error
                raise
            logger.debug("could not record a GenAI response", exc_info=True)
            call.end(None)
            return result


def _server(endpoint_url: Any) -> tuple[str | None, int | None]:
    if not isinstance(endpoint_url, str):
        return None, None
    try:
        parts = urlsplit(endpoint_url)
        return parts.hostname or None, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, None


# Clients traced so far, so `uninstrument()` can restore them.
_CLIENTS: weakref.WeakSet[Any] = weakref.WeakSet()


def trace_client(client: Any, telemetry: Telemetry) -> None:
    """Traces a new client if it is a `bedrock-runtime` one (and not traced already)."""
    meta = getattr(client, "meta", None)
    model = getattr(meta, "service_model", None)
    if getattr(model, "service_name", None) != SERVICE:
        return
    if getattr(vars(client).get("_make_api_call"), _MARK, False):
        return
    client._make_api_call = TracedApiCall(
        client._make_api_call, telemetry, getattr(meta, "endpoint_url", None)
    )
    _CLIENTS.add(client)


def untrace_clients() -> None:
    for client in list(_CLIENTS):
        if getattr(vars(client).get("_make_api_call"), _MARK, False):
            del client._make_api_call
    _CLIENTS.clear()


def client_creator(telemetry: Telemetry) -> Callable[..., Any]:
    """A wrapt wrapper of `Session.create_client`: the new client, traced if it is Bedrock Runtime's."""

    def create_client(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        client = wrapped(*args, **kwargs)
        try:
            trace_client(client, telemetry)
        except Exception:
            logger.debug("could not trace a bedrock-runtime client", exc_info=True)
        return client

    return create_client
