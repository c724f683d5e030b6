"""OpenAI: request attributes, response outcomes and stream accumulators.

Chat Completions, Responses and Embeddings each get a `start` (kwargs -> span) and a
`finish` (result -> outcome, or a stream proxy). Usage is already conventional here:
OpenAI's ``prompt_tokens``/``input_tokens`` include cached tokens and its output tokens
include reasoning tokens.
"""

from __future__ import annotations

from typing import Any

from genai_otel.instrumentation._core import (
    Call,
    Outcome,
    get,
    http_response_of,
    number,
    record_input_content,
    start_call,
    strings,
    text_part,
)
from genai_otel.instrumentation._stream import TAIL, AsyncStreamProxy, SyncStreamProxy, finish_stream
from genai_otel.instrumentation.openai._providers import OpenAITelemetry

from genai_otel import semconv
from genai_otel.semconv import Operation

_CHAT = Operation.CHAT.value
_EMBEDDINGS = Operation.EMBEDDINGS.value
_CONTENT_FILTER = "content_filter"


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------
def _begin(
    telemetry: OpenAITelemetry,
    operation: str,
    instance: Any,
    kwargs: dict[str, Any],
    attributes: dict[str, Any],
) -> Call:
    model = kwargs.get("model")
    model = model if isinstance(model, str) else None
    provider, address, port = telemetry.endpoints(getattr(instance, "_client", None))
    attributes[semconv.GEN_AI_REQUEST_STREAM] = kwargs.get("stream") is True
    return start_call(
        telemetry,
        operation,
        model=model,
        server_address=address,
        server_port=port,
        request_attributes=attributes,
        provider=provider,
    )


def _set_numbers(attributes: dict[str, Any], kwargs: dict[str, Any], names: dict[str, str]) -> None:
    for argument, attribute in names.items():
        value = kwargs.get(argument)
        if value is not None and number(value) is not None:
            attributes[attribute] = value


_CHAT_NUMBERS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": semconv.GEN_AI_REQUEST_SEED,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}
_RESPONSES_NUMBERS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}


def _output_type(response_format: Any) -> str | None:
    if isinstance(response_format, type):  # parse(response_format=SomeModel)
        return "json"
    kind = get(response_format, "type") if response_format is not None else None
    if kind in ("json_schema", "json_object"):
        return "json"
    if kind == "text":
        return "text"
    return None


def start_chat(telemetry: OpenAITelemetry, instance: Any, kwargs: dict[str, Any]) -> Call:
    attributes: dict[str, Any] = {}
    _set_numbers(attributes, kwargs, _CHAT_NUMBERS)
    n = kwargs.get("n")
    if isinstance(n, int) and n != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
    if "stop" in kwargs and (stop := strings(kwargs["stop"])):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
    if isinstance(tier := kwargs.get("service_tier"), str):
        attributes[semconv.OPENAI_REQUEST_SERVICE_TIER] = tier
    if "response_format" in kwargs and (output_type := _output_type(kwargs["response_format"])):
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = output_type
    call = _begin(telemetry, _CHAT, instance, kwargs, attributes)
    if telemetry.captures_content:
        messages, system = _chat_input(kwargs.get("messages"))
        record_input_content(telemetry, call.span, messages, system)
    return call


def start_responses(telemetry: OpenAITelemetry, instance: Any, kwargs: dict[str, Any]) -> Call:
    attributes: dict[str, Any] = {}
    _set_numbers(attributes, kwargs, _RESPONSES_NUMBERS)
    if isinstance(tier := kwargs.get("service_tier"), str):
        attributes[semconv.OPENAI_REQUEST_SERVICE_TIER] = tier
    if "text_format" in kwargs and isinstance(kwargs["text_format"], type):
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    call = _begin(telemetry, _CHAT, instance, kwargs, attributes)
    if telemetry.captures_content:
        messages, system = _responses_input(kwargs.get("input"), kwargs.get("instructions"))
        record_input_content(telemetry, call.span, messages, system)
    return call


