"""InvokeModel bodies: each model family's own request and response JSON, read into attributes.

Families, from the model id without an ARN path or an inference profile's geography
(``us.anthropic.claude-...`` is ``anthropic``): ``anthropic`` (the Messages body; the legacy
``prompt`` body is a text completion), ``meta`` (Llama), ``amazon.nova`` (Converse-like),
``amazon.titan-text`` and ``amazon.titan-embed``. Anything else is read from the token-count
headers Bedrock adds to every InvokeModel answer.

Usage is normalised to the conventions: Anthropic's ``input_tokens`` and Nova's ``inputTokens``
exclude cache reads and writes, which are added back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from genai_otel.instrumentation._core import Outcome, number, strings, text_part

from genai_otel import semconv
from genai_otel.semconv import Operation

ANTHROPIC, META, NOVA, TITAN_TEXT, TITAN_EMBED = (
    "anthropic",
    "meta",
    "amazon.nova",
    "titan-text",
    "titan-embed",
)
_PROFILE_PREFIX = re.compile(r"^(?:us|eu|apac|au|ca|jp|in|us-gov|global)\.")
# Stop reasons that mean a filter or guardrail stopped the answer (Converse, Nova, Anthropic, Titan).
FILTERED = frozenset({"content_filtered", "guardrail_intervened", "refusal", "CONTENT_FILTERED"})

# request body key -> attribute, per family (nested config objects are flattened by `_config`)
_ANTHROPIC_NUMBERS = {
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_tokens_to_sample": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
}
_META_NUMBERS = {
    "max_gen_len": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
}
_NOVA_NUMBERS = {
    "max_new_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "maxTokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "topP": semconv.GEN_AI_REQUEST_TOP_P,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "topK": semconv.GEN_AI_REQUEST_TOP_K,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
}
_TITAN_NUMBERS = {
    "maxTokenCount": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "topP": semconv.GEN_AI_REQUEST_TOP_P,
}


def base_model(model_id: str) -> str:
    """The foundation model behind a model id: an ARN's last path part without a geography."""
    return _PROFILE_PREFIX.sub("", model_id.rsplit("/", 1)[-1], count=1)


def family_of(model_id: Any) -> str | None:
    if not isinstance(model_id, str):
        return None
    model = base_model(model_id)
    if model.startswith("anthropic."):
        return ANTHROPIC
    if model.startswith("meta."):
        return META
    if model.startswith("amazon.nova"):
        return NOVA
    if model.startswith("amazon.titan-text"):
        return TITAN_TEXT
    if model.startswith("amazon.titan-embed"):
        return TITAN_EMBED
    return None


