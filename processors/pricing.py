"""Prices a normalised call from the bundled `genai-prices` table, compiled for speed.

`genai_prices.calc_price` costs ~110 µs a call. The table only changes with the span's
*date* (start-date constraints), the time of day for a few off-peak models, and the service
tier, so we resolve each (provider, model) once, then each (model, day, tier) once, into a
`Rates` object: four per-token rates (plus long-context tiers). Pricing a span is then a few
multiplications. The remote price update of `genai-prices` is never started: the bundled
snapshot is the table, and its version goes onto every priced span.

Money is counted in integer *quanta* of 2**-32 USD (~2.3e-10 USD). Every component is rounded
to a quantum, the span's total is the exact sum of its components, and a sum of quanta is
exact both as an integer and as a float below 2**53 quanta (~2 million USD): so the sum of the
costs on spans equals the cost counters to the last bit.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Final

import yaml
from genai_prices import data_snapshot
from genai_prices import types as gp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from genai_otel import semconv as sc

logger = logging.getLogger(__name__)

QUANTA_PER_USD: Final = 1 << 32
NS_PER_DAY: Final = 86_400 * 10**9
NS_PER_MINUTE: Final = 60 * 10**9
PRICE_TABLE_VERSION: Final = f"genai-prices {version('genai-prices')}"

# gen_ai.provider.name (registry spelling) -> genai-prices provider id.
PROVIDER_TABLE_IDS: Final[dict[str, str]] = {
    sc.Provider.OPENAI: "openai",
    sc.Provider.ANTHROPIC: "anthropic",
    sc.Provider.AZURE_OPENAI: "azure",
    sc.Provider.AZURE_INFERENCE: "azure",
    sc.Provider.AWS_BEDROCK: "aws",
    sc.Provider.GCP_GEMINI: "google",
    sc.Provider.GCP_VERTEX_AI: "google",
    sc.Provider.GCP_GEN_AI: "google",
    sc.Provider.COHERE: "cohere",
    sc.Provider.DEEPSEEK: "deepseek",
    sc.Provider.GROQ: "groq",
    sc.Provider.MISTRAL_AI: "mistral",
    sc.Provider.PERPLEXITY: "perplexity",
    sc.Provider.X_AI: "x-ai",
    sc.Provider.MOONSHOT_AI: "moonshotai",
    sc.UnlistedProvider.TOGETHER_AI: "together",
    sc.UnlistedProvider.FIREWORKS: "fireworks",
    sc.UnlistedProvider.OPENROUTER: "openrouter",
    sc.UnlistedProvider.CEREBRAS: "cerebras",
}
# Providers whose request model names the price better than the response model.
REQUEST_MODEL_PRICED: Final = frozenset({sc.Provider.AWS_BEDROCK.value})
# Tier values that mean "the standard price".
STANDARD_TIERS: Final = frozenset({"", "default", "auto", "standard", "on_demand"})


class UnpricedReason:
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_MODEL = "unknown_model"
    NO_MODEL = "no_model"
    NO_USAGE = "no_usage"
    NO_TOKEN_PRICES = "no_token_prices"
    INVALID_USAGE = "invalid_usage"
    # A provider with no public price list (sc.SELF_HOSTED_PROVIDERS: an OpenAI-compatible host
    # the instrumentation's table does not know, Ollama, vLLM): priced only by the overrides file.
    SELF_HOSTED = "self_hosted"


@dataclass(slots=True, frozen=True)
class Rates:
    """USD per token for (input, output, cache read, cache write) plus USD per request."""

    base: tuple[float, float, float, float, float]
    # (input-token threshold, rates) from the highest threshold down: a call whose total
    # input exceeds the threshold pays that tier's rates on all its tokens.
    tiers: tuple[tuple[int, tuple[float, float, float, float, float]], ...] = ()
    table: str = PRICE_TABLE_VERSION
    multiplier: float = 1.0  # negotiated discount

    def for_input(self, input_tokens: int) -> tuple[float, float, float, float, float]:
        for threshold, rates in self.tiers:
            if input_tokens > threshold:
                return rates
        return self.base


@dataclass(slots=True)
class Cost:
    """One call's cost in quanta (see module docstring)."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    savings: int
    table: str

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


def to_usd(quanta: int) -> float:
    return quanta / QUANTA_PER_USD


RATE_INPUT, RATE_OUTPUT, RATE_CACHE_READ, RATE_CACHE_WRITE, RATE_PER_REQUEST = range(5)  # Rates.base


