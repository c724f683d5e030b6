"""The report's figures, computed by pure functions from Prometheus query results.

`report_queries` names every instant query the report needs over a range; `build_report` turns
their results (plus the hourly cost series) into a `Report`. Nothing here does I/O, so every figure
is unit-tested with exact numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from genai_otel import semconv

Labels = dict[str, str]
Sample = tuple[Labels, float]

DAY_SECONDS = 86400
HOUR_SECONDS = 3600
_TOKENS = f'{semconv.PROM_LLM_TOKENS}{{token_type=~"input|output"}}'
_QUALITY_SUM = semconv.PROM_LLM_QUALITY_SCORE + "_sum"
_QUALITY_COUNT = semconv.PROM_LLM_QUALITY_SCORE + "_count"
# Recorded series holding a 1-day increase (prometheus/rules): read instead of raw counters
# when the report's range is exactly one day.
RECORDED_1D = {
    semconv.PROM_LLM_COST: "service_provider_model:llm_cost_usd:increase1d",
    semconv.PROM_LLM_USER_COST: "service_user:llm_user_cost_usd:increase1d",
}


@dataclass(frozen=True)
class Options:
    range_seconds: int = DAY_SECONDS
    top_users: int = 10
    tolerance: float = 0.3  # score points a cheaper model may lose and still be suggested
    min_judged_samples: int = 30


def promql_duration(seconds: int) -> str:
    for unit, size in (("d", DAY_SECONDS), ("h", HOUR_SECONDS), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _increase(metric: str, by: str, range_: str, seconds: int) -> str:
    recorded = RECORDED_1D.get(metric)
    if recorded is not None and seconds == DAY_SECONDS:
        return f"sum by ({by}) ({recorded})"
    return f"sum by ({by}) (increase({metric}[{range_}]))"


def report_queries(options: Options) -> dict[str, str]:
    """name -> PromQL instant query over the report's range."""
    r, s = promql_duration(options.range_seconds), options.range_seconds
    spm = "service, provider, model"
    return {
        "cost_by_model": _increase(semconv.PROM_LLM_COST, "provider, model", r, s),
        "cost_by_service": _increase(semconv.PROM_LLM_COST, "service", r, s),
        "cost_by_service_model": _increase(semconv.PROM_LLM_COST, spm, r, s),
        "cost_by_user": _increase(semconv.PROM_LLM_USER_COST, "service, user", r, s),
        "cost_by_feature": _increase(semconv.PROM_LLM_FEATURE_COST, "service, feature", r, s),
        "requests_by_model": _increase(semconv.PROM_LLM_REQUESTS, "provider, model", r, s),
        "tokens_by_service_model": f"sum by ({spm}) (increase({_TOKENS}[{r}]))",
        "cache_savings_by_model": _increase(semconv.PROM_LLM_CACHE_SAVINGS, "provider, model", r, s),
        "unpriced_by_model": _increase(semconv.PROM_LLM_UNPRICED_REQUESTS, "provider, model, reason", r, s),
        "quality_sum": _increase(_QUALITY_SUM, f"{spm}, evaluation", r, s),
        "quality_count": _increase(_QUALITY_COUNT, f"{spm}, evaluation", r, s),
    }


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cost:
    key: tuple[str, ...]  # label values, in the order of the section's columns
    usd: float


@dataclass(frozen=True)
class ModelUnitCost:
    provider: str
    model: str
    cost_usd: float
    requests: float
    tokens: float  # input + output
    per_request_usd: float | None
    per_1k_tokens_usd: float | None


@dataclass(frozen=True)
class Unpriced:
    provider: str
    model: str
    reason: str
    calls: float


@dataclass(frozen=True)
class Judged:
    service: str
    provider: str
    model: str
    evaluation: str
    mean_score: float
    samples: int


@dataclass(frozen=True)
class Suggestion:
    """Move `current`'s traffic to `cheaper`: same service and evaluation, score within tolerance."""

    current: Judged
    cheaper: Judged
    tokens: float  # input + output tokens of the current model in this service over the range
    current_cost_usd: float
    estimated_cost_usd: float  # the same tokens at the cheaper model's observed cost per token

    @property
    def saving_usd(self) -> float:
        return self.current_cost_usd - self.estimated_cost_usd


