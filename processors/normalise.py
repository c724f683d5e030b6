"""Recognise a GenAI span from any instrumentation and normalise what it says.

Input: the span attributes the scanner found (see `SCANNED_KEYS`), the instrumentation scope
name, the resource's service name. Output: a `GenAICall` in the current conventions' terms,
or None for a span that is not a model call.

Token accounting is normalised to the conventions: input includes cache reads and writes,
output includes reasoning. Sources that report them the other way are corrected:

* by rule, where the source is known to differ: OpenLIT's Anthropic spans copy Anthropic's
  `usage.input_tokens`, which excludes cache tokens;
* by evidence, anywhere: cache read + write larger than input can only mean input excluded
  them (they are added); reasoning larger than output can only mean output excluded it.

Where neither applies the convention is trusted, so nothing is ever counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from genai_otel import semconv as sc
from genai_otel.semconv import ERROR_CATEGORY_VALUES as _CATEGORY_VALUES
from genai_otel.semconv import error_category

from .wire import UNSUPPORTED

# Operations that are not themselves model calls: an agent or a tool span may carry the
# token totals of the calls inside it, so counting it would count those calls twice.
# execute_tool spans are counted as tool calls, invoke_agent spans as agent runs and
# apply_guardrail spans as guardrail evaluations (pipeline.py).
NON_INFERENCE_OPERATIONS: Final = frozenset(
    {
        "execute_tool",
        "invoke_agent",
        "create_agent",
        "invoke_workflow",
        "apply_guardrail",
        "workflow",
        "task",
        "agent",
        "tool",
    }
)
OPENLLMETRY_REQUEST_TYPES: Final = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}
UNKNOWN: Final = "unknown"

INPUT_KEYS: Final = (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS)
OUTPUT_KEYS: Final = (sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS)
CACHE_READ_KEYS: Final = (
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.OPENLLMETRY_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.OPENLLMETRY_LLM_USAGE_CACHE_READ_INPUT_TOKENS,
)
CACHE_WRITE_KEYS: Final = (
    sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    sc.LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc.OPENLLMETRY_USAGE_CACHE_CREATION_INPUT_TOKENS,
)
REASONING_KEYS: Final = (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, sc.OPENLLMETRY_USAGE_REASONING_TOKENS)


@dataclass(frozen=True, slots=True)
class TokenType:
    """One kind of token count: where it is read and under which name it is written."""

    label: str  # its value of the `token_type` label (llm_tokens_total)
    keys: tuple[str, ...]  # read, first found wins
    current: str  # the current conventions' name, written onto a span that reports it otherwise
    zero_written: bool  # a reported 0 is written under `current` too (else only a count above 0)


# The token counts of a call: GenAICall.tokens, SeriesStats.tokens and llm_tokens_total's
# token_type label follow this order, and the C lane is handed this table (lane_contract). A new
# kind of count is one entry here (and its names in semconv), then `python -m
# genai_otel.processors.lane_contract` (the lane's header); pricing.COST_PARTS prices it if it
# has its own rate.
TOKEN_TYPES: Final = (
    TokenType(sc.TokenType.INPUT, INPUT_KEYS, sc.GEN_AI_USAGE_INPUT_TOKENS, zero_written=True),
    TokenType(sc.TokenType.OUTPUT, OUTPUT_KEYS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, zero_written=True),
    TokenType(
        sc.TokenType.CACHE_READ, CACHE_READ_KEYS, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, zero_written=False
    ),
    TokenType(
        sc.TokenType.CACHE_WRITE,
        CACHE_WRITE_KEYS,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        zero_written=False,
    ),
    TokenType(
        sc.TokenType.REASONING, REASONING_KEYS, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, zero_written=False
    ),
)
TOKEN_INPUT, TOKEN_OUTPUT, TOKEN_CACHE_READ, TOKEN_CACHE_WRITE, TOKEN_REASONING = range(len(TOKEN_TYPES))


def _openlit_anthropic(provider: str, scope_name: str) -> bool:
    return provider == sc.Provider.ANTHROPIC and scope_name.startswith(sc.OPENLIT_SCOPE_PREFIX)


@dataclass(frozen=True, slots=True)
class Correction:
    """Token accounting to the conventions: `target` includes `parts`. A source that reported it
    excluding them is corrected: `target += sum(parts)` when the parts exceed the target (by
    evidence: it cannot have included them), or always for a source known to exclude them."""

    target: int  # a TOKEN_TYPES index
    parts: tuple[int, ...]  # TOKEN_TYPES indexes, never a target
    always_for: Callable[[str, str], bool] | None = None  # (provider, scope name)


TOKEN_CORRECTIONS: Final = (
    # input includes cache reads and writes; OpenLIT's Anthropic spans copy Anthropic's
    # usage.input_tokens, which excludes them
    Correction(TOKEN_INPUT, (TOKEN_CACHE_READ, TOKEN_CACHE_WRITE), _openlit_anthropic),
    # output includes reasoning
    Correction(TOKEN_OUTPUT, (TOKEN_REASONING,)),
)
assert not {p for c in TOKEN_CORRECTIONS for p in c.parts} & {c.target for c in TOKEN_CORRECTIONS}


def always_corrected(provider: str, scope_name: str) -> int:
    """Bit i: TOKEN_CORRECTIONS[i] applies to this source whatever its counts say."""
    mask = 0
    for i, correction in enumerate(TOKEN_CORRECTIONS):
        if correction.always_for is not None and correction.always_for(provider, scope_name):
            mask |= 1 << i
    return mask


USER_KEYS: Final = (sc.USER_ID, sc.OPENLIT_REQUEST_USER, sc.OPENLLMETRY_LLM_USER, sc.OPENLLMETRY_GEN_AI_USER)
SERVICE_TIER_KEYS: Final = (
    sc.OPENAI_RESPONSE_SERVICE_TIER,
    sc.LEGACY_GEN_AI_OPENAI_RESPONSE_SERVICE_TIER,
    sc.OPENLIT_RESPONSE_SERVICE_TIER,
    sc.OPENAI_REQUEST_SERVICE_TIER,
    sc.LEGACY_GEN_AI_OPENAI_REQUEST_SERVICE_TIER,
    sc.OPENLIT_REQUEST_SERVICE_TIER,
)
# Any of these marks a span as GenAI.
MARKER_KEYS: Final = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.LEGACY_GEN_AI_SYSTEM,
    sc.OPENLLMETRY_REQUEST_TYPE,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_RESPONSE_MODEL,
)
SCANNED_KEYS: Final = sorted(
    {
        *MARKER_KEYS,
        *INPUT_KEYS,
        *OUTPUT_KEYS,
        *CACHE_READ_KEYS,
        *CACHE_WRITE_KEYS,
        *REASONING_KEYS,
        *USER_KEYS,
        *SERVICE_TIER_KEYS,
        sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        sc.ERROR_TYPE,
        sc.GENAI_OTEL_ERROR_CATEGORY,
        sc.GENAI_OTEL_FEATURE,
        sc.GEN_AI_USAGE_COST_AMOUNT,
        sc.GEN_AI_USAGE_COST_SOURCE,
        sc.GENAI_OTEL_COST_PRICE_TABLE,
        sc.GENAI_OTEL_COST_UNPRICED_REASON,
        sc.OPENLIT_USAGE_COST,
        sc.GEN_AI_REQUEST_STREAM,
        sc.GEN_AI_RESPONSE_ID,  # duplicates.py
    }
)


_OPERATION, _PROVIDER, _SYSTEM, _REQUEST_TYPE, _REQUEST_MODEL, _RESPONSE_MODEL = MARKER_KEYS


class InvalidReason:
    """Reasons a span's GenAI data is rejected (label of genai_otel_processor_spans_invalid_total)."""

    TOKEN_TYPE = "token_wrong_type"
    TOKEN_NEGATIVE = "token_negative"
    TOKEN_ABSURD = "token_absurd"
    CACHE_EXCEEDS_INPUT = "cache_exceeds_input"
    VALUE_TYPE = "attribute_wrong_type"
    VALUE_TOO_LONG = "attribute_too_long"
    NEGATIVE_DURATION = "negative_duration"
    BAD_TIME_TO_FIRST_CHUNK = "bad_time_to_first_chunk"
    BAD_COST = "bad_reported_cost"
    BAD_SCORE = "bad_evaluation_score"
    MALFORMED_SPAN = "malformed_span"