@dataclass(frozen=True, slots=True)
class CostPart:
    """One part of a call's cost, in quanta:

        int((n * rate + per_request) * multiplier * QUANTA_PER_USD + 0.5)

    where n is the sum of the token counts (input, output, cache read, cache write; input
    includes the cache tokens) times `coefficients`, rate is `rates[rate]`, less `rates[minus]`
    when given (a part whose rate is then not above 0 is 0), and per_request is `rates[per_request]`
    when given, else 0. The C lane is handed this table (lane_contract) and computes it the same
    way, operation for operation."""

    name: str  # a Cost field
    coefficients: tuple[int, int, int, int]
    rate: int
    minus: int = -1
    per_request: int = -1


COST_PARTS: Final = (
    CostPart("input", (1, 0, -1, -1), RATE_INPUT, per_request=RATE_PER_REQUEST),  # uncached input
    CostPart("output", (0, 1, 0, 0), RATE_OUTPUT),
    CostPart("cache_read", (0, 0, 1, 0), RATE_CACHE_READ),
    CostPart("cache_write", (0, 0, 0, 1), RATE_CACHE_WRITE),
    # what the cache reads saved against the input rate
    CostPart("savings", (0, 0, 1, 0), RATE_INPUT, minus=RATE_CACHE_READ),
)
assert tuple(part.name for part in COST_PARTS) == Cost.__slots__[:5]


CostFunction = Callable[[tuple[float, ...], float, int, int, int, int, str], Cost]


def _cost_function(parts: tuple[CostPart, ...]) -> CostFunction:
    """COST_PARTS as straight-line Python, written once at import (what the table says, without a
    loop over it per call): (rates, multiplier x QUANTA_PER_USD, the four counts, table) -> Cost."""
    lines = ["def cost(rate, m, n0, n1, n2, n3, table):"]
    for i, part in enumerate(parts):
        terms = "".join(
            f" {'+' if k > 0 else '-'} n{index}" for index, k in enumerate(part.coefficients) if k
        ).lstrip(" +")
        rate = f"rate[{part.rate}]" + (f" - rate[{part.minus}]" if part.minus >= 0 else "")
        extra = f" + rate[{part.per_request}]" if part.per_request >= 0 else ""
        lines.append(f"    r = {rate}")
        value = f"int((({terms}) * r{extra}) * m + 0.5)"
        lines.append(f"    q{i} = {value} if r > 0 else 0" if part.minus >= 0 else f"    q{i} = {value}")
    lines.append(f"    return Cost({', '.join(f'q{i}' for i in range(len(parts)))}, table)")
    namespace: dict[str, object] = {"Cost": Cost}
    exec("\n".join(lines), namespace)  # our own table, at import
    return namespace["cost"]  # type: ignore[return-value]


_cost = _cost_function(COST_PARTS)


def compute_cost(
    rates: Rates, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> Cost:
    """The call's cost by COST_PARTS, in quanta."""
    m = rates.multiplier * QUANTA_PER_USD
    rate = rates.for_input(input_tokens)
    return _cost(rate, m, input_tokens, output_tokens, cache_read, cache_write, rates.table)


def compiled_cost_parts() -> tuple[tuple[tuple[int, int, int, int], int, int, int], ...]:
    """COST_PARTS as the C lane reads them."""
    return tuple((p.coefficients, p.rate, p.minus, p.per_request) for p in COST_PARTS)


# --------------------------------------------------------------------------------------
# The overrides file
# --------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PricePoint(_Strict):
    """Prices in USD per million tokens, valid from `from` (UTC date) until the next point."""

    from_: date = Field(default=date(1970, 1, 1), alias="from")
    input_mtok: float = Field(ge=0)
    output_mtok: float = Field(default=0.0, ge=0)
    cache_read_mtok: float | None = Field(default=None, ge=0)
    cache_write_mtok: float | None = Field(default=None, ge=0)


class CustomModel(_Strict):
    """A model the table lacks (self-hosted, fine-tuned) or whose table price you replace."""

    provider: str = "*"  # gen_ai.provider.name as normalised, or "*" for any
    model: str  # exact, case-insensitive; a trailing "*" matches by prefix
    prices: list[PricePoint] = Field(min_length=1)

    @field_validator("prices")
    @classmethod
    def _sorted(cls, prices: list[PricePoint]) -> list[PricePoint]:
        return sorted(prices, key=lambda p: p.from_)


class Discount(_Strict):
    """A negotiated discount: every locally computed cost matching it is multiplied."""

    provider: str = "*"
    model: str = "*"
    multiplier: float = Field(gt=0, le=10)
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None  # exclusive


class PriceOverrides(_Strict):
    custom_models: list[CustomModel] = []
    discounts: list[Discount] = []
    digest: str = ""

    @classmethod
    def load(cls, path: Path) -> PriceOverrides:
        raw = path.read_bytes()
        try:
            loaded = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"price overrides file {path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"price overrides file {path}: expected a mapping at the top level")
        try:
            return cls(**loaded, digest=hashlib.sha256(raw).hexdigest()[:12])
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}={e.get('input')!r}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"price overrides file {path}: {problems}") from exc


