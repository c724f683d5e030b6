"""SLOs -> SLI recording rules and multiwindow, multi-burn-rate alerts.

The windows and budget shares are those of the Google SRE workbook (as in Sloth): a page when 2%
of the period's budget burns in 1h (checked over 1h and 5m) or 5% in 6h (6h and 30m); a ticket
when 10% burns in 1d (1d and 2h) or 10% in 3d (3d and 6h). The burn-rate factor of each follows
from `slo_period`: share x period / long window, i.e. 14.4x, 6x, 3x and 1x for 30 days, 3.36x,
1.4x, 0.7x and 0.233x for 7 days. The short window of each pair makes the alert stop soon after
the burn stops.
"""

from __future__ import annotations

from dataclasses import dataclass

from genai_otel import semconv as sc
from genai_otel.observability.alerts import Alert, num
from genai_otel.observability.recording import Recording
from genai_otel.observability.spec import SLO, Severity, Spec, seconds

SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnWindow:
    long: str
    short: str
    budget_share: float  # of the period's error budget, burnt within `long`

    def factor(self, period: str) -> float:
        """The burn rate that spends `budget_share` of a `period` budget within `long`."""
        return round(self.budget_share * seconds(period) / seconds(self.long), 6)


PAGE = (BurnWindow("1h", "5m", 0.02), BurnWindow("6h", "30m", 0.05))
TICKET = (BurnWindow("1d", "2h", 0.1), BurnWindow("3d", "6h", 0.1))


def sli_error_ratio(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"


def budget_remaining(period: str) -> str:
    return f"slo:period_error_budget_remaining:ratio_{period}"


def _error_ratio_expr(slo: SLO, window: str) -> str:
    # `(total > 0)`: no traffic gives no sample rather than 0/0, which would poison the
    # period average.
    if slo.kind == "availability":
        total = f"sum by (service) (rate({sc.PROM_LLM_REQUESTS}[{window}]))"
        errors = f'sum by (service) (rate({sc.PROM_LLM_REQUESTS}{{status="error"}}[{window}]))'
        # a service that never failed has no error series: count it as 0, not as missing
        return f"({errors} or {total} * 0) / ({total} > 0)"
    histogram = sc.PROM_LLM_REQUEST_DURATION
    good = f'sum by (service) (rate({histogram}_bucket{{le="{slo.threshold_seconds!r}"}}[{window}]))'
    total = f"sum by (service) (rate({histogram}_count[{window}]))"
    return f"1 - {good} / ({total} > 0)"


def slo_recordings(spec: Spec, slo: SLO) -> list[Recording]:
    labels = {"slo": slo.name}
    selector = f'{{slo="{slo.name}"}}'
    period = spec.slo_period
    rules = [Recording(sli_error_ratio(w), _error_ratio_expr(slo, w), labels) for w in SLI_WINDOWS]
    rules += [
        Recording(
            sli_error_ratio(period), f"avg_over_time({sli_error_ratio('5m')}{selector}[{period}])", labels
        ),
        Recording(OBJECTIVE, f"vector({num(slo.objective)})", labels),
        Recording(ERROR_BUDGET, f"vector({num(slo.error_budget)})", labels),
        Recording(
            budget_remaining(period),
            f"1 - {sli_error_ratio(period)}{selector} / {num(slo.error_budget)}",
            labels,
        ),
    ]
    return rules


def _burn_condition(slo: SLO, windows: tuple[BurnWindow, ...], period: str) -> str:
    selector = f'{{slo="{slo.name}"}}'
    branches = []
    for window in windows:
        threshold = num(window.factor(period) * slo.error_budget)
        branches.append(
            f"(\n  {sli_error_ratio(window.long)}{selector} > {threshold}\n"
            f"  and\n  {sli_error_ratio(window.short)}{selector} > {threshold}\n)"
        )
    return "\nor\n".join(branches) + "\n"


def alert_name(slo: SLO) -> str:
    return f"LLM{slo.name.title().replace('_', '')}BudgetBurn"


def slo_alerts(spec: Spec, slo: SLO) -> list[Alert]:
    name = alert_name(slo)
    objective = f"{num(slo.objective * 100)}%"
    alerts = []
    for severity, windows, default_pending, pace in (
        (Severity.CRITICAL, PAGE, "2m", "fast"),
        (Severity.HIGH, TICKET, "15m", "steadily"),
    ):
        alerts.append(
            Alert(
                name,
                severity,
                _burn_condition(slo, windows, spec.slo_period),
                spec.pending.get(f"{name}:{severity}", spec.pending.get(name, default_pending)),
                f"The {slo.name} SLO's error budget is burning {pace}",
                f"{{{{ $labels.service }}}}: {slo.description} "
                "The error ratio over the alert's long window is "
                f"{{{{ $value | humanizePercentage }}}}, which would exhaust the {spec.slo_period} budget "
                f"(objective {objective}) early.",
                {"slo": slo.name},
            )
        )
    return alerts
