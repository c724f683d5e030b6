"""The SLO and alert-threshold spec (`prometheus/slos.yaml`): one typed model, validated on load.

Defaults live only in this model. The daily cost budget falls back to `DAILY_COST_BUDGET_USD`
from the repository's `.env`, so compose, the local stack and the rules share one number.
Tests derive variants with `Spec.model_copy(update=...)` or `with_overrides` (tiny budgets,
short pending periods) and render them into a scratch rules directory.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from genai_otel import semconv

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO_ROOT / "prometheus" / "slos.yaml"
BUDGET_ENV_KEY = "DAILY_COST_BUDGET_USD"

_DURATION = re.compile(r"^(\d+[smhdwy])+$")


class SpecError(ValueError):
    """The spec file is invalid; the message names the key, the value and the rule."""


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
LONGEST_BURN_WINDOW = "3d"  # slo.TICKET's longest window: the period must hold it


def seconds(duration: str) -> int:
    """A Prometheus duration (`30d`, `6h`, `1w2d`) in seconds."""
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"(\d+)([smhdwy])", duration))


def check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"{value!r} is not a Prometheus duration such as 5m, 1h or 30d")
    return value


class SLO(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["availability", "latency"]
    objective: float = Field(gt=0, lt=1)
    description: str
    threshold_seconds: float | None = None

    @model_validator(mode="after")
    def _latency_needs_a_bucket(self) -> SLO:
        if self.kind == "latency":
            if self.threshold_seconds not in semconv.DURATION_BUCKETS:
                raise ValueError(
                    f"slos.{self.name}.threshold_seconds={self.threshold_seconds!r}: a latency SLO "
                    f"needs a bucket boundary of {semconv.PROM_LLM_REQUEST_DURATION}, "
                    f"one of {semconv.DURATION_BUCKETS}"
                )
        elif self.threshold_seconds is not None:
            raise ValueError(f"slos.{self.name}.threshold_seconds: only latency SLOs take a threshold")
        return self

    @property
    def error_budget(self) -> float:
        return round(1 - self.objective, 10)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    error_ratio_high: float = Field(default=0.05, gt=0, lt=1)
    error_ratio_critical: float = Field(default=0.25, gt=0, lt=1)
    latency_p95_seconds: float = Field(default=5.0, gt=0)
    time_to_first_chunk_p95_seconds: float = Field(default=2.0, gt=0)
    daily_cost_budget_usd: float | None = Field(default=None, gt=0)
    cost_per_request_budget_usd: float = Field(default=0.5, gt=0)
    cost_spike_factor: float = Field(default=2.0, gt=1)
    cost_spike_min_usd_per_hour: float = Field(default=1.0, ge=0)
    token_spike_factor: float = Field(default=3.0, gt=1)
    token_spike_min_per_second: float = Field(default=10.0, ge=0)
    rate_limit_ratio: float = Field(default=0.1, gt=0, lt=1)
    user_daily_budget_usd: float = Field(default=10.0, gt=0)
    quality_score_min: float = Field(default=7.0, gt=0, le=10)
    quality_drift: float = Field(default=0.3, gt=0, le=10)
    hallucination_ratio: float = Field(default=0.02, gt=0, lt=1)
    hallucination_min_evaluations: int = Field(default=20, ge=1)
    content_filter_ratio: float = Field(default=0.05, gt=0, lt=1)
    invalid_span_ratio: float = Field(default=0.01, gt=0, lt=1)
    queue_fill_ratio: float = Field(default=0.8, gt=0, le=1)
    # LLMToolErrorRateHigh: share of a tool's calls failing, over at least this many calls in 5 minutes
    tool_error_ratio: float = Field(default=0.1, gt=0, lt=1)
    tool_error_min_calls: float = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _critical_above_high(self) -> Thresholds:
        if self.error_ratio_critical <= self.error_ratio_high:
            raise ValueError(
                f"thresholds.error_ratio_critical={self.error_ratio_critical}: must be above "
                f"error_ratio_high={self.error_ratio_high}"
            )
        return self


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    runbook_url: str = "docs/runbook.md"
    slo_period: str = "30d"
    slos: tuple[SLO, ...] = ()
    thresholds: Thresholds = Field(default_factory=Thresholds)
    pending: dict[str, str] = Field(default_factory=dict, alias="for")

    @field_validator("slo_period")
    @classmethod
    def _period_is_duration(cls, value: str) -> str:
        check_duration(value)
        if seconds(value) < seconds(LONGEST_BURN_WINDOW):
            raise ValueError(
                f"{value!r} is shorter than the longest burn-rate window ({LONGEST_BURN_WINDOW})"
            )
        return value

    @field_validator("pending")
    @classmethod
    def _pending_are_durations(cls, value: dict[str, str]) -> dict[str, str]:
        for name, duration in value.items():
            try:
                check_duration(duration)
            except ValueError as exc:
                raise ValueError(f"for.{name}: {exc}") from None
        return value

    @field_validator("slos")
    @classmethod
    def _unique_slo_names(cls, value: tuple[SLO, ...]) -> tuple[SLO, ...]:
        names = [slo.name for slo in value]
        if len(names) != len(set(names)):
            raise ValueError(f"SLO names must be unique, got {names}")
        return value

    @property
    def daily_cost_budget_usd(self) -> float:
        budget = self.thresholds.daily_cost_budget_usd
        if budget is None:
            raise SpecError(f"thresholds.daily_cost_budget_usd is unset and {BUDGET_ENV_KEY} was not given")
        return budget

    def with_overrides(self, *, pending: dict[str, str] | None = None, **thresholds: Any) -> Spec:
        """A copy with some thresholds and pending periods replaced (validated again)."""
        data = self.model_dump(by_alias=True)
        data["thresholds"].update(thresholds)
        data["for"].update(pending or {})
        return Spec.model_validate(data)


def load_spec(path: Path = SPEC_FILE, env: dict[str, str] | None = None) -> Spec:
    """Load and validate the spec; an unset daily budget is taken from `.env` (or `env`)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    thresholds = raw.setdefault("thresholds", {}) or {}
    raw["thresholds"] = thresholds
    if thresholds.get("daily_cost_budget_usd") is None:
        if env is None:
            from genai_otel.stack.env import settings

            env = settings()
        if env.get(BUDGET_ENV_KEY):
            try:
                thresholds["daily_cost_budget_usd"] = float(env[BUDGET_ENV_KEY])
            except ValueError:
                raise SpecError(
                    f"{BUDGET_ENV_KEY}={env[BUDGET_ENV_KEY]!r}: expected a number of US dollars"
                ) from None
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}={error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise SpecError(f"{path}: {problems}") from None