def parse_json(body: Any) -> Any:
    """A request or response body as JSON (bytes or text), or None."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return None


def _put_numbers(source: Any, names: Mapping[str, str], attributes: dict[str, Any]) -> None:
    if not isinstance(source, dict):
        return
    for key, attribute in names.items():
        value = source.get(key)
        if value is not None and number(value) is not None:
            attributes[attribute] = value


def request_attributes(family: str | None, body: Any, attributes: dict[str, Any]) -> str:
    """Puts the request parameters of an InvokeModel body into `attributes`; returns the operation."""
    if not isinstance(body, dict):
        return Operation.CHAT.value
    if family == ANTHROPIC:
        _put_numbers(body, _ANTHROPIC_NUMBERS, attributes)
        if stop := strings(body.get("stop_sequences")):
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        return Operation.CHAT.value if "messages" in body else Operation.TEXT_COMPLETION.value
    if family == META:
        _put_numbers(body, _META_NUMBERS, attributes)
        return Operation.TEXT_COMPLETION.value
    if family == NOVA:
        config = body.get("inferenceConfig")
        _put_numbers(config, _NOVA_NUMBERS, attributes)
        if isinstance(config, dict) and (stop := strings(config.get("stopSequences"))):
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        return Operation.CHAT.value
    if family == TITAN_TEXT:
        config = body.get("textGenerationConfig")
        _put_numbers(config, _TITAN_NUMBERS, attributes)
        if isinstance(config, dict) and (stop := strings(config.get("stopSequences"))):
            attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = stop
        return Operation.TEXT_COMPLETION.value
    if family == TITAN_EMBED:
        if isinstance(body.get("dimensions"), int):
            attributes[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = body["dimensions"]
        return Operation.EMBEDDINGS.value
    if "messages" in body:
        return Operation.CHAT.value
    return (
        Operation.TEXT_COMPLETION.value if "prompt" in body or "inputText" in body else Operation.CHAT.value
    )


# --------------------------------------------------------------------------------------
# Usage, shared by plain answers and streams
# --------------------------------------------------------------------------------------
def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def apply_split_usage(
    outcome: Outcome, uncached: Any, output: Any, cache_read: Any, cache_write: Any, *, present: bool
) -> None:
    """Usage reported with cache tokens apart from input (Converse, Nova, Anthropic)."""
    read, write = _int(cache_read), _int(cache_write)
    if (base := _int(uncached)) is not None:
        outcome.input_tokens = base + (read or 0) + (write or 0)
    if (out := _int(output)) is not None:
        outcome.output_tokens = out
    if present or read is not None:
        outcome.cache_read_tokens = read or 0
    if present or write is not None:
        outcome.cache_write_tokens = write or 0


def apply_anthropic_usage(outcome: Outcome, usage: Any) -> None:
    if isinstance(usage, dict):
        apply_split_usage(
            outcome,
            usage.get("input_tokens"),
            usage.get("output_tokens"),
            usage.get("cache_read_input_tokens"),
            usage.get("cache_creation_input_tokens"),
            present=False,
        )


def apply_nova_usage(outcome: Outcome, usage: Any) -> None:
    if isinstance(usage, dict):
        apply_split_usage(
            outcome,
            usage.get("inputTokens"),
            usage.get("outputTokens"),
            usage.get("cacheReadInputTokenCount"),
            usage.get("cacheWriteInputTokenCount"),
            present=False,
        )


def apply_header_usage(outcome: Outcome, headers: Any) -> None:
    """Bedrock's own token counts, in the headers of every InvokeModel answer (any model)."""
    if not isinstance(headers, Mapping):
        return
    for header, field in (
        ("x-amzn-bedrock-input-token-count", "input_tokens"),
        ("x-amzn-bedrock-output-token-count", "output_tokens"),
    ):
        raw = headers.get(header)
        if getattr(outcome, field) is None and isinstance(raw, str) and raw.isdigit():
            setattr(outcome, field, int(raw))


def _reason(outcome: Outcome, reason: Any) -> None:
    if isinstance(reason, str) and reason:
        outcome.finish_reasons = [reason]
        outcome.refused = reason in FILTERED


# --------------------------------------------------------------------------------------
# Plain InvokeModel answers
# --------------------------------------------------------------------------------------
def response_outcome(family: str | None, answer: Any, capture: bool) -> Outcome:
    outcome = Outcome()
    if not isinstance(answer, dict):
        return outcome
    if family == ANTHROPIC:
        outcome.response_id = answer.get("id") if isinstance(answer.get("id"), str) else None
        outcome.response_model = answer.get("model") if isinstance(answer.get("model"), str) else None
        _reason(outcome, answer.get("stop_reason"))
        apply_anthropic_usage(outcome, answer.get("usage"))
        content = answer.get("content")
        blocks: list[Any] = content if isinstance(content, list) else []
        uses = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
        if uses:
            outcome.tool_call_names = [str(b.get("name", "")) for b in uses]
            outcome.tool_call_ids = [str(b.get("id", "")) for b in uses]
        if capture:
            outcome.output_messages = [_message(_anthropic_parts(blocks), answer.get("stop_reason"))]
    elif family == META:
        _reason(outcome, answer.get("stop_reason"))
        outcome.input_tokens = _int(answer.get("prompt_token_count"))
        outcome.output_tokens = _int(answer.get("generation_token_count"))
        if capture:
            outcome.output_messages = [_message([text_part(str(answer.get("generation", "")))], None)]
    elif family == NOVA:
        _reason(outcome, answer.get("stopReason"))
        apply_nova_usage(outcome, answer.get("usage"))
        message = (
            (answer.get("output") or {}).get("message") if isinstance(answer.get("output"), dict) else None
        )
        read_converse_message(outcome, message, answer.get("stopReason"), capture)
    elif family == TITAN_TEXT:
        listed = answer.get("results")
        results: list[Any] = listed if isinstance(listed, list) else []
        outcome.input_tokens = _int(answer.get("inputTextTokenCount"))
        counts = [_int(r.get("tokenCount")) for r in results if isinstance(r, dict)]
        if counts and None not in counts:
            outcome.output_tokens = sum(c for c in counts if c is not None)
        reasons = [str(r.get("completionReason")) for r in results if isinstance(r, dict)]
        if reasons:
            outcome.finish_reasons = reasons
            outcome.refused = any(reason in FILTERED for reason in reasons)
        if capture:
            outcome.output_messages = [
                _message([text_part(str(r.get("outputText", "")))], r.get("completionReason"))
                for r in results
                if isinstance(r, dict)
            ]
    elif family == TITAN_EMBED:
        outcome.input_tokens = _int(answer.get("inputTextTokenCount"))
        if isinstance(answer.get("embedding"), list):
            outcome.extra = {semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(answer["embedding"])}
    return outcome