def _matches(pattern: str, value: str) -> bool:
    pattern = pattern.lower()
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


# --------------------------------------------------------------------------------------
# The compiled book
# --------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Resolved:
    """A (provider, model) pair resolved once: where its prices come from."""

    provider_label: str
    model_ref: str
    table_provider: gp.Provider | None = None
    table_model: gp.ModelInfo | None = None
    custom: CustomModel | None = None
    time_of_day: bool = False  # has off-peak prices: bucket by minute, not by day
    rates: dict[tuple[int, str], Rates | str] = field(default_factory=dict)


def _decimal_rate(value: object, per_token: bool = True) -> float | None:
    if value is None:
        return None
    return float(value) / 1_000_000 if per_token else float(value)  # type: ignore[arg-type]


def _rates_from_model_price(model_price: gp.ModelPrice, table: str, multiplier: float) -> Rates | str:
    keys = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
    prices = [getattr(model_price, k, None) for k in keys]
    if prices[0] is None and prices[1] is None:
        return UnpricedReason.NO_TOKEN_PRICES
    per_request_kcount = getattr(model_price, "requests_kcount", None)
    per_request = float(per_request_kcount) / 1000 if per_request_kcount is not None else 0.0
    thresholds = sorted(
        {t.start for p in prices if isinstance(p, gp.TieredPrices) for t in p.tiers}, reverse=True
    )

    def at(input_tokens: int) -> tuple[float, float, float, float, float]:
        rates: list[float] = []
        for price in prices:
            if isinstance(price, gp.TieredPrices):
                chosen: Decimal = price.base
                for tier in reversed(price.tiers):
                    if input_tokens > tier.start:
                        chosen = tier.price
                        break
                rates.append(float(chosen) / 1_000_000)
            else:
                rates.append(float(price) / 1_000_000 if price is not None else -1.0)
        rate_in = max(rates[0], 0.0)
        # An unpriced cache read/write stays part of plain input, as genai-prices decomposes it.
        rate_cr = rates[2] if rates[2] >= 0 else rate_in
        rate_cw = rates[3] if rates[3] >= 0 else rate_in
        return rate_in, max(rates[1], 0.0), rate_cr, rate_cw, per_request

    base = at(0)
    tiers = tuple((threshold, at(threshold + 1)) for threshold in thresholds)
    return Rates(base=base, tiers=tiers, table=table, multiplier=multiplier)


def _rates_from_point(point: PricePoint, table: str, multiplier: float) -> Rates:
    rate_in = point.input_mtok / 1_000_000
    rate_cr = point.cache_read_mtok / 1_000_000 if point.cache_read_mtok is not None else rate_in
    rate_cw = point.cache_write_mtok / 1_000_000 if point.cache_write_mtok is not None else rate_in
    return Rates(
        base=(rate_in, point.output_mtok / 1_000_000, rate_cr, rate_cw, 0.0),
        table=table,
        multiplier=multiplier,
    )