class InvalidSpan(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class GenAICall:
    """One model call, in the current conventions' terms."""

    provider: str  # registry spelling, e.g. "gcp.gemini"; "unknown" when not said
    operation: str
    request_model: str
    response_model: str
    tokens: tuple[int, ...]  # per TOKEN_TYPES, normalised (input includes cache, output reasoning)
    has_usage: bool
    error: bool
    error_category: str  # ErrorCategory value, "" when ok
    user: str
    feature: str
    time_to_first_chunk: float | None
    service_tier: str
    reported_cost: float | None  # a cost the span already carries (provider, OpenLIT, or ours)
    reported_cost_source: str
    already_enriched: bool  # carries our cost or unpriced attributes from an earlier pass
    # True when some attribute the processor would add under its current name is missing.
    missing_current_names: tuple[str, ...] = ()

    @property
    def input_tokens(self) -> int:
        return self.tokens[TOKEN_INPUT]

    @property
    def output_tokens(self) -> int:
        return self.tokens[TOKEN_OUTPUT]

    @property
    def cache_read_tokens(self) -> int:
        return self.tokens[TOKEN_CACHE_READ]

    @property
    def cache_write_tokens(self) -> int:
        return self.tokens[TOKEN_CACHE_WRITE]

    @property
    def reasoning_tokens(self) -> int:
        return self.tokens[TOKEN_REASONING]

    @property
    def model(self) -> str:
        """The `model` label: the request model, falling back to the response model."""
        return self.request_model or self.response_model or UNKNOWN


normalise_provider = sc.provider_spelling  # the one rule, shared with the instrumentation


TRUST_PROVIDER: Final = "provider"
TRUST_ALL: Final = "all"
TRUST_NONE: Final = "none"


def trusts_reported_cost(policy: str, call: GenAICall) -> bool:
    """Whether the cost a span carries is taken as its cost (`pricing.trust_reported_cost`);
    otherwise the call is priced from the table like one that reported none."""
    if call.already_enriched:  # the processor's own price, from an earlier pass
        return True
    if call.reported_cost == 0 and (call.input_tokens or call.output_tokens):
        return False  # a call that used tokens was not free: an estimate that found no price
    if policy == TRUST_ALL:
        return True
    if policy == TRUST_NONE:
        return False
    # provider: a provider's or a gateway's figure. OpenLIT's gen_ai.usage.cost (it is missing the
    # proposal's name) is OpenLIT's own estimate from a price list it downloads, whatever it says.
    return (
        call.reported_cost_source == sc.CostSource.PROVIDER
        and sc.GEN_AI_USAGE_COST_AMOUNT not in call.missing_current_names
    )


def usage_incomplete(call: GenAICall, attrs: dict[str, object], scope_name: str) -> bool:
    """The span's usage is known to be incomplete for its source, so its cost is a lower bound.

    OpenLIT (1.45.0) takes an Anthropic stream's cache tokens from the stream's last usage event
    (`message_delta`) and writes 0 when that event does not repeat them, dropping what
    `message_start` said; its input excludes cache tokens. Such a span's 0 cache tokens cannot be
    told from a real 0: flagged, never guessed. Non-zero cache tokens were reported, so are whole.
    """
    return (
        call.has_usage
        and call.provider == sc.Provider.ANTHROPIC
        and not (call.cache_read_tokens or call.cache_write_tokens)
        and attrs.get(sc.GEN_AI_REQUEST_STREAM) is True
        and scope_name.startswith(sc.OPENLIT_SCOPE_PREFIX)
    )


def finite_number(value: object) -> float | None:
    """The value as a float if it is a finite int or float (bools excluded), else None."""
    if type(value) is int or type(value) is float:
        number = float(value)
        if math.isfinite(number):
            return number
    return None


class Normaliser:
    def __init__(self, max_tokens: int, max_value_length: int) -> None:
        self.max_tokens = max_tokens
        self.max_value_length = max_value_length

    def _tokens(self, attrs: dict[str, object], keys: tuple[str, ...]) -> int | None:
        for key in keys:
            value = attrs.get(key)
            if value is None:
                continue
            if type(value) is int:
                count = value
            elif type(value) is float and math.isfinite(value) and value.is_integer():
                count = int(value)
            else:
                raise InvalidSpan(InvalidReason.TOKEN_TYPE)
            if count < 0:
                raise InvalidSpan(InvalidReason.TOKEN_NEGATIVE)
            if count > self.max_tokens:
                raise InvalidSpan(InvalidReason.TOKEN_ABSURD)
            return count
        return None

    def _text(self, attrs: dict[str, object], key: str) -> str:
        value = attrs.get(key)
        if value is None:
            return ""
        if type(value) is str and len(value) <= self.max_value_length:
            return value  # the common case, decided in one test
        if type(value) is not str:
            if value is UNSUPPORTED or isinstance(value, list):
                raise InvalidSpan(InvalidReason.VALUE_TYPE)
            value = str(value)  # an int user id, a bool: usable as text
        if len(value) > self.max_value_length:
            raise InvalidSpan(InvalidReason.VALUE_TOO_LONG)
        return value

    def _first_text(self, attrs: dict[str, object], keys: tuple[str, ...]) -> str:
        for key in keys:
            if key in attrs:
                return self._text(attrs, key)
        return ""

    def normalise(self, attrs: dict[str, object], scope_name: str, status_error: bool) -> GenAICall | None:
        """The call the span describes, None if it is not a model call; raises InvalidSpan."""
        if not (
            _OPERATION in attrs
            or _PROVIDER in attrs
            or _SYSTEM in attrs
            or _REQUEST_TYPE in attrs
            or _REQUEST_MODEL in attrs
            or _RESPONSE_MODEL in attrs
        ):
            return None
        operation = self._text(attrs, sc.GEN_AI_OPERATION_NAME)
        if not operation:
            request_type = self._text(attrs, sc.OPENLLMETRY_REQUEST_TYPE)
            operation = OPENLLMETRY_REQUEST_TYPES.get(request_type, request_type)
        if not operation and scope_name == sc.ANTHROPIC_SDK_SCOPE:
            operation = sc.Operation.CHAT
        if operation in NON_INFERENCE_OPERATIONS:
            return None
        request_model = self._text(attrs, sc.GEN_AI_REQUEST_MODEL)
        response_model = self._text(attrs, sc.GEN_AI_RESPONSE_MODEL)
        raw_provider = self._text(attrs, sc.GEN_AI_PROVIDER_NAME) or self._text(
            attrs, sc.LEGACY_GEN_AI_SYSTEM
        )
        provider = normalise_provider(raw_provider) if raw_provider else ""
        if not provider and scope_name == sc.ANTHROPIC_SDK_SCOPE:
            provider = sc.Provider.ANTHROPIC

        counts = [self._tokens(attrs, token.keys) for token in TOKEN_TYPES]
        has_usage = counts[TOKEN_INPUT] is not None or counts[TOKEN_OUTPUT] is not None
        totals = [count or 0 for count in counts]
        always = always_corrected(provider, scope_name)
        for i, correction in enumerate(TOKEN_CORRECTIONS):
            added = 0
            for part in correction.parts:  # parts are never corrected: the reported counts
                added += totals[part]
            target = correction.target
            if added and (added > totals[target] or always >> i & 1):
                totals[target] += added
                if totals[target] > self.max_tokens:
                    raise InvalidSpan(InvalidReason.TOKEN_ABSURD)

        error_type = self._text(attrs, sc.ERROR_TYPE)
        category = self._text(attrs, sc.GENAI_OTEL_ERROR_CATEGORY)
        error = status_error or bool(error_type) or bool(category)
        if error:
            if category not in _CATEGORY_VALUES:
                category = error_category(error_type) if error_type else sc.ErrorCategory.OTHER
        else:
            category = ""

        ttfc_value = attrs.get(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        ttfc: float | None = None
        if ttfc_value is not None:
            ttfc = finite_number(ttfc_value)
            if ttfc is None or ttfc < 0:
                raise InvalidSpan(InvalidReason.BAD_TIME_TO_FIRST_CHUNK)

        reported_cost: float | None = None
        reported_source = ""
        for key in (sc.GEN_AI_USAGE_COST_AMOUNT, sc.OPENLIT_USAGE_COST):
            value = attrs.get(key)
            if value is None:
                continue
            reported_cost = finite_number(value)
            if reported_cost is None or reported_cost < 0:
                raise InvalidSpan(InvalidReason.BAD_COST)
            reported_source = (
                self._text(attrs, sc.GEN_AI_USAGE_COST_SOURCE) or sc.CostSource.PROVIDER
                if key == sc.GEN_AI_USAGE_COST_AMOUNT
                else sc.CostSource.PROVIDER
            )
            break
        already = sc.GENAI_OTEL_COST_PRICE_TABLE in attrs or sc.GENAI_OTEL_COST_UNPRICED_REASON in attrs

        missing = []
        if provider and sc.GEN_AI_PROVIDER_NAME not in attrs:
            missing.append(sc.GEN_AI_PROVIDER_NAME)
        for token, count in zip(TOKEN_TYPES, counts, strict=True):
            if count is not None and (count or token.zero_written) and token.current not in attrs:
                missing.append(token.current)
        if reported_cost is not None and sc.GEN_AI_USAGE_COST_AMOUNT not in attrs:
            missing.append(sc.GEN_AI_USAGE_COST_AMOUNT)
        if error and sc.GENAI_OTEL_ERROR_CATEGORY not in attrs:
            missing.append(sc.GENAI_OTEL_ERROR_CATEGORY)

        return GenAICall(
            provider=provider or UNKNOWN,
            operation=operation or UNKNOWN,
            request_model=request_model,
            response_model=response_model,
            tokens=tuple(totals),
            has_usage=has_usage,
            error=error,
            error_category=category,
            user=self._first_text(attrs, USER_KEYS),
            feature=self._text(attrs, sc.GENAI_OTEL_FEATURE),
            time_to_first_chunk=ttfc,
            service_tier=self._first_text(attrs, SERVICE_TIER_KEYS).lower(),
            reported_cost=reported_cost,
            reported_cost_source=reported_source,
            already_enriched=already,
            missing_current_names=tuple(missing),
        )