def start_embeddings(telemetry: OpenAITelemetry, instance: Any, kwargs: dict[str, Any]) -> Call:
    attributes: dict[str, Any] = {}
    if isinstance(encoding := kwargs.get("encoding_format"), str):
        attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
    if isinstance(dimensions := kwargs.get("dimensions"), int):
        attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return _begin(telemetry, _EMBEDDINGS, instance, kwargs, attributes)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
def _never(kwargs: dict[str, Any], capture: bool, provider: str) -> bool:
    return False


_AZURE_OPENAI = semconv.Provider.AZURE_OPENAI.value


def _finisher(outcome_of: Any, accumulator_of: Any, is_async: bool) -> Any:
    proxy = AsyncStreamProxy if is_async else SyncStreamProxy
    read_at_end = accumulator_of.read_at_end if accumulator_of is not None else _never

    def finish(call: Call, result: Any, kwargs: dict[str, Any]) -> Any:
        capture = call.telemetry.captures_content
        raw = http_response_of(result) is not None
        if kwargs.get("stream") is True:
            if raw:  # a raw HTTP response whose body the application reads itself
                call.end(None)
                return result
            tail = TAIL if read_at_end(kwargs, capture, call.metric_base[1]) else 0
            return proxy(result, call, accumulator_of(capture), tail)
        if raw:
            _finish_raw(call, result, outcome_of, capture)
            return result
        call.end(outcome_of(result, capture))
        return result

    return finish


def _finish_raw(call: Call, result: Any, outcome_of: Any, capture: bool) -> None:
    """`with_raw_response`: its body is already read, and `parse()` caches what it returns,
    so parsing here costs the application nothing. `with_streaming_response` bodies are
    not read yet: the span keeps only what the request said."""
    if type(result).__name__ != "LegacyAPIResponse":
        call.end(None)
        return
    try:
        parsed = result.parse()
    except Exception as error:
        call.end(None, error)
        return
    call.end(outcome_of(parsed, capture))


def _read_usage(outcome: Outcome, usage: Any, input_name: str, output_name: str) -> None:
    """OpenAI usage in either API's spelling: chat (`prompt_tokens`, `completion_tokens`) or
    responses (`input_tokens`, `output_tokens`), each with its `*_details` breakdown."""
    outcome.usage = usage  # its modality breakdown: read by `_modality`, opt-in metric names only
    outcome.input_tokens = getattr(usage, input_name)
    outcome.output_tokens = getattr(usage, output_name)
    details = getattr(usage, f"{input_name}_details", None)
    if details is not None:
        outcome.cache_read_tokens = getattr(details, "cached_tokens", None)
        outcome.cache_write_tokens = getattr(details, "cache_write_tokens", None)
    details = getattr(usage, f"{output_name}_details", None)
    if details is not None:
        outcome.reasoning_tokens = getattr(details, "reasoning_tokens", None)


def _usage_chat(outcome: Outcome, usage: Any) -> None:
    _read_usage(outcome, usage, "prompt_tokens", "completion_tokens")