def read_converse_message(outcome: Outcome, message: Any, stop: Any, capture: bool) -> None:
    """Tool calls (and, with capture, the content) of a Converse-shaped output message."""
    content = message.get("content") if isinstance(message, dict) else None
    blocks = content if isinstance(content, list) else []
    uses = [b["toolUse"] for b in blocks if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)]
    if uses:
        outcome.tool_call_names = [str(use.get("name", "")) for use in uses]
        outcome.tool_call_ids = [str(use.get("toolUseId", "")) for use in uses]
    if capture:
        outcome.output_messages = [_message(converse_parts(blocks), stop)]


# --------------------------------------------------------------------------------------
# Content (opt-in)
# --------------------------------------------------------------------------------------
def _message(parts: list[dict[str, Any]], reason: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if isinstance(reason, str):
        message["finish_reason"] = reason
    return message


def converse_part(block: Any) -> dict[str, Any]:
    if not isinstance(block, dict):
        return {"type": "unknown"}
    if isinstance(block.get("text"), str):
        return text_part(block["text"])
    if isinstance(use := block.get("toolUse"), dict):
        return {
            "type": "tool_call",
            "id": use.get("toolUseId"),
            "name": use.get("name"),
            "arguments": use.get("input"),
        }
    if isinstance(result := block.get("toolResult"), dict):
        return {
            "type": "tool_call_response",
            "id": result.get("toolUseId"),
            "response": result.get("content"),
        }
    if isinstance(reasoning := block.get("reasoningContent"), dict):
        text = (
            (reasoning.get("reasoningText") or {}).get("text")
            if isinstance(reasoning.get("reasoningText"), dict)
            else None
        )
        return {"type": "reasoning", "content": text or ""}
    return {"type": next(iter(block), "unknown")}  # image, document, video: their kind only


def converse_parts(blocks: Any) -> list[dict[str, Any]]:
    return [converse_part(block) for block in blocks] if isinstance(blocks, list) else []


def converse_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        return []
    return [
        {"role": str(m.get("role", "user")), "parts": converse_parts(m.get("content"))}
        for m in messages
        if isinstance(m, dict)
    ]


def _anthropic_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(text_part(str(block.get("text", ""))))
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": block.get("input"),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": block.get("tool_use_id"),
                    "response": block.get("content"),
                }
            )
        else:
            parts.append({"type": str(kind)})
    return parts


def input_content(family: str | None, body: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(input messages, system instructions) of an InvokeModel body."""
    if not isinstance(body, dict):
        return [], []
    if family == ANTHROPIC and isinstance(body.get("messages"), list):
        messages = [
            {"role": str(m.get("role", "user")), "parts": _anthropic_parts(m.get("content"))}
            for m in body["messages"]
            if isinstance(m, dict)
        ]
        return messages, _anthropic_parts(body.get("system")) if body.get("system") else []
    if family == NOVA:
        return converse_messages(body.get("messages")), converse_parts(body.get("system"))
    for key in ("prompt", "inputText"):
        if isinstance(body.get(key), str):
            return [{"role": "user", "parts": [text_part(body[key])]}], []
    return [], []