@dataclass(frozen=True)
class NoSuggestion:
    judged: Judged
    reason: str  # "not enough judged samples (12 of 30)", "no cheaper model within 0.3 points", ...


@dataclass
class Report:
    range_seconds: int
    at: float
    total_cost_usd: float
    cost_by_model: list[Cost]  # (provider, model)
    cost_by_service: list[Cost]  # (service,)
    cost_by_user: list[Cost]  # (service, user), top N
    other_users: int  # users beyond the top N
    cost_by_feature: list[Cost]  # (service, feature)
    cost_per_hour: list[Cost]  # (bucket start, ISO 8601 UTC)
    cost_per_day: list[Cost]  # (date,)
    unit_costs: list[ModelUnitCost]
    cache_savings: list[Cost]  # (provider, model)
    total_cache_savings_usd: float
    unpriced: list[Unpriced]
    suggestions: list[Suggestion] = field(default_factory=list)
    no_suggestions: list[NoSuggestion] = field(default_factory=list)
    tolerance: float = 0.3
    min_judged_samples: int = 30

    @property
    def empty(self) -> bool:
        return not (self.cost_by_model or self.unpriced or self.unit_costs)


def _by(samples: Iterable[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    """Sums values per label tuple (a missing label counts as "")."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for metric, value in samples:
        if math.isfinite(value):
            out[tuple(metric.get(label, "") for label in labels)] += value
    return dict(out)


def _costs(values: Mapping[tuple[str, ...], float]) -> list[Cost]:
    return sorted((Cost(key, usd) for key, usd in values.items()), key=lambda c: (-c.usd, c.key))


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def bucket_seconds(range_seconds: int) -> int:
    """Hourly buckets; a range shorter than an hour is one bucket."""
    return min(HOUR_SECONDS, range_seconds)


def hourly_cost_query(range_seconds: int) -> str:
    return f"sum(increase({semconv.PROM_LLM_COST}[{promql_duration(bucket_seconds(range_seconds))}]))"


def hourly_and_daily(
    points: Iterable[tuple[float, float]], bucket: int = HOUR_SECONDS
) -> tuple[list[Cost], list[Cost]]:
    """Hourly buckets (each point is the increase over the `bucket` seconds ending at its timestamp)
    and their sums per UTC day of the bucket's start."""
    hours: list[Cost] = []
    days: dict[str, float] = defaultdict(float)
    for end, usd in sorted(points):
        start = datetime.fromtimestamp(end - bucket, UTC)
        hours.append(Cost((start.strftime("%Y-%m-%dT%H:%M:%SZ"),), usd))
        days[start.strftime("%Y-%m-%d")] += usd
    return hours, [Cost((day,), usd) for day, usd in sorted(days.items())]


def judged_models(quality_sum: Iterable[Sample], quality_count: Iterable[Sample]) -> list[Judged]:
    keys = ("service", "provider", "model", "evaluation")
    sums, counts = _by(quality_sum, *keys), _by(quality_count, *keys)
    judged = [
        Judged(service, provider, model, evaluation, sums.get(key, 0.0) / count, round(count))
        for key, count in counts.items()
        for service, provider, model, evaluation in [key]
        if count > 0
    ]
    return sorted(judged, key=lambda j: (j.service, j.evaluation, j.provider, j.model))


def suggest(
    judged: list[Judged],
    cost_by_service_model: Mapping[tuple[str, ...], float],
    tokens_by_service_model: Mapping[tuple[str, ...], float],
    tolerance: float,
    min_samples: int,
) -> tuple[list[Suggestion], list[NoSuggestion]]:
    """For each judged (service, evaluation, model): the cheapest model per token judged in the same
    service and evaluation whose mean score is at most `tolerance` below, both with enough samples.

    A model's cost per token is its cost over its input + output tokens across every service.
    """
    cost_pm: dict[tuple[str, str], float] = defaultdict(float)
    tokens_pm: dict[tuple[str, str], float] = defaultdict(float)
    for (_, provider, model), usd in cost_by_service_model.items():
        cost_pm[provider, model] += usd
    for (_, provider, model), tokens in tokens_by_service_model.items():
        tokens_pm[provider, model] += tokens
    per_token = {
        key: cost_pm[key] / tokens_pm[key]
        for key in cost_pm
        if tokens_pm.get(key, 0) > 0 and cost_pm[key] > 0
    }
    suggestions, none = [], []
    for current in judged:
        if current.samples < min_samples:
            none.append(
                NoSuggestion(current, f"not enough judged samples ({current.samples} of {min_samples})")
            )
            continue
        own = per_token.get((current.provider, current.model))
        if own is None:
            none.append(NoSuggestion(current, "no observed cost per token (unpriced or no tokens)"))
            continue
        candidates = [
            other
            for other in judged
            if (other.service, other.evaluation) == (current.service, current.evaluation)
            and (other.provider, other.model) != (current.provider, current.model)
            and other.samples >= min_samples
            and per_token.get((other.provider, other.model), math.inf) < own
            and other.mean_score >= current.mean_score - tolerance
        ]
        if not candidates:
            none.append(NoSuggestion(current, f"no cheaper model within {tolerance:g} points"))
            continue
        best = min(candidates, key=lambda o: (per_token[o.provider, o.model], -o.mean_score, o.model))
        spm = (current.service, current.provider, current.model)
        tokens = tokens_by_service_model.get(spm, 0.0)
        suggestions.append(
            Suggestion(
                current=current,
                cheaper=best,
                tokens=tokens,
                current_cost_usd=cost_by_service_model.get(spm, 0.0),
                estimated_cost_usd=tokens * per_token[best.provider, best.model],
            )
        )
    suggestions.sort(key=lambda s: -s.saving_usd)
    return suggestions, none


def build_report(
    results: Mapping[str, list[Sample]],
    hourly: Iterable[tuple[float, float]],
    options: Options,
    at: float,
) -> Report:
    """`results`: the instant query results, by `report_queries` name; `hourly`: (end, usd) points."""
    cost_by_model = _by(results["cost_by_model"], "provider", "model")
    cost_spm = _by(results["cost_by_service_model"], "service", "provider", "model")
    tokens_spm = _by(results["tokens_by_service_model"], "service", "provider", "model")
    requests = _by(results["requests_by_model"], "provider", "model")
    tokens_pm: dict[tuple[str, ...], float] = defaultdict(float)
    for (_, provider, model), tokens in tokens_spm.items():
        tokens_pm[provider, model] += tokens
    unit_costs = [
        ModelUnitCost(
            provider=key[0],
            model=key[1],
            cost_usd=usd,
            requests=requests.get(key, 0.0),
            tokens=tokens_pm.get(key, 0.0),
            per_request_usd=_ratio(usd, requests.get(key, 0.0)),
            per_1k_tokens_usd=_ratio(usd * 1000, tokens_pm.get(key, 0.0)),
        )
        for key, usd in sorted(cost_by_model.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    users = _costs(_by(results["cost_by_user"], "service", "user"))
    savings = _by(results["cache_savings_by_model"], "provider", "model")
    hours, days = hourly_and_daily(hourly, bucket_seconds(options.range_seconds))
    suggestions, none = suggest(
        judged_models(results["quality_sum"], results["quality_count"]),
        cost_spm,
        tokens_spm,
        options.tolerance,
        options.min_judged_samples,
    )
    return Report(
        range_seconds=options.range_seconds,
        at=at,
        total_cost_usd=sum(cost_by_model.values()),
        cost_by_model=_costs(cost_by_model),
        cost_by_service=_costs(_by(results["cost_by_service"], "service")),
        cost_by_user=users[: options.top_users],
        other_users=max(0, len(users) - options.top_users),
        cost_by_feature=_costs(_by(results["cost_by_feature"], "service", "feature")),
        cost_per_hour=hours,
        cost_per_day=days,
        unit_costs=unit_costs,
        cache_savings=_costs({k: v for k, v in savings.items() if v > 0}),
        total_cache_savings_usd=sum(savings.values()),
        unpriced=[
            Unpriced(provider, model, reason, calls)
            for (provider, model, reason), calls in sorted(
                _by(results["unpriced_by_model"], "provider", "model", "reason").items()
            )
            if calls > 0
        ],
        suggestions=suggestions,
        no_suggestions=none,
        tolerance=options.tolerance,
        min_judged_samples=options.min_judged_samples,
    )
