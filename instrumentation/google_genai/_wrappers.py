"""Google Gen AI: request attributes, response outcomes, stream accumulation.

The wrapped methods are the SDK's per-request ones (``Models._generate_content``,
``_generate_content_stream``, ``_embed_content`` and their ``AsyncModels`` twins): every public
call (``generate_content``, ``generate_content_stream``, ``embed_content``, chats) goes through
them once per HTTP request, so automatic function calling and automatic continuation, which
send several requests for one public call, give one span per model call, each with its own usage.

Usage is normalised to the conventions: ``promptTokenCount`` already includes the cached part
(``cachedContentTokenCount``, the cache read); tool-use prompt tokens are input too; output is
``candidatesTokenCount + thoughtsTokenCount`` (Gemini reports thinking apart from the candidates),
and ``thoughtsTokenCount`` is the reasoning figure.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from genai_otel.instrumentation._core import (
    Call,
    Outcome,
    Telemetry,
    fields_of,
    get,
    number,
    record_input_content,
    start_call,
    strings,
    text_part,
)
from genai_otel.instrumentation._stream import TAIL, async_chunk_generator, chunk_generator

from genai_otel import semconv
from genai_otel.semconv import Operation, Provider

_GENERATE_CONTENT = Operation.GENERATE_CONTENT.value
_EMBEDDINGS = Operation.EMBEDDINGS.value
_GEMINI = Provider.GCP_GEMINI.value
_VERTEX = Provider.GCP_VERTEX_AI.value
# Finish and block reasons that mean the provider's safety or policy filters stopped the answer.
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)
_NUMBERS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "seed": semconv.GEN_AI_REQUEST_SEED,
}


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------
def model_name(model: Any) -> str | None:
    """The model id without its resource path: "models/gemini-2.5-flash" and
    "projects/p/locations/l/publishers/google/models/gemini-2.5-flash" are "gemini-2.5-flash"
    (the name price tables and dashboards use); tuned models keep their "tunedModels/" name."""
    if not isinstance(model, str) or not model:
        return None
    return (
        model.rsplit("models/", 1)[-1] if model.startswith(("models/", "projects/", "publishers/")) else model
    )


# base URL -> (server.address, server.port); a client's base URL is a plain string.
_SERVERS: dict[str, tuple[str | None, int | None]] = {}
_SERVERS_MAX = 256


def _server(base_url: Any) -> tuple[str | None, int | None]:
    if not isinstance(base_url, str):
        return None, None
    known = _SERVERS.get(base_url)
    if known is not None:
        return known
    found: tuple[str | None, int | None]
    try:
        parts = urlsplit(base_url)
        found = (parts.hostname or None, parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:
        found = (None, None)
    if len(_SERVERS) >= _SERVERS_MAX:
        _SERVERS.clear()
    _SERVERS[base_url] = found
    return found


def _begin(
    telemetry: Telemetry, operation: str, instance: Any, kwargs: dict[str, Any], attributes: dict[str, Any]
) -> Call:
    api_client = getattr(instance, "_api_client", None)
    options = getattr(api_client, "_http_options", None)
    address, port = _server(getattr(options, "base_url", None))
    return start_call(
        telemetry,
        operation,
        model=model_name(kwargs.get("model")),
        server_address=address,
        server_port=port,
        request_attributes=attributes,
        provider=_VERTEX if getattr(api_client, "vertexai", False) is True else _GEMINI,
    )


def _output_type(fields: Any) -> str | None:
    if fields.get("response_schema") is not None or fields.get("response_json_schema") is not None:
        return "json"
    mime = fields.get("response_mime_type")
    if mime == "application/json":
        return "json"
    if mime == "text/plain":
        return "text"
    return None


def _starter(stream: bool) -> Any:
    def start(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> Call:
        attributes: dict[str, Any] = {semconv.GEN_AI_REQUEST_STREAM: stream}
        config = kwargs.get("config")
        if config is not None:
            fields = fields_of(config)  # read once: a pydantic model's fields are in its __dict__
            for argument, attribute in _NUMBERS.items():
                value = fields.get(argument)
                if value is not None and number(value) is not None:
                    attributes[attribute] = value
            if (stop := strings(fields.get("stop_sequences"))) is not None:
                attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
            count = fields.get("candidate_count")
            if isinstance(count, int) and count != 1:
                attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = count
            if output_type := _output_type(fields):
                attributes[semconv.GEN_AI_OUTPUT_TYPE] = output_type
        call = _begin(telemetry, _GENERATE_CONTENT, instance, kwargs, attributes)
        if telemetry.captures_content:
            system = get(config, "system_instruction") if config is not None else None
            record_input_content(
                telemetry, call.span, _input_messages(kwargs.get("contents")), _system_parts(system)
            )
        return call

    return start


start_generate = _starter(stream=False)
start_generate_stream = _starter(stream=True)


def start_embed(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> Call:
    attributes: dict[str, Any] = {}
    config = kwargs.get("config")
    dimensions = get(config, "output_dimensionality") if config is not None else None
    if isinstance(dimensions, int):
        attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return _begin(telemetry, _EMBEDDINGS, instance, kwargs, attributes)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
def _apply_usage(outcome: Outcome, usage: Any) -> None:
    """Conventional usage from Gemini's `usage_metadata` (see the module docstring)."""
    outcome.usage = usage  # its modality breakdown: read by `_modality`, opt-in metric names only
    prompt = usage.prompt_token_count
    if prompt is not None:
        outcome.input_tokens = prompt + (usage.tool_use_prompt_token_count or 0)
    cached = usage.cached_content_token_count
    if cached is not None:
        outcome.cache_read_tokens = cached
    candidates = usage.candidates_token_count
    thoughts = usage.thoughts_token_count
    if candidates is not None or thoughts is not None:
        outcome.output_tokens = (candidates or 0) + (thoughts or 0)
    if thoughts is not None:
        outcome.reasoning_tokens = thoughts


