"""Building blocks of the fake provider's pure response layer: no I/O, no clock, no randomness.

A `FakeRequest` goes in, a `FakeResponse` comes out. Everything that would make the answer
non-deterministic (the current time, a per-process salt for ids) is passed in through `CallContext`.
See README.md in this folder for the token formula and the headers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
DEFAULT_OUTPUT_TOKENS = 16
REASONING_TOKENS_PER_OUTPUT_TOKEN = 2
MAX_HANG_SECONDS = 30.0
EMBEDDING_DEFAULT_DIMENSIONS = 8

# Reasoning-style OpenAI model names (optionally behind a "vendor/" prefix).
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)

# Three-letter words: joined by single spaces, n words are 4n-1 characters, i.e. exactly n tokens.
_WORDS = ("the", "fox", "ran", "far", "and", "sat", "low", "sun", "was", "red", "sky", "big", "day", "new")

SCENARIOS = (
    "rate_limit",
    "context_length",
    "content_filter",
    "content_filter_finish",
    "auth",
    "server_error",
    "overloaded",
    "hang",
    "invalid_json",
    "stream_break",
    "stream_exception",  # Bedrock event streams: an exception event half way through
)
_INLINE_SCENARIO = re.compile(r"\[fake:([a-z_]+)\]")


@dataclass(frozen=True)
class FakeRequest:
    """One HTTP request as the response layer sees it. Header names are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any = None
    raw_body: bytes = b""


@dataclass(frozen=True)
class Chunk:
    """One piece of a streamed body, sent after waiting `delay_s` seconds."""

    data: bytes
    delay_s: float = 0.0


@dataclass
class FakeResponse:
    """What to send back.

    Plain responses send `body` after `delay_s`. Streamed responses (`chunks` is not None) send
    each chunk after its own delay. `hang_s` means: send nothing, close after that many seconds.
    `drop_connection` means: cut the connection after the chunks (or halfway through `body`),
    without finishing the message.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[Chunk] | None = None
    delay_s: float = 0.0
    hang_s: float | None = None
    drop_connection: bool = False

    @property
    def is_stream(self) -> bool:
        return self.chunks is not None

    def json(self) -> Any:
        return json.loads(self.body)


class RequestError(Exception):
    """A request the fake provider refuses, answered with the provider's 400 error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class Defaults:
    """Server-wide defaults; per-request headers override them."""

    latency_ms: float = 0.0
    ttfc_ms: float = 0.0


@dataclass(frozen=True)
class CallOptions:
    """Per-request knobs, read from the `x-fake-*` headers (and the inline scenario marker)."""

    scenario: str | None = None
    latency_s: float = 0.0
    ttfc_s: float = 0.0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int | None = None
    output_tokens: int | None = None
    response_model: str | None = None
    # Media tokens (image, audio, video, document) on top of the text: (modality, tokens) pairs
    input_media: tuple[tuple[str, int], ...] = ()
    output_media: tuple[tuple[str, int], ...] = ()

    def media(self, direction: str, modality: str) -> int:
        """The `input` or `output` media tokens of one modality (0 when none were asked for)."""
        pairs = self.input_media if direction == "input" else self.output_media
        return sum(tokens for name, tokens in pairs if name == modality)


MEDIA_MODALITIES = ("image", "audio", "video", "document")


@dataclass(frozen=True)
class CallContext:
    """Everything a handler needs besides the request: options, the clock value and an id seed."""

    options: CallOptions
    now: float
    seed: str

    def make_id(self, prefix: str, kind: str = "", length: int = 24) -> str:
        digest = hashlib.sha256(f"{self.seed}:{kind}".encode()).hexdigest()
        return prefix + digest[:length]

    def stream_delays(self, count: int) -> list[float]:
        """First chunk after the TTFC; the rest spread evenly up to the total latency (if larger)."""
        if count <= 0:
            return []
        first = self.options.ttfc_s
        spacing = max(0.0, self.options.latency_s - first) / (count - 1) if count > 1 else 0.0
        return [first] + [spacing] * (count - 1)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"header {name} must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise RequestError(f"header {name} must be a non-negative integer, got {raw!r}")
    return value


def _header_ms(headers: Mapping[str, str], name: str, default_ms: float) -> float:
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return default_ms / 1000.0
    try:
        value = float(raw)
    except ValueError:
        raise RequestError(f"header {name} must be a number of milliseconds, got {raw!r}") from None
    if value < 0:
        raise RequestError(f"header {name} must be a number of milliseconds, got {raw!r}")
    return value / 1000.0


