"""Anthropic: request attributes, message outcomes, stream accumulation, native-span handover.

Anthropic reports ``input_tokens`` WITHOUT cache reads and writes; the conventions (and
every genai-otel consumer) want them included, so the outcome adds them back.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from genai_otel.instrumentation._core import (
    Call,
    Finisher,
    Outcome,
    Telemetry,
    async_wrapper,
    classify_exception,
    get,
    http_response_of,
    number,
    record_input_content,
    server_of,
    start_call,
    strings,
    sync_wrapper,
    text_part,
)
from genai_otel.instrumentation._stream import TAIL, AsyncStreamProxy, SyncStreamProxy

from genai_otel import semconv
from genai_otel.semconv import ErrorCategory, Operation

logger = logging.getLogger(__name__)

_CHAT = Operation.CHAT.value
_REFUSAL = "refusal"
_NUMBERS = {
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
}

# True while a call that genai-otel traces is inside the SDK (the instrumentor's `Telemetry`
# is given it as `inside`): the SDK's own span is then not started (see
# `suppress_native_span`), so one call never yields two spans.
TRACED_BY_US: contextvars.ContextVar[bool] = contextvars.ContextVar("genai_otel_anthropic", default=False)


def start_messages(
    telemetry: Telemetry, instance: Any, kwargs: dict[str, Any], stream: bool | None = None
) -> Call:
    """The span of a messages call; `stream` None: as the call's ``stream`` argument says."""
    if stream is None:
        stream = kwargs.get("stream") is True
    attributes: dict[str, Any] = {semconv.GEN_AI_REQUEST_STREAM: stream}
    for argument, attribute in _NUMBERS.items():
        value = kwargs.get(argument)
        if value is not None and number(value) is not None:
            attributes[attribute] = value
    if "stop_sequences" in kwargs and (stop := strings(kwargs["stop_sequences"])):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    model = kwargs.get("model")
    address, port = server_of(getattr(instance, "_client", None))
    call = start_call(
        telemetry,
        _CHAT,
        model=model if isinstance(model, str) else None,
        server_address=address,
        server_port=port,
        request_attributes=attributes,
    )
    if telemetry.captures_content:
        messages, system = _input(kwargs.get("messages"), kwargs.get("system"))
        record_input_content(telemetry, call.span, messages, system)
    return call


# --------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------
def _apply_usage(outcome: Outcome, usage: Any, uncached_input: int | None) -> None:
    """Conventional usage from Anthropic's: input = uncached + cache read + cache write."""
    read = getattr(usage, "cache_read_input_tokens", None)
    write = getattr(usage, "cache_creation_input_tokens", None)
    if read is not None:
        outcome.cache_read_tokens = read
    if write is not None:
        outcome.cache_write_tokens = write
    if uncached_input is not None:
        outcome.input_tokens = (
            uncached_input + (outcome.cache_read_tokens or 0) + (outcome.cache_write_tokens or 0)
        )
    output = getattr(usage, "output_tokens", None)
    if output is not None:
        outcome.output_tokens = output
    details = getattr(usage, "output_tokens_details", None)
    if details is not None:
        outcome.reasoning_tokens = getattr(details, "thinking_tokens", None)