class PriceBook:
    """Resolves and caches prices; bounded caches (cleared when full, then refilled)."""

    def __init__(self, overrides: PriceOverrides | None = None, max_entries: int = 10_000) -> None:
        self.overrides = overrides or PriceOverrides()
        self.max_entries = max_entries
        self._snapshot = data_snapshot.get_snapshot()
        self._providers = self._snapshot.providers
        self._by_id = {p.id: p for p in self._providers}
        self._resolved: dict[tuple[str, str, str], _Resolved | str] = {}
        self._overrides_table = f"overrides {self.overrides.digest}" if self.overrides.digest else "overrides"

    # -- resolution (once per provider/model pair) -----------------------------------
    def _table_provider(self, provider_label: str, model_ref: str) -> gp.Provider | None:
        table_id = PROVIDER_TABLE_IDS.get(provider_label)
        if table_id is not None:
            return self._by_id.get(table_id)
        if provider_label == "unknown":
            try:  # no provider on the span: the table knows which provider a model name means
                return self._snapshot.find_provider(model_ref, None, None)
            except LookupError:
                return None
        return data_snapshot.find_provider_by_id(self._providers, provider_label)

    def _resolve(self, provider_label: str, request_model: str, response_model: str) -> _Resolved | str:
        # The response model is the more specific (often dated) name; an unknown dated
        # response model falls back to the request model. On Bedrock the request's model id is
        # the price: its inference-profile prefix (us., eu., global.) picks the regional or the
        # global rate, which a response model from the body (Anthropic's bare name) does not say.
        first, second = response_model, request_model
        if provider_label in REQUEST_MODEL_PRICED:
            first, second = request_model, response_model
        refs = [r for r in dict.fromkeys((first, second)) if r]
        if not refs:
            return UnpricedReason.NO_MODEL
        for ref in refs:
            lowered = ref.lower()
            for custom in self.overrides.custom_models:
                if _matches(custom.provider, provider_label) and _matches(custom.model, lowered):
                    return _Resolved(provider_label, lowered, custom=custom)
        if provider_label in sc.SELF_HOSTED_PROVIDERS:
            return UnpricedReason.SELF_HOSTED  # never a public table's price for a look-alike name
        provider = self._table_provider(provider_label, refs[0])
        if provider is None:
            return UnpricedReason.UNKNOWN_PROVIDER
        for ref in refs:
            model = provider.find_model(ref, all_providers=self._providers)
            if model is not None:
                time_of_day = isinstance(model.prices, list) and any(
                    isinstance(c.constraint, gp.TimeOfDateConstraint) for c in model.prices
                )
                return _Resolved(
                    provider_label,
                    ref.lower(),
                    table_provider=provider,
                    table_model=model,
                    time_of_day=time_of_day,
                )
        return UnpricedReason.UNKNOWN_MODEL

    def _multiplier(self, resolved: _Resolved, day: date) -> float:
        for discount in self.overrides.discounts:
            if (
                _matches(discount.provider, resolved.provider_label)
                and _matches(discount.model, resolved.model_ref)
                and (discount.from_ is None or day >= discount.from_)
                and (discount.until is None or day < discount.until)
            ):
                return discount.multiplier
        return 1.0

    def _compile(self, resolved: _Resolved, bucket: int, tier: str) -> Rates | str:
        if resolved.time_of_day:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=bucket)
        else:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=bucket)
        multiplier = self._multiplier(resolved, moment.date())
        if resolved.custom is not None:
            points = resolved.custom.prices
            index = bisect.bisect_right([p.from_ for p in points], moment.date()) - 1
            if index < 0:
                return UnpricedReason.UNKNOWN_MODEL  # before the first listed price
            return _rates_from_point(points[index], self._overrides_table, multiplier)
        model, provider = resolved.table_model, resolved.table_provider
        assert model is not None and provider is not None
        context = {"service_tier": tier} if tier not in STANDARD_TIERS else None
        # As calc_price does: a model found through a fallback provider ignores the context.
        if context and not any(model is m for m in provider.models):
            context = None
        return _rates_from_model_price(model.get_prices(moment, context), PRICE_TABLE_VERSION, multiplier)

    # -- the hot path ------------------------------------------------------------------
    @property
    def resolved_cache(self) -> dict[tuple[str, str, str], _Resolved | str]:
        """(provider, request model, response model) -> resolution; the C fast path reads it."""
        return self._resolved

    def rates(
        self, provider_label: str, request_model: str, response_model: str, start_ns: int, tier: str
    ) -> Rates | str:
        """Rates for a call, or the reason it cannot be priced."""
        key = (provider_label, request_model, response_model)
        resolved = self._resolved.get(key)
        if resolved is None:
            if len(self._resolved) >= self.max_entries:
                self._resolved.clear()
            resolved = self._resolved[key] = self._resolve(*key)
        if type(resolved) is str:
            return resolved
        assert isinstance(resolved, _Resolved)
        bucket = start_ns // (NS_PER_MINUTE if resolved.time_of_day else NS_PER_DAY)
        rate_key = (bucket, tier)
        rates = resolved.rates.get(rate_key)
        if rates is None:
            if len(resolved.rates) >= 1024:
                resolved.rates.clear()
            rates = resolved.rates[rate_key] = self._compile(resolved, bucket, tier)
        return rates

    def window(
        self, provider_label: str, request_model: str, response_model: str, start_ns: int
    ) -> tuple[int, int]:
        """The start times [lo, hi) that share `rates(...)`'s answer for this call with `start_ns`:
        its day (or minute, for prices by time of day); all time when it does not depend on it."""
        resolved = self._resolved.get((provider_label, request_model, response_model))
        if not isinstance(resolved, _Resolved):
            if resolved is None:
                raise KeyError("window() before rates() for this call")
            return -(2**63), 2**63 - 1
        unit = NS_PER_MINUTE if resolved.time_of_day else NS_PER_DAY
        lo = start_ns // unit * unit
        return lo, lo + unit

    def providers(self) -> Iterable[str]:
        return self._by_id
