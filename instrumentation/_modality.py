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

Increments = tuple[tuple[str, int], ...]
# The increments of the five usage counters: input, output, cache read, cache write, reasoning.
Split = tuple[Increments, Increments, Increments, Increments, Increments]
Splitter = Callable[[Any, str], Split]  # (Outcome or None, gen_ai.provider.name) -> Split

_TEXT_OUTPUT_PROVIDERS = frozenset({semconv.Provider.OPENAI.value, semconv.Provider.AZURE_OPENAI.value})
_NO_USAGE: Increments = ((UNKNOWN, 0),)
_NO_SPLIT: Split = (_NO_USAGE, _NO_USAGE, _NO_USAGE, _NO_USAGE, _NO_USAGE)


def partition(
    total: int | None, parts: Iterable[tuple[str, Any]] | None = None, rest: str = UNKNOWN
) -> Increments:
    """`total` as increments by modality that sum to it: `parts` (modality, count) as reported,
    same modalities merged, zeros and non-integers dropped; what they leave goes to `rest`. Parts
    that add up to more than `total` are not believed: the whole total is `unknown`."""
    if not total or total < 0:
        return _NO_USAGE
    if not parts:
        return ((rest, total),)
    counted: dict[str, int] = {}
    left = total
    for modality, count in parts:
        if type(count) is int and count > 0:
            counted[modality] = counted.get(modality, 0) + count
            left -= count
    if left < 0:
        return ((UNKNOWN, total),)
    if left:
        counted[rest] = counted.get(rest, 0) + left
    return tuple(counted.items())


def unknown_split(outcome: Any, provider: str) -> Split:
    """No breakdown: every total under `unknown`."""
    if outcome is None:
        return _NO_SPLIT
    return (
        partition(outcome.input_tokens),
        partition(outcome.output_tokens),
        partition(outcome.cache_read_tokens),
        partition(outcome.cache_write_tokens),
        partition(outcome.reasoning_tokens),
    )


def openai_split(outcome: Any, provider: str) -> Split:
    usage = None if outcome is None else getattr(outcome, "usage", None)
    prompt = getattr(usage, "prompt_tokens_details", None)
    completion = getattr(usage, "completion_tokens_details", None)
    if prompt is None and completion is None:  # Responses, or no details: no breakdown
        return unknown_split(outcome, provider)
    rest = TEXT if provider in _TEXT_OUTPUT_PROVIDERS else UNKNOWN
    return (
        partition(outcome.input_tokens, _reported(prompt, _OPENAI_INPUT)),
        partition(outcome.output_tokens, _reported(completion, _OPENAI_OUTPUT), rest),
        partition(outcome.cache_read_tokens),
        partition(outcome.cache_write_tokens),
        partition(outcome.reasoning_tokens, None, rest),
    )


_OPENAI_INPUT = ((TEXT, "text_tokens"), (IMAGE, "image_tokens"), (AUDIO, "audio_tokens"))
_OPENAI_OUTPUT = ((TEXT, "text_tokens"), (AUDIO, "audio_tokens"))


def _reported(details: Any, names: tuple[tuple[str, str], ...]) -> list[tuple[str, int]] | None:
    """The (modality, count) of each `names` field above 0, declared by the SDK or not (pydantic
    keeps the API's undeclared fields apart); read without getattr, whose miss costs a pydantic
    model an exception. None when there is none (the usual call: text only, audio 0)."""
    if details is None:
        return None
    fields = getattr(details, "__dict__", None)
    if fields is None:
        fields = {key: getattr(details, key, None) for _, key in names}
    extra = getattr(details, "__pydantic_extra__", None)
    reported = None
    for modality, key in names:
        count = fields.get(key)
        if count is None and extra:
            count = extra.get(key)
        if type(count) is int and count > 0:
            if reported is None:
                reported = []
            reported.append((modality, count))
    return reported


def gemini_split(outcome: Any, provider: str) -> Split:
    usage = None if outcome is None else getattr(outcome, "usage", None)
    if usage is None:
        return unknown_split(outcome, provider)
    prompt = _gemini_parts(usage.prompt_tokens_details) + _gemini_parts(usage.tool_use_prompt_tokens_details)
    return (
        partition(outcome.input_tokens, prompt),
        partition(outcome.output_tokens, _gemini_parts(usage.candidates_tokens_details)),
        partition(outcome.cache_read_tokens, _gemini_parts(usage.cache_tokens_details)),
        partition(outcome.cache_write_tokens),
        partition(outcome.reasoning_tokens),
    )


def _gemini_parts(details: Any) -> list[tuple[str, Any]]:
    if not details:
        return []
    modalities = semconv.GEMINI_TOKEN_MODALITIES
    parts = []
    for entry in details:
        modality = entry.modality
        parts.append((modalities.get(getattr(modality, "value", modality), UNKNOWN), entry.token_count))
    return parts


def anthropic_split(outcome: Any, provider: str) -> Split:
    if outcome is None:
        return _NO_SPLIT
    return (
        partition(outcome.input_tokens),
        partition(outcome.output_tokens, None, TEXT),
        partition(outcome.cache_read_tokens),
        partition(outcome.cache_write_tokens),
        partition(outcome.reasoning_tokens, None, TEXT),
    )


_SPLITTERS: dict[str, Splitter] = {
    semconv.GENAI_OTEL_SCOPE_OPENAI: openai_split,
    semconv.GENAI_OTEL_SCOPE_GOOGLE_GENAI: gemini_split,
    semconv.GENAI_OTEL_SCOPE_ANTHROPIC: anthropic_split,
}


def splitter_for(scope: str) -> Splitter:
    """The split of an instrumentor's provider, by its instrumentation scope."""
    return _SPLITTERS.get(scope, unknown_split)