def _reason(value: Any) -> str | None:
    """A finish or block reason as its enum value ("STOP"), whatever the SDK gave.

    An enum member's value is read from `_value_`, its instance attribute: the `value`
    property is a Python-level descriptor of `enum`, dearer than the rest of this reader."""
    if value is None:
        return None
    if type(value) is str:
        return value
    return str(getattr(value, "_value_", value))


def _function_call_parts(candidate: Any) -> list[Any]:
    content = candidate.content
    if content is None or not content.parts:
        return []
    return [part.function_call for part in content.parts if part.function_call is not None]


def generate_outcome(response: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    outcome.response_id = response.response_id
    outcome.response_model = response.model_version
    reasons: list[str] = []
    names: list[str] = []
    ids: list[str] = []
    outputs: list[dict[str, Any]] | None = [] if capture else None
    for candidate in response.candidates or ():
        reason = _reason(candidate.finish_reason)
        if reason is not None:
            reasons.append(reason.lower())
            outcome.refused = outcome.refused or reason in _FILTERED
        for function_call in _function_call_parts(candidate):
            names.append(function_call.name or "")
            ids.append(function_call.id or "")
        if outputs is not None:
            outputs.append(_output_message(candidate.content, reason))
    if reasons:
        outcome.finish_reasons = reasons
    feedback = response.prompt_feedback
    if feedback is not None and _reason(feedback.block_reason) in _FILTERED:
        outcome.refused = True
    if names:
        outcome.tool_call_names, outcome.tool_call_ids = names, ids
    if response.usage_metadata is not None:
        _apply_usage(outcome, response.usage_metadata)
    outcome.output_messages = outputs
    return outcome


def embed_outcome(response: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    usage = response.usage_metadata
    embeddings = response.embeddings or ()
    if usage is not None and usage.prompt_token_count is not None:
        outcome.input_tokens = usage.prompt_token_count
    else:  # Vertex AI: a token count per embedding
        counts = [get(get(e, "statistics"), "token_count") for e in embeddings]
        if counts and all(isinstance(count, (int, float)) for count in counts):
            outcome.input_tokens = int(sum(counts))
    if embeddings and isinstance(values := embeddings[0].values, list):
        outcome.extra = {semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(values)}
    return outcome


class GenerateAccumulator:
    """Reads streamed GenerateContentResponse chunks: ids, usage (cumulative: the last one wins,
    read once at the end), finish reasons per candidate, function calls, block reasons.

    Per chunk only what can change; the id and model are read once, from the first chunk; the
    prompt feedback only where it can block (a chunk without candidates)."""

    __slots__ = ("_capture", "_first", "_outcome", "_parts", "_reasons", "_usage", "_usage_chunk")

    def __init__(self, capture: bool) -> None:
        self._outcome = Outcome()
        self._capture = capture
        self._reasons: dict[int, str] = {}
        self._parts: dict[int, list[Any]] = {}
        self._usage: Any = None
        self._usage_chunk: Any = None
        self._first: Any = None

    def first(self, chunk: Any) -> None:
        self._first = chunk
        self.add(chunk)

    def add(self, chunk: Any) -> None:
        candidates = chunk.candidates
        if candidates:
            for position, candidate in enumerate(candidates):
                if candidate.finish_reason is not None:
                    index = candidate.index if candidate.index is not None else position
                    self._reasons[index] = _reason(candidate.finish_reason) or ""
                content = candidate.content
                parts = content.parts if content is not None else None
                if parts:
                    for part in parts:
                        if part.function_call is not None:
                            self._function_call(part.function_call)
                    if self._capture:
                        index = candidate.index if candidate.index is not None else position
                        self._parts.setdefault(index, []).extend(parts)
        else:  # a blocked prompt: no candidates, the reason in the prompt feedback
            feedback = chunk.prompt_feedback
            if feedback is not None and _reason(feedback.block_reason) in _FILTERED:
                self._outcome.refused = True
        usage = chunk.usage_metadata
        if usage is not None:
            self._usage = usage
            self._usage_chunk = chunk

    def _function_call(self, function_call: Any) -> None:
        outcome = self._outcome
        if outcome.tool_call_ids is None:
            outcome.tool_call_ids, outcome.tool_call_names = [], []
        outcome.tool_call_names.append(function_call.name or "")
        outcome.tool_call_ids.append(function_call.id or "")

    def outcome(self) -> Outcome:
        outcome = self._outcome
        first = self._first  # the id and model: from the first chunk, else the last with usage
        named = first if first is None or first.response_id else (self._usage_chunk or first)
        if named is not None:
            outcome.response_id = named.response_id
            outcome.response_model = named.model_version
        if self._usage is not None:
            _apply_usage(outcome, self._usage)
        reasons = self._reasons
        if len(reasons) == 1:  # one candidate
            (reason,) = reasons.values()
            outcome.finish_reasons = [reason.lower()]
            outcome.refused = outcome.refused or reason in _FILTERED
        elif reasons:
            raw = [reasons[index] for index in sorted(reasons)]
            outcome.finish_reasons = [reason.lower() for reason in raw]
            outcome.refused = outcome.refused or any(reason in _FILTERED for reason in raw)
        if self._capture:
            indexes = sorted(set(self._parts) | set(self._reasons))
            outcome.output_messages = [
                _message("assistant", _merged_parts(self._parts.get(index, ())), self._reasons.get(index))
                for index in indexes
            ]
        return outcome


# --------------------------------------------------------------------------------------
# Content (opt-in)
# --------------------------------------------------------------------------------------
def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return text_part(part)
    text = get(part, "text")
    if isinstance(text, str):
        if get(part, "thought"):
            return {"type": "reasoning", "content": text}
        return text_part(text)
    function_call = get(part, "function_call")
    if function_call is not None:
        return {
            "type": "tool_call",
            "id": get(function_call, "id"),
            "name": get(function_call, "name"),
            "arguments": get(function_call, "args"),
        }
    function_response = get(part, "function_response")
    if function_response is not None:
        return {
            "type": "tool_call_response",
            "id": get(function_response, "id"),
            "response": get(function_response, "response"),
        }
    return {"type": "blob" if get(part, "inline_data") is not None else type(part).__name__.lower()}


def _merged_parts(parts: Any) -> list[dict[str, Any]]:
    """Streamed parts with consecutive text pieces joined into one part."""
    merged: list[dict[str, Any]] = []
    for part in parts:
        converted = _part(part)
        previous = merged[-1] if merged else None
        if previous is not None and previous["type"] == converted["type"] and "content" in converted:
            previous["content"] += converted["content"]
        else:
            merged.append(converted)
    return merged


def _message(role: str, parts: list[dict[str, Any]], reason: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": parts}
    if reason is not None:
        message["finish_reason"] = reason.lower()
    return message


def _output_message(content: Any, reason: str | None) -> dict[str, Any]:
    parts = [_part(part) for part in get(content, "parts") or ()] if content is not None else []
    return _message("assistant", parts, reason)


def _is_content(item: Any) -> bool:
    return not isinstance(item, str) and get(item, "parts") is not None


def _role(role: Any) -> str:
    return "assistant" if role == "model" else str(role or "user")


def _input_messages(contents: Any) -> list[dict[str, Any]]:
    """`contents` in any of the SDK's accepted shapes: a string, a Content, a list of Contents,
    or a list of parts (strings, Parts), which the SDK sends as one user turn."""
    items = contents if isinstance(contents, list) else [contents]
    messages: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    for item in items:
        if item is None:
            continue
        if _is_content(item):
            if loose:
                messages.append({"role": "user", "parts": loose})
                loose = []
            parts = [_part(part) for part in get(item, "parts") or ()]
            messages.append({"role": _role(get(item, "role")), "parts": parts})
        else:
            loose.append(_part(item))
    if loose:
        messages.append({"role": "user", "parts": loose})
    return messages


def _system_parts(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if _is_content(system):
        return [_part(part) for part in get(system, "parts") or ()]
    items = system if isinstance(system, list) else [system]
    return [_part(item) for item in items]


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------
def finisher(outcome_of: Any, accumulator_of: Any, is_async: bool) -> Any:
    # the SDK's streams are plain (async) generators, which only its own public method iterates:
    # a generator of ours stands in for one, no proxy needed
    proxy = async_chunk_generator if is_async else chunk_generator

    def finish(call: Call, result: Any, kwargs: dict[str, Any]) -> Any:
        telemetry = call.telemetry
        capture = telemetry.capture_on_span or telemetry.capture_on_event
        if accumulator_of is not None:
            return proxy(result, call, accumulator_of(capture), TAIL if _read_at_end(kwargs, capture) else 0)
        call.end(outcome_of(result, capture))
        return result

    return finish


def _read_at_end(kwargs: dict[str, Any], capture: bool) -> bool:
    """Whether a stream's first and last chunks tell all (its id and model; the usage, which is
    cumulative, and the finish reason): no tools (no function calls in the middle), one
    candidate, no content to capture. Then no chunk is read as it passes."""
    if capture:
        return False
    config = kwargs.get("config")
    if config is None:
        return True
    fields = fields_of(config)
    count = fields.get("candidate_count")
    return not fields.get("tools") and (count is None or count == 1)


_MODULE = "google.genai.models"
# (module, "Class.method", starter, outcome of a plain result, stream accumulator, is_async)
METHODS: tuple[tuple[str, str, Any, Any, Any, bool], ...] = (
    (_MODULE, "Models._generate_content", start_generate, generate_outcome, None, False),
    (_MODULE, "Models._generate_content_stream", start_generate_stream, None, GenerateAccumulator, False),
    (_MODULE, "Models._embed_content", start_embed, embed_outcome, None, False),
    (_MODULE, "AsyncModels._generate_content", start_generate, generate_outcome, None, True),
    (
        _MODULE,
        "AsyncModels._generate_content_stream",
        start_generate_stream,
        None,
        GenerateAccumulator,
        True,
    ),
    (_MODULE, "AsyncModels._embed_content", start_embed, embed_outcome, None, True),
)