def _openai_extra(outcome: Outcome, result: Any) -> None:
    tier = getattr(result, "service_tier", None)
    fingerprint = getattr(result, "system_fingerprint", None)
    if tier or fingerprint:
        extra: dict[str, Any] = {}
        if isinstance(tier, str):
            extra[semconv.OPENAI_RESPONSE_SERVICE_TIER] = tier
        if isinstance(fingerprint, str):
            extra[semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
        outcome.extra = extra


def chat_outcome(completion: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    outcome.response_id = completion.id
    outcome.response_model = completion.model
    reasons: list[str] = []
    names: list[str] = []
    ids: list[str] = []
    outputs: list[dict[str, Any]] | None = [] if capture else None
    for choice in completion.choices:
        reason = choice.finish_reason or ""
        reasons.append(reason)
        message = choice.message
        for tool_call in message.tool_calls or ():
            ids.append(tool_call.id)
            names.append(_tool_name(tool_call))
        if outputs is not None:
            outputs.append(_chat_output_message(message, reason))
    outcome.finish_reasons = reasons
    outcome.refused = _CONTENT_FILTER in reasons
    if names:
        outcome.tool_call_names, outcome.tool_call_ids = names, ids
    if completion.usage is not None:
        _usage_chat(outcome, completion.usage)
    _openai_extra(outcome, completion)
    outcome.output_messages = outputs
    return outcome


def _tool_name(tool_call: Any) -> str:
    function = getattr(tool_call, "function", None) or getattr(tool_call, "custom", None)
    return str(getattr(function, "name", "") or "")


def _chat_output_message(message: Any, reason: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append(text_part(message.content))
    for tool_call in message.tool_calls or ():
        function = getattr(tool_call, "function", None)
        arguments = getattr(function, "arguments", None)
        parts.append(_tool_call_part(tool_call.id, _tool_name(tool_call), arguments))
    return {"role": "assistant", "parts": parts, "finish_reason": reason}


def responses_outcome(response: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    outcome.response_id = response.id
    outcome.response_model = response.model
    names: list[str] = []
    ids: list[str] = []
    outputs: list[dict[str, Any]] | None = [] if capture else None
    for item in response.output or ():
        kind = getattr(item, "type", None)
        if kind == "function_call":
            names.append(item.name)
            ids.append(item.call_id)
            if outputs is not None:
                outputs.append(
                    {
                        "role": "assistant",
                        "parts": [_tool_call_part(item.call_id, item.name, item.arguments)],
                    }
                )
        elif kind == "message" and outputs is not None:
            texts = [part.text for part in item.content if getattr(part, "type", "") == "output_text"]
            parts = [text_part(text) for text in texts]
            outputs.append({"role": "assistant", "parts": parts})
    incomplete = getattr(response, "incomplete_details", None)
    reason = getattr(incomplete, "reason", None)
    if reason:
        outcome.finish_reasons = [reason]
    elif response.status == "completed":
        outcome.finish_reasons = ["tool_calls" if names else "stop"]
    elif response.status:
        outcome.finish_reasons = [response.status]
    outcome.refused = reason == _CONTENT_FILTER
    if names:
        outcome.tool_call_names, outcome.tool_call_ids = names, ids
    usage = response.usage
    if usage is not None:
        _read_usage(outcome, usage, "input_tokens", "output_tokens")
    tier = getattr(response, "service_tier", None)
    if isinstance(tier, str):
        outcome.extra = {semconv.OPENAI_RESPONSE_SERVICE_TIER: tier}
    if outputs is not None:
        outcome.output_messages = outputs
    return outcome


def embeddings_outcome(response: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    outcome.response_model = response.model
    usage = getattr(response, "usage", None)
    if usage is not None:
        outcome.input_tokens = usage.prompt_tokens
    data = response.data
    if data and isinstance(vector := data[0].embedding, list):
        outcome.extra = {semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(vector)}
    return outcome


# --------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------
class ChatAccumulator:
    """Reads chat.completion.chunk objects: ids, finish reasons, tool calls, final usage.

    Per chunk only what can change: finish reasons, tool calls, the usage. The id, model and
    OpenAI extras are read once at the end, from the first chunk, or where that has no id
    (Azure's first chunk, its prompt-filter results), from the one with the finish reason or
    the usage."""

    __slots__ = ("_arguments", "_capture", "_first", "_named", "_outcome", "_reasons", "_texts", "_usage")

    def __init__(self, capture: bool) -> None:
        self._outcome = Outcome()
        self._reasons: dict[int, str] = {}
        self._capture = capture
        self._texts: dict[int, list[str]] = {}
        self._arguments: dict[tuple[int, int], list[str]] = {}
        self._first: Any = None
        self._named: Any = None
        self._usage: Any = None

    @staticmethod
    def read_at_end(kwargs: dict[str, Any], capture: bool, provider: str) -> bool:
        """Whether the stream's last chunks tell all: one choice, no tools (no tool-call deltas
        in the middle), no content to capture, and not Azure OpenAI (its asynchronous content
        filter may send any number of annotation chunks after the finish reason); then no chunk
        is read as it passes."""
        if provider == _AZURE_OPENAI:
            return False
        n = kwargs.get("n")
        one = n is None or n == 1
        return not capture and one and not kwargs.get("tools") and not kwargs.get("functions")

    def first(self, chunk: Any) -> None:
        self._first = chunk
        self.add(chunk)

    def add(self, chunk: Any) -> None:
        for choice in chunk.choices:
            if choice.finish_reason:
                self._reasons[choice.index] = choice.finish_reason
                self._named = chunk
            delta = choice.delta
            if delta is not None:
                if delta.tool_calls:
                    self._tool_calls(choice.index, delta.tool_calls)
                if self._capture and delta.content:
                    self._texts.setdefault(choice.index, []).append(delta.content)
        usage = chunk.usage
        if usage is not None:
            self._usage = usage
            self._named = chunk

    def _tool_calls(self, index: int, tool_calls: Any) -> None:
        outcome = self._outcome
        for tool_call in tool_calls:
            if tool_call.id:
                if outcome.tool_call_ids is None:
                    outcome.tool_call_ids, outcome.tool_call_names = [], []
                outcome.tool_call_ids.append(tool_call.id)
                outcome.tool_call_names.append(_tool_name(tool_call))
            if self._capture and tool_call.function is not None and tool_call.function.arguments:
                key = (index, tool_call.index)
                self._arguments.setdefault(key, []).append(tool_call.function.arguments)

    def outcome(self) -> Outcome:
        outcome = self._outcome
        named = self._first if self._first is None or self._first.id else self._named
        if named is not None:
            outcome.response_id = named.id
            outcome.response_model = named.model
            _openai_extra(outcome, named)
        if self._usage is not None:
            _usage_chat(outcome, self._usage)
        if self._reasons:
            outcome.finish_reasons = [self._reasons[index] for index in sorted(self._reasons)]
            outcome.refused = _CONTENT_FILTER in outcome.finish_reasons
        if self._capture:
            indexes = sorted(set(self._texts) | set(self._reasons) | {key[0] for key in self._arguments})
            outcome.output_messages = [self._captured(index) for index in indexes]
        return outcome

    def _captured(self, index: int) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if index in self._texts:
            parts.append(text_part("".join(self._texts[index])))
        for (choice, _), pieces in sorted(self._arguments.items()):
            if choice == index:
                parts.append({"type": "tool_call", "arguments": "".join(pieces)})
        return {"role": "assistant", "parts": parts, "finish_reason": self._reasons.get(index, "")}


# Responses stream events that carry the whole response: the last one is the call's outcome.
_FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_EARLY_RESPONSE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})


class ResponsesAccumulator:
    """Reads Responses API stream events: only the few that carry the response are looked
    into (asking the others for `response` would cost pydantic a raised AttributeError each)."""

    __slots__ = ("_capture", "_outcome")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._outcome = Outcome()

    @staticmethod
    def read_at_end(kwargs: dict[str, Any], capture: bool, provider: str) -> bool:
        """Always: the first event names the response, the last carries all of it."""
        return True

    def first(self, event: Any) -> None:
        self.add(event)

    def add(self, event: Any) -> None:
        kind = event.type
        if kind in _FINAL_RESPONSE_EVENTS:
            self._outcome = responses_outcome(event.response, self._capture)
        elif kind in _EARLY_RESPONSE_EVENTS and self._outcome.response_id is None:
            response = event.response
            self._outcome.response_id = response.id
            self._outcome.response_model = response.model

    def outcome(self) -> Outcome:
        return self._outcome


def close_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`ChatCompletionStream.close` (what the `.stream()` helpers' exit calls) closes the
    HTTP response directly; end the span of the raw stream underneath too."""
    try:
        return wrapped(*args, **kwargs)
    finally:
        finish_stream(getattr(instance, "_raw_stream", None))


async def async_close_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    finally:
        finish_stream(getattr(instance, "_raw_stream", None))


# --------------------------------------------------------------------------------------
# Content (opt-in)
# --------------------------------------------------------------------------------------
def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for part in content or ():
        text = get(part, "text")
        if isinstance(text, str):
            parts.append(text_part(text))
        elif get(part, "type"):
            parts.append({"type": str(get(part, "type"))})
    return parts


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def _tool_response_part(call_id: Any, response: Any) -> dict[str, Any]:
    return {"type": "tool_call_response", "id": call_id, "response": response}


def _chat_input(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    converted: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for message in messages or ():
        role = get(message, "role")
        content = get(message, "content")
        if role in ("system", "developer"):
            system.extend(_parts(content))
            continue
        if role == "tool":
            parts = [_tool_response_part(get(message, "tool_call_id"), content)]
        else:
            parts = _parts(content)
            for tool_call in get(message, "tool_calls") or ():
                function = get(tool_call, "function")
                parts.append(
                    _tool_call_part(get(tool_call, "id"), get(function, "name"), get(function, "arguments"))
                )
        converted.append({"role": role, "parts": parts})
    return converted, system


def _responses_input(items: Any, instructions: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system = [text_part(instructions)] if isinstance(instructions, str) else []
    if isinstance(items, str):
        return [{"role": "user", "parts": [text_part(items)]}], system
    converted: list[dict[str, Any]] = []
    for item in items or ():
        role = get(item, "role")
        if role in ("system", "developer"):
            system.extend(_parts(get(item, "content")))
        elif role:
            converted.append({"role": role, "parts": _parts(get(item, "content"))})
        elif get(item, "type") == "function_call_output":
            converted.append(
                {
                    "role": "tool",
                    "parts": [_tool_response_part(get(item, "call_id"), get(item, "output"))],
                }
            )
    return converted, system


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------
_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
_EMBEDDINGS_MODULE = "openai.resources.embeddings"

# (module, "Class.method", operation kind, is_async)
METHODS: tuple[tuple[str, str, str, bool], ...] = (
    (_CHAT_MODULE, "Completions.create", "chat", False),
    (_CHAT_MODULE, "Completions.parse", "chat", False),
    (_CHAT_MODULE, "AsyncCompletions.create", "chat", True),
    (_CHAT_MODULE, "AsyncCompletions.parse", "chat", True),
    (_RESPONSES_MODULE, "Responses.create", "responses", False),
    (_RESPONSES_MODULE, "Responses.parse", "responses", False),
    (_RESPONSES_MODULE, "AsyncResponses.create", "responses", True),
    (_RESPONSES_MODULE, "AsyncResponses.parse", "responses", True),
    (_EMBEDDINGS_MODULE, "Embeddings.create", "embeddings", False),
    (_EMBEDDINGS_MODULE, "AsyncEmbeddings.create", "embeddings", True),
)
STREAM_CLOSERS: tuple[tuple[str, str, bool], ...] = (
    ("openai.lib.streaming.chat._completions", "ChatCompletionStream.close", False),
    ("openai.lib.streaming.chat._completions", "AsyncChatCompletionStream.close", True),
    ("openai.lib.streaming.responses._responses", "ResponseStream.close", False),
    ("openai.lib.streaming.responses._responses", "AsyncResponseStream.close", True),
)
KINDS = {
    "chat": (start_chat, chat_outcome, ChatAccumulator),
    "responses": (start_responses, responses_outcome, ResponsesAccumulator),
    "embeddings": (start_embeddings, embeddings_outcome, None),
}