def _header_media(headers: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """`image=258,audio=25`: media tokens by modality."""
    raw = headers.get(name)
    if raw is None or raw.strip() == "":
        return ()
    pairs = []
    for entry in raw.split(","):
        modality, _, count = entry.strip().partition("=")
        modality = modality.strip().lower()
        if modality not in MEDIA_MODALITIES or not count.strip().isdigit():
            raise RequestError(
                f"header {name} must list modality=tokens ({', '.join(MEDIA_MODALITIES)}), got {raw!r}"
            )
        pairs.append((modality, int(count)))
    return tuple(pairs)


def read_options(headers: Mapping[str, str], defaults: Defaults, last_user_text: str) -> CallOptions:
    scenario = headers.get("x-fake-scenario") or None
    if scenario is None:
        match = _INLINE_SCENARIO.search(last_user_text)
        scenario = match.group(1) if match else None
    if scenario is not None and scenario not in SCENARIOS:
        raise RequestError(f"unknown fake scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return CallOptions(
        scenario=scenario,
        latency_s=_header_ms(headers, "x-fake-latency-ms", defaults.latency_ms),
        ttfc_s=_header_ms(headers, "x-fake-ttfc-ms", defaults.ttfc_ms),
        cache_read_tokens=_header_int(headers, "x-fake-cache-read-tokens") or 0,
        cache_write_tokens=_header_int(headers, "x-fake-cache-write-tokens") or 0,
        reasoning_tokens=_header_int(headers, "x-fake-reasoning-tokens"),
        output_tokens=_header_int(headers, "x-fake-output-tokens"),
        response_model=headers.get("x-fake-response-model") or None,
        input_media=_header_media(headers, "x-fake-input-media-tokens"),
        output_media=_header_media(headers, "x-fake-output-media-tokens"),
    )


# --- token accounting -------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """ceil(characters / 4): the whole formula, so tests can compute exact numbers."""
    return -(-len(text) // CHARS_PER_TOKEN)


def text_of(content: Any) -> str:
    """All text in a message's content: strings, text parts, tool arguments and tool results."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(part) for part in content)
    if isinstance(content, dict):
        pieces = []
        for key in ("text", "content", "arguments", "output"):
            if key in content:
                pieces.append(text_of(content[key]))
        if isinstance(content.get("input"), dict):  # Anthropic tool_use blocks
            pieces.append(compact_json(content["input"]))
        if isinstance(content.get("function"), dict):  # OpenAI tool calls
            pieces.append(text_of(content["function"].get("arguments")))
        for call in content.get("tool_calls") or []:
            pieces.append(text_of(call))
        return "".join(pieces)
    return ""


def message_tokens(text: str) -> int:
    return MESSAGE_OVERHEAD_TOKENS + count_tokens(text)


def is_reasoning_model(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model))


def make_text(tokens: int, offset: int = 0) -> list[str]:
    """Deterministic text of exactly `tokens` tokens, as one piece per token (for streaming)."""
    words = [_WORDS[(offset + i) % len(_WORDS)] for i in range(tokens)]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def split_pieces(text: str, size: int = CHARS_PER_TOKEN) -> list[str]:
    """Split text (e.g. tool arguments) into streaming deltas of `size` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sse_data(payload: Any) -> bytes:
    return f"data: {compact_json(payload)}\n\n".encode()


def sse_event(event: str, payload: Any) -> bytes:
    return f"event: {event}\ndata: {compact_json(payload)}\n\n".encode()


# --- JSON schema examples (tool arguments, structured outputs) ---------------------------------


def example_from_schema(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A small value valid for simple schemas: required properties with per-type defaults."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 16:
        return None
    if "$ref" in schema:
        return example_from_schema(_resolve_ref(root, schema["$ref"]), root, depth + 1)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return example_from_schema((non_null or options)[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        required = schema.get("required")
        names = required if isinstance(required, list) else []
        return {name: example_from_schema(properties.get(name, {}), root, depth + 1) for name in names}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        return [example_from_schema(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _example_string(schema)
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def _example_string(schema: JSON) -> str:
    fmt = schema.get("format")
    if fmt == "date-time":
        return "1970-01-01T00:00:00Z"
    if fmt == "date":
        return "1970-01-01"
    return "x" * int(schema.get("minLength", 0))


def _resolve_ref(root: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node
