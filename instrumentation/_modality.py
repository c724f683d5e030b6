"""`gen_ai.token.modality` on the usage counters: each provider's usage split by modality.

Only the opt-in metric names (`OTEL_SEMCONV_STABILITY_OPT_IN`) read this; the default mode never
calls it. A split turns one call's `Outcome` into, for each of the five usage counters (input,
output, cache read, cache write, reasoning), the increments to add, one per modality. The
increments of a counter always sum to its total, exactly: a modality counts only what the provider
reported for it, the rest of the total goes to `unknown` (or to `text` where the API can carry no
other modality there), and a breakdown that adds up to more than its total is not believed (the
whole total is `unknown`). No usage is one increment of 0 under `unknown`, as the conventions ask.

What each provider reports (see the README):

- OpenAI chat and completions: `prompt_tokens_details` (`audio_tokens`; `text_tokens` and
  `image_tokens` from audio-capable models) and `completion_tokens_details` (`audio_tokens`,
  `text_tokens`). Chat output is text or audio, so from OpenAI and Azure OpenAI the output not
  counted as audio is text, and reasoning is text; an OpenAI-compatible endpoint may add its own
  output kinds, so its rest stays `unknown`. Cached tokens have no breakdown: `unknown`.
- OpenAI Responses: no breakdown at all: `unknown`.
- Gemini: `prompt_tokens_details` plus `tool_use_prompt_tokens_details` (input),
  `candidates_tokens_details` (output; the thoughts, counted in output, have none: `unknown`),
  `cache_tokens_details` (cache reads): lists of `ModalityTokenCount`.
- Anthropic: no breakdown; the Messages API outputs text only, so output and thinking are text;
  input (which can hold images and documents) and cache tokens are `unknown`.
- Everything else (Bedrock, whose Converse usage has no breakdown and whose models differ): `unknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from genai_otel import semconv

TEXT = semconv.TOKEN_MODALITY_TEXT
IMAGE = semconv.TOKEN_MODALITY_IMAGE
AUDIO = semconv.TOKEN_MODALITY_AUDIO
UNKNOWN = semconv.TOKEN_MODALITY_UNKNOWN

Increments = list[tuple[str, int]]
# The increments of the five usage counters: input, output, cache read, cache write, reasoning.
Split = tuple[Increments, Increments, Increments, Increments, Increments]
Splitter = Callable[[Any, str], Split]  # (Outcome or None, gen_ai.provider.name) -> Split

_TEXT_OUTPUT_PROVIDERS = frozenset({semconv.Provider.OPENAI.value, semconv.Provider.AZURE_OPENAI.value})


def partition(
    total: int | None, parts: Iterable[tuple[str, Any]] | None = None, rest: str = UNKNOWN
) -> Increments:
    """`total` as increments by modality that sum to it: `parts` (modality, count) as reported,
    same modalities merged, zeros and non-integers dropped; what they leave goes to `rest`. Parts
    that add up to more than `total` are not believed: the whole total is `unknown`."""
    if not total or total < 0:
        return [(UNKNOWN, 0)]
    counted: dict[str, int] = {}
    if parts is not None:
        for modality, count in parts:
            if type(count) is int and count > 0:
                counted[modality] = counted.get(modality, 0) + count
    left = total - sum(counted.values())
    if left < 0:
        return [(UNKNOWN, total)]
    if left:
        counted[rest] = counted.get(rest, 0) + left
    return list(counted.items())


def _totals(outcome: Any) -> tuple[Any, Any, Any, Any, Any]:
    if outcome is None:
        return None, None, None, None, None
    return (
        outcome.input_tokens,
        outcome.output_tokens,
        outcome.cache_read_tokens,
        outcome.cache_write_tokens,
        outcome.reasoning_tokens,
    )


def unknown_split(outcome: Any, provider: str) -> Split:
    """No breakdown: every total under `unknown`."""
    tokens, output, read, write, reasoning = _totals(outcome)
    return partition(tokens), partition(output), partition(read), partition(write), partition(reasoning)


def _provider_usage(outcome: Any) -> Any:
    """The provider's own usage object (`Outcome.usage`, set only where a split reads it)."""
    return None if outcome is None else getattr(outcome, "usage", None)


def openai_split(outcome: Any, provider: str) -> Split:
    usage = _provider_usage(outcome)
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    if prompt is None and completion is None:  # Responses, or no details: no breakdown
        return unknown_split(outcome, provider)
    tokens, output, read, write, reasoning = _totals(outcome)
    text_out = provider in _TEXT_OUTPUT_PROVIDERS
    rest = TEXT if text_out else UNKNOWN
    return (
        partition(tokens, _openai_parts(prompt, (TEXT, IMAGE, AUDIO))),
        partition(output, _openai_parts(completion, (TEXT, AUDIO)), rest),
        partition(read),
        partition(write),
        partition(reasoning, None, rest),
    )


def _openai_parts(details: Any, modalities: tuple[str, ...]) -> list[tuple[str, Any]]:
    if details is None:
        return []
    return [(modality, getattr(details, f"{modality}_tokens", None)) for modality in modalities]


def gemini_split(outcome: Any, provider: str) -> Split:
    usage = _provider_usage(outcome)
    if usage is None:
        return unknown_split(outcome, provider)
    tokens, output, read, write, reasoning = _totals(outcome)
    prompt = _gemini_parts(usage.prompt_tokens_details) + _gemini_parts(usage.tool_use_prompt_tokens_details)
    return (
        partition(tokens, prompt),
        partition(output, _gemini_parts(usage.candidates_tokens_details)),
        partition(read, _gemini_parts(usage.cache_tokens_details)),
        partition(write),
        partition(reasoning),
    )


def _gemini_parts(details: Any) -> list[tuple[str, Any]]:
    if not details:
        return []
    parts = []
    for entry in details:
        modality = entry.modality
        name = getattr(modality, "value", modality)
        parts.append((semconv.GEMINI_TOKEN_MODALITIES.get(name, UNKNOWN), entry.token_count))
    return parts


def anthropic_split(outcome: Any, provider: str) -> Split:
    tokens, output, read, write, reasoning = _totals(outcome)
    return (
        partition(tokens),
        partition(output, None, TEXT),
        partition(read),
        partition(write),
        partition(reasoning, None, TEXT),
    )


_SPLITTERS: dict[str, Splitter] = {
    semconv.GENAI_OTEL_SCOPE_OPENAI: openai_split,
    semconv.GENAI_OTEL_SCOPE_GOOGLE_GENAI: gemini_split,
    semconv.GENAI_OTEL_SCOPE_ANTHROPIC: anthropic_split,
}


def splitter_for(scope: str) -> Splitter:
    """The split of an instrumentor's provider, by its instrumentation scope."""
    return _SPLITTERS.get(scope, unknown_split)