def message_outcome(message: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    outcome.response_id = message.id
    outcome.response_model = message.model
    stop = message.stop_reason
    if stop:
        outcome.finish_reasons = [stop]
        outcome.refused = stop == _REFUSAL
    names: list[str] = []
    ids: list[str] = []
    parts: list[dict[str, Any]] = []
    for block in message.content or ():
        kind = getattr(block, "type", None)
        if kind == "tool_use":
            names.append(block.name)
            ids.append(block.id)
            if capture:
                parts.append(
                    {"type": "tool_call", "id": block.id, "name": block.name, "arguments": block.input}
                )
        elif kind == "text" and capture:
            parts.append(text_part(block.text))
    if names:
        outcome.tool_call_names, outcome.tool_call_ids = names, ids
    if message.usage is not None:
        _apply_usage(outcome, message.usage, message.usage.input_tokens)
    if capture:
        outcome.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": stop or ""}]
    return outcome


class MessagesAccumulator:
    """Reads raw message stream events: message_start, content blocks, message_delta."""

    __slots__ = ("_arguments", "_capture", "_outcome", "_texts", "_uncached_input")

    def __init__(self, capture: bool) -> None:
        self._outcome = Outcome()
        self._capture = capture
        self._uncached_input: int | None = None
        self._texts: list[str] = []
        self._arguments: dict[int, list[str]] = {}

    def first(self, event: Any) -> None:
        self.add(event)

    def add(self, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":  # most events: text, only read when captured
            if self._capture:
                self._captured_delta(event)
            return
        outcome = self._outcome
        if kind == "message_start":
            message = event.message
            outcome.response_id = message.id
            outcome.response_model = message.model
            if message.usage is not None:
                self._uncached_input = message.usage.input_tokens
                _apply_usage(outcome, message.usage, self._uncached_input)
        elif kind == "content_block_start":
            block = event.content_block
            if getattr(block, "type", None) == "tool_use":
                if outcome.tool_call_ids is None:
                    outcome.tool_call_ids, outcome.tool_call_names = [], []
                outcome.tool_call_ids.append(block.id)
                outcome.tool_call_names.append(block.name)
        elif kind == "message_delta":
            stop = event.delta.stop_reason
            if stop:
                outcome.finish_reasons = [stop]
                outcome.refused = stop == _REFUSAL
            usage = event.usage
            if usage is not None:
                if usage.input_tokens is not None:
                    self._uncached_input = usage.input_tokens
                _apply_usage(outcome, usage, self._uncached_input)

    def _captured_delta(self, event: Any) -> None:
        delta = event.delta
        if delta.type == "text_delta":
            self._texts.append(delta.text)
        elif delta.type == "input_json_delta":
            self._arguments.setdefault(event.index, []).append(delta.partial_json)

    def outcome(self) -> Outcome:
        outcome = self._outcome
        if self._capture:
            parts: list[dict[str, Any]] = []
            if self._texts:
                parts.append(text_part("".join(self._texts)))
            for index in sorted(self._arguments):
                parts.append({"type": "tool_call", "arguments": "".join(self._arguments[index])})
            reason = outcome.finish_reasons[0] if outcome.finish_reasons else ""
            outcome.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]
        return outcome


# --------------------------------------------------------------------------------------
# The wrappers: `_core`'s, with this module's start and finish
# --------------------------------------------------------------------------------------
def _finisher(is_async: bool, always_stream: bool) -> Finisher:
    """Ends the span of a plain result, or hands a stream to a proxy. Never raises.

    `always_stream`: `messages.stream()`, whose arguments do not say ``stream=True``."""
    proxy = AsyncStreamProxy if is_async else SyncStreamProxy

    def finish(call: Call, result: Any, kwargs: dict[str, Any]) -> Any:
        try:
            capture = call.telemetry.captures_content
            stream = always_stream or kwargs.get("stream") is True
            if http_response_of(result) is not None:  # with_raw_response / streaming_response
                if not stream and type(result).__name__ == "LegacyAPIResponse":
                    call.end(message_outcome(result.parse(), capture))
                else:
                    call.end(None)
                return result
            if stream:
                # No tools, no capture: message_start (the first event) and message_delta (next
                # to last) tell all, so no event is read as it passes.
                tail = 0 if capture or kwargs.get("tools") else TAIL
                return proxy(result, call, MessagesAccumulator(capture), tail)
            call.end(message_outcome(result, capture))
        except Exception as error:
            logger.debug("could not record an Anthropic response", exc_info=True)
            call.end(None, error if _is_parse_error(error) else None)
        return result

    return finish


def _is_parse_error(error: Exception) -> bool:
    return classify_exception(error)[1] == ErrorCategory.INVALID_RESPONSE.value


def create_wrapper(telemetry: Telemetry) -> Any:
    return sync_wrapper(partial(start_messages, telemetry), _finisher(is_async=False, always_stream=False))


def async_create_wrapper(telemetry: Telemetry) -> Any:
    return async_wrapper(partial(start_messages, telemetry), _finisher(is_async=True, always_stream=False))


# `messages.stream()` returns a manager that sends its request when it is entered, by calling
# (sync) or awaiting (async) this private attribute: the span starts there. `_core`'s wrappers
# call what they wrap with the call's arguments, which `start_messages` reads; the request
# itself takes none.
_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def _call(request: Callable[[], Any], **_arguments: Any) -> Any:
    return request()


async def _await(request: Awaitable[Any], **_arguments: Any) -> Any:
    return await request


def stream_wrapper(telemetry: Telemetry) -> Any:
    """`messages.stream()`: traced from the moment its manager sends the request."""
    send = sync_wrapper(partial(start_messages, telemetry, stream=True), _finisher(False, always_stream=True))

    def traced(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        request = getattr(manager, _SYNC_REQUEST, None)
        if request is None:
            logger.debug("unknown MessageStreamManager layout; messages.stream() is not traced")
            return manager
        setattr(manager, _SYNC_REQUEST, partial(send, partial(_call, request), instance, (), kwargs))
        return manager

    return traced


def async_stream_wrapper(telemetry: Telemetry) -> Any:
    send = async_wrapper(partial(start_messages, telemetry, stream=True), _finisher(True, always_stream=True))

    def traced(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        request = getattr(manager, _ASYNC_REQUEST, None)
        if request is None:
            logger.debug("unknown AsyncMessageStreamManager layout; messages.stream() is not traced")
            return manager
        setattr(manager, _ASYNC_REQUEST, send(partial(_await, request), instance, (), kwargs))
        return manager

    return traced


def suppress_native_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The SDK's `start_api_call_span`: no native span for a call genai-otel traces."""
    if TRACED_BY_US.get():
        return None
    return wrapped(*args, **kwargs)


# --------------------------------------------------------------------------------------
# Content (opt-in)
# --------------------------------------------------------------------------------------
def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content or ():
        kind = get(block, "type")
        if kind == "text":
            parts.append(text_part(get(block, "text")))
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": get(block, "id"),
                    "name": get(block, "name"),
                    "arguments": get(block, "input"),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": get(block, "tool_use_id"),
                    "response": get(block, "content"),
                }
            )
        elif kind:
            parts.append({"type": str(kind)})
    return parts


def _input(messages: Any, system: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    converted = [
        {"role": get(message, "role"), "parts": _blocks(get(message, "content"))}
        for message in messages or ()
    ]
    return converted, _blocks(system) if system else []


_MESSAGES_MODULE = "anthropic.resources.messages.messages"
CREATE_TARGETS = (
    (_MESSAGES_MODULE, "Messages.create", create_wrapper),
    (_MESSAGES_MODULE, "Messages.parse", create_wrapper),
    (_MESSAGES_MODULE, "AsyncMessages.create", async_create_wrapper),
    (_MESSAGES_MODULE, "AsyncMessages.parse", async_create_wrapper),
    (_MESSAGES_MODULE, "Messages.stream", stream_wrapper),
    (_MESSAGES_MODULE, "AsyncMessages.stream", async_stream_wrapper),
)
NATIVE_SPAN_TARGET = ("anthropic._base_client", "start_api_call_span")
