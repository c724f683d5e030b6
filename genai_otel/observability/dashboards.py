"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6 schema).

Every panel has a title, a unit and a description, queries only the provisioned Prometheus
datasource (uid `DATASOURCE_PROMETHEUS`) and reads recorded series where one exists. Panels are
filtered by the `service`, `provider` and `model` template variables. Latency panels ask for
exemplars, which link to traces in the provisioned Jaeger datasource.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.builders import prometheus as gprom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from genai_otel import semconv as sc
from genai_otel.observability import recording as rec
from genai_otel.observability import slo
from genai_otel.observability.alerts import COLLECTOR_JOB, PROCESSOR_JOB, num
from genai_otel.observability.spec import Spec

# Fixed uids: grafana/provisioning/datasources/datasources.yaml declares exactly these.
DATASOURCE_PROMETHEUS = "genai-otel-prometheus"
DATASOURCE_JAEGER = "genai-otel-jaeger"
PROMETHEUS = models.DataSourceRef(type_val="prometheus", uid=DATASOURCE_PROMETHEUS)

GENERATED_NOTE = "generated — do not edit: genai_otel/observability/dashboards.py, `genai-otel generate`"
VARIABLES = ("service", "provider", "model")
F = 'service=~"$service", provider=~"$provider", model=~"$model"'
S = 'service=~"$service"'
PM = 'provider=~"$provider", model=~"$model"'
BILLED = 'token_type=~"input|output"'

PanelKind = Callable[[], Any]
KINDS: dict[str, PanelKind] = {
    "timeseries": timeseries.Panel,
    "stat": stat.Panel,
    "bargauge": bargauge.Panel,
    "table": table.Panel,
}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    kind: str
    title: str
    unit: str
    description: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[float, str], ...] = field(default=())

    @property
    def instant(self) -> bool:
        return self.kind != "timeseries"


@dataclass(frozen=True)
class Row:
    """A row header: the panels after it, up to the next row, belong to it."""

    title: str


Item = Panel | Row


def q(expr: str, legend: str = "", *, exemplar: bool = False) -> Query:
    return Query(expr, legend, exemplar)


def _p(kind: str, title: str, unit: str, description: str, *queries: Query, **layout: Any) -> Panel:
    return Panel(kind, title, unit, description, tuple(queries), **layout)


def _quantile(q_: str, buckets: str, where: str = F) -> str:
    return f"histogram_quantile({q_}, sum by (le) ({buckets}{{{where}}}))"


def _requests(where: str = F) -> str:
    return f"sum({rec.REQUESTS_RATE5M}{{{where}}})"


def _spend_24h() -> str:
    return f"sum({rec.COST_INCREASE1D}{{{F}}})"


def _budget_steps(budget: float) -> tuple[tuple[float, str], ...]:
    return ((0.0, "green"), (0.8 * budget, "orange"), (budget, "red"))


# --- the dashboards ---------------------------------------------------------------------------
def overview(spec: Spec) -> list[Panel]:
    errors = f"(sum({rec.ERRORS_RATE5M}{{{F}}}) or vector(0))"
    return [
        _p("stat", "Calls per second", "reqps", "LLM calls per second over the last 5 minutes.",
           q(_requests()), width=6, height=4),
        _p("stat", "Error ratio", "percentunit", "Share of LLM calls that failed over the last 5 minutes.",
           q(f"{errors} / {_requests()}"), width=6, height=4,
           thresholds=((0.0, "green"), (spec.thresholds.error_ratio_high, "red"))),
        _p("stat", "Spend, last 24 hours", "currencyUSD",
           "Cost of LLM calls over the last 24 hours, against the daily budget.",
           q(_spend_24h()), width=6, height=4, thresholds=_budget_steps(spec.daily_cost_budget_usd)),
        _p("stat", "p95 call duration", "s", "95th percentile of LLM call duration over the last 5 minutes.",
           q(_quantile("0.95", rec.DURATION_BUCKET_RATE5M)), width=6, height=4,
           thresholds=((0.0, "green"), (spec.thresholds.latency_p95_seconds, "red"))),
        _p("timeseries", "Calls per second by model", "reqps",
           "LLM calls per second, per provider and model.",
           q(f"sum by (provider, model) ({rec.REQUESTS_RATE5M}{{{F}}})", "{{provider}} {{model}}")),
        _p("timeseries", "Spend per hour by model", "currencyUSD",
           "Cost of LLM calls at the current 5-minute pace, as US dollars per hour.",
           q(f"sum by (provider, model) ({rec.COST_RATE5M}{{{F}}}) * 3600", "{{provider}} {{model}}")),
        _p("timeseries", "Tokens per second by type", "short",
           "Tokens per second; input includes cache reads and writes, output includes reasoning.",
           q(f"sum by (token_type) ({rec.TOKENS_RATE5M}{{{F}}})", "{{token_type}}")),
        _p("timeseries", "Error ratio by model", "percentunit",
           "Share of failed calls per service, provider and model over the last 5 minutes.",
           q(f"{rec.ERROR_RATIO_RATE5M}{{{F}}}", "{{service}} {{provider}} {{model}}")),
        _p("stat", "Firing alerts", "short", "genai-otel alerts firing now, by severity (0 when none).",
           q('sum by (severity) (ALERTS{alertstate="firing"}) or vector(0)', "{{severity}}"),
           width=24, height=4),
    ]  # fmt: skip


def cost(spec: Spec) -> list[Panel]:
    per_hour = "US dollars per hour at the current 5-minute pace"
    return [
        _p("stat", "Spend, last 24 hours", "currencyUSD", "Cost of LLM calls over the last 24 hours.",
           q(_spend_24h()), width=6, height=4, thresholds=_budget_steps(spec.daily_cost_budget_usd)),
        _p("stat", "Projected month spend", "currencyUSD",
           "The last 24 hours' spend times the days of this month: the month's bill at today's pace.",
           q(f"{_spend_24h()} * scalar(days_in_month())"), width=6, height=4,
           thresholds=_budget_steps(spec.daily_cost_budget_usd * 30)),
        _p("stat", "Cost per call", "currencyUSD", "Average cost of one LLM call over the last 5 minutes.",
           q(f"sum({rec.COST_RATE5M}{{{F}}}) / {_requests()}"), width=6, height=4),
        _p("stat", "Cost per 1k tokens", "currencyUSD",
           "Average cost of 1000 input and output tokens over the last 5 minutes.",
           q(f"sum({rec.COST_RATE5M}{{{F}}}) / sum({rec.TOKENS_RATE5M}{{{F}, {BILLED}}}) * 1000"),
           width=6, height=4),
        _p("timeseries", "Spend per hour by provider", "currencyUSD", f"Cost per provider, {per_hour}.",
           q(f"sum by (provider) ({rec.COST_RATE5M}{{{F}}}) * 3600", "{{provider}}")),
        _p("timeseries", "Spend per hour by model", "currencyUSD", f"Cost per model, {per_hour}.",
           q(f"sum by (provider, model) ({rec.COST_RATE5M}{{{F}}}) * 3600", "{{provider}} {{model}}")),
        _p("timeseries", "Spend per hour by service", "currencyUSD", f"Cost per service, {per_hour}.",
           q(f"sum by (service) ({rec.COST_RATE5M}{{{F}}}) * 3600", "{{service}}")),
        _p("bargauge", "Spend per day by model", "currencyUSD", "Cost per model over the last 24 hours.",
           q(f"sum by (provider, model) ({rec.COST_INCREASE1D}{{{F}}})", "{{provider}} {{model}}")),
        _p("timeseries", "Spend per hour by user", "currencyUSD",
           f"Cost of the top users, {per_hour}; users beyond the processor's top-N are summed as 'other'.",
           q(f"topk(10, sum by (user) ({rec.USER_COST_RATE5M}{{{S}}}) * 3600)", "{{user}}")),
        _p("timeseries", "Spend per hour by feature", "currencyUSD",
           f"Cost per application feature, {per_hour}; rare features are summed as 'other'.",
           q(f"sum by (feature) ({rec.FEATURE_COST_RATE5M}{{{S}}}) * 3600", "{{feature}}")),
        _p("timeseries", "Spend per hour by token type", "currencyUSD",
           f"Cost split into uncached input, output, cache reads and cache writes, {per_hour}.",
           q(f"sum by (cost_type) ({rec.COST_BREAKDOWN_RATE5M}{{{F}}}) * 3600", "{{cost_type}}")),
        _p("timeseries", "Cache savings per hour", "currencyUSD",
           f"What cache reads saved against the uncached input price, {per_hour}.",
           q(f"sum by (provider, model) ({rec.CACHE_SAVINGS_RATE5M}{{{F}}}) * 3600",
             "{{provider}} {{model}}")),
        _p("timeseries", "Cost per call by model", "currencyUSD",
           "Mean cost of one priced call per model over the last 5 minutes.",
           q(f"{rec.COST_PER_REQUEST_MEAN5M}{{{F}}}", "{{service}} {{provider}} {{model}}"),
           thresholds=((0.0, "green"), (spec.thresholds.cost_per_request_budget_usd, "red"))),
        _p("timeseries", "Spend per hour against last week", "currencyUSD",
           "Hourly spend per service now and in the same hour a week earlier (the cost-spike alert's view).",
           q(f"{rec.SERVICE_COST_RATE1H}{{{S}}} * 3600", "{{service}} now"),
           q(f"{rec.SERVICE_COST_RATE1H}{{{S}}} offset 1w * 3600", "{{service}} a week ago")),
        _p("table", "Unpriced calls, last hour", "short",
           "Calls the processor could not price, per provider, model and reason; they are missing from cost.",
           q(f"sum by (provider, model, reason) ({rec.UNPRICED_INCREASE1H}{{{PM}}})"), width=12),
        _p("table", "Calls with incomplete usage, last hour", "short",
           "Calls whose instrumentation is known to report part of the usage (e.g. OpenLIT's Anthropic "
           "streams without cache tokens): their cost is a lower bound.",
           q(f"sum by (provider, model) (increase({sc.PROM_LLM_USAGE_INCOMPLETE}{{{F}}}[1h]))"), width=12),
    ]  # fmt: skip


def latency_slo(spec: Spec) -> list[Panel]:
    panels = [
        _p(
            "timeseries",
            "Call duration p50, p95, p99",
            "s",
            "Percentiles of LLM call duration over the last 5 minutes, all selected models together.",
            *(q(_quantile(x, rec.DURATION_BUCKET_RATE5M), f"p{x[2:].ljust(2, '0')}") for x in rec.QUANTILES),
        ),
        _p(
            "timeseries",
            "p95 call duration by model",
            "s",
            "95th percentile of call duration per model.",
            q(f'{rec.DURATION_QUANTILE5M}{{{F}, quantile="0.95"}}', "{{service}} {{provider}} {{model}}"),
            thresholds=((0.0, "green"), (spec.thresholds.latency_p95_seconds, "red")),
        ),
        _p(
            "timeseries",
            "Slow calls, with traces",
            "s",
            "p95 call duration from the raw histogram; exemplar dots link to the call's trace in Jaeger.",
            q(
                "histogram_quantile(0.95, sum by (le) "
                f"(rate({sc.PROM_LLM_REQUEST_DURATION}_bucket{{{F}}}[5m])))",
                "p95",
                exemplar=True,
            ),
        ),
        _p(
            "timeseries",
            "Time to first chunk p50, p95, p99",
            "s",
            "How long streaming calls wait for their first chunk, over the last 5 minutes.",
            *(q(_quantile(x, rec.TTFC_BUCKET_RATE5M), f"p{x[2:].ljust(2, '0')}") for x in rec.QUANTILES),
        ),
        _p(
            "timeseries",
            "Output tokens per second (median)",
            "short",
            "Median generation speed per model: output tokens divided by the call's duration.",
            q(f"{rec.TOKENS_PER_SECOND_QUANTILE5M}{{{F}}}", "{{service}} {{provider}} {{model}}"),
            width=24,
        ),
    ]
    period = spec.slo_period
    for objective in spec.slos:
        where = f'slo="{objective.name}", {S}'
        panels += [
            _p("stat", f"Error budget remaining: {objective.name}", "percentunit",
               f"Share of the {period} error budget left per service. {objective.description}",
               q(f"{slo.budget_remaining(period)}{{{where}}}", "{{service}}"), width=8,
               thresholds=((0.0, "red"), (0.25, "orange"), (0.5, "green"))),
            _p("timeseries", f"Burn rate: {objective.name}", "short",
               "How many times faster than sustainable the error budget burns (1 = exactly used up at the "
               f"end of {period}); the page threshold is 14.4 over 1h, the ticket threshold 3 over 1d.",
               *(q(f"{slo.sli_error_ratio(w)}{{{where}}} / on(slo) group_left {slo.ERROR_BUDGET}",
                   f"{{{{service}}}} {w}") for w in ("5m", "1h", "6h", "1d")), width=16),
        ]  # fmt: skip
    return panels


def errors(spec: Spec) -> list[Panel]:
    spm = "service, provider, model"
    requests = f"sum by ({spm}) ({rec.REQUESTS_RATE5M}{{{F}}})"
    rate_limited = f'sum by ({spm}) ({rec.ERRORS_RATE5M}{{{F}, error_type="{sc.ErrorCategory.RATE_LIMIT}"}})'
    return [
        _p("timeseries", "Errors per second by category", "reqps",
           "Failed calls per second by error category (rate_limit, timeout, provider_down, ...).",
           q(f"sum by (error_type) ({rec.ERRORS_RATE5M}{{{F}}})", "{{error_type}}")),
        _p("timeseries", "Error ratio by model", "percentunit",
           "Share of failed calls per service, provider and model over the last 5 minutes.",
           q(f"{rec.ERROR_RATIO_RATE5M}{{{F}}}", "{{service}} {{provider}} {{model}}"),
           thresholds=((0.0, "green"), (spec.thresholds.error_ratio_high, "red"))),
        _p("timeseries", "Rate-limited share by model", "percentunit",
           "Share of calls refused by the provider's rate limits (0 when none were).",
           q(f"({rate_limited} or {requests} * 0) / {requests}", "{{service}} {{provider}} {{model}}"),
           thresholds=((0.0, "green"), (spec.thresholds.rate_limit_ratio, "red"))),
        _p("bargauge", "Errors by category, last 24 hours", "short",
           "Failed calls per error category over the last 24 hours.",
           q(f'sum by (error_type) (increase({sc.PROM_LLM_REQUESTS}{{{F}, status="error"}}[1d]))',
             "{{error_type}}")),
        _p("table", "Error ratio by service, provider and model", "percentunit",
           "Share of failed calls over the last 5 minutes, per service, provider and model.",
           q(f"{rec.ERROR_RATIO_RATE5M}{{{F}}}"), width=24),
    ]  # fmt: skip


def quality(spec: Spec) -> list[Item]:
    score = sc.PROM_LLM_QUALITY_SCORE
    minimum = spec.thresholds.quality_score_min
    return [
        Row("Judge scores"),
        _p("timeseries", "Mean judge score (1 hour)", "short",
           f"Mean evaluation score (0-10) per model and evaluation over the last hour; target {minimum:g}.",
           q(f"{rec.QUALITY_MEAN1H}{{{F}}}", "{{model}} {{evaluation}}"),
           thresholds=((0.0, "red"), (minimum, "green"))),
        _p("timeseries", "Mean judge score, today and yesterday", "short",
           "The daily mean score now and 24 hours earlier: the drift alert compares these two.",
           q(f"{rec.QUALITY_MEAN1D}{{{F}}}", "{{model}} {{evaluation}} today"),
           q(f"{rec.QUALITY_MEAN1D}{{{F}}} offset 1d", "{{model}} {{evaluation}} yesterday")),
        _p("timeseries", "Score drift: last hour against last day", "short",
           "Mean score of the last hour minus the mean of the last 24 hours; a fast drift shows here first.",
           q(f"{rec.QUALITY_MEAN1H}{{{F}}} - {rec.QUALITY_MEAN1D}{{{F}}}", "{{model}} {{evaluation}}"),
           width=8),
        _p("stat", "Share of scores below target", "percentunit",
           f"Share of judged responses scoring {minimum:g} or less over the last hour.",
           q(f'sum(rate({score}_bucket{{{F}, le=~"{minimum:g}(\\\\.0)?"}}[1h]))'
             f" / sum(rate({score}_count{{{F}}}[1h]))"),
           width=8),
        _p("timeseries", "Judged responses per hour", "short",
           "Responses scored per hour, per evaluation (the judge scores a sample of responses).",
           q(f"sum by (evaluation) (rate({score}_count{{{F}}}[1h])) * 3600", "{{evaluation}}"), width=8),
        Row("Safety: hallucination, toxicity, content filter"),
        *safety(spec),
    ]  # fmt: skip


def safety(spec: Spec) -> list[Panel]:
    t = spec.thresholds
    spm = "{{service}} {{provider}} {{model}}"

    def flagged(evaluation: str) -> str:
        return f'{rec.SAFETY_FLAGGED_RATIO_RATE1H}{{{F}, evaluation="{evaluation}"}}'

    return [
        _p("timeseries", "Hallucination rate by model", "percentunit",
           f"Share of responses judged by a '{sc.EVALUATION_HALLUCINATION}' evaluation over the last hour "
           f"that were flagged; the alert fires above {num(t.hallucination_ratio * 100)}% once at least "
           f"{t.hallucination_min_evaluations} responses were judged in the hour.",
           q(flagged(sc.EVALUATION_HALLUCINATION), spm), width=8,
           thresholds=((0.0, "green"), (t.hallucination_ratio, "red"))),
        _p("timeseries", "Toxicity rate by model", "percentunit",
           f"Share of the responses judged by a '{sc.EVALUATION_TOXICITY}' evaluation over the last hour "
           "that were flagged.",
           q(flagged(sc.EVALUATION_TOXICITY), spm), width=8),
        _p("timeseries", "Content-filter block rate by model", "percentunit",
           "Share of calls the provider's content filter refused (error_type content_filter) over the last "
           f"5 minutes; the alert fires above {num(t.content_filter_ratio * 100)}%.",
           q(f"{rec.CONTENT_FILTER_RATIO_RATE5M}{{{F}}}", spm), width=8,
           thresholds=((0.0, "green"), (t.content_filter_ratio, "red"))),
        _p("timeseries", "Safety results per hour", "short",
           "Safety evaluation results (judged responses) over the last hour, per evaluation: the rates above "
           "rest on these counts.",
           q(f"sum by (evaluation) ({rec.SAFETY_EVALUATIONS_INCREASE1H}{{{F}}})", "{{evaluation}}"),
           width=24, height=6),
    ]  # fmt: skip


def agents_row(spec: Spec) -> list[Panel]:
    """Agents and tools (execute_tool, invoke_agent and apply_guardrail spans): a row of the overview."""
    return [
        _p("timeseries", "Tool calls per second by tool", "reqps",
           "Tools run per second (an agent's function tools, MCP tools), per service and tool.",
           q(f"sum by (service, tool) ({rec.TOOL_CALLS_RATE5M}{{{S}}})", "{{service}} {{tool}}"), width=8),
        _p("timeseries", "Tool error ratio by tool", "percentunit",
           "Share of a tool's calls that failed over the last 5 minutes.",
           q(f"{rec.TOOL_ERROR_RATIO_RATE5M}{{{S}}}", "{{service}} {{tool}}"), width=8,
           thresholds=((0.0, "green"), (spec.thresholds.tool_error_ratio, "red"))),
        _p("timeseries", "Agent runs per second by agent", "reqps",
           "Agent invocations per second, per service, agent and outcome (handoffs start a run each).",
           q(f"sum by (service, agent, status) ({rec.AGENT_RUNS_RATE5M}{{{S}}})",
             "{{service}} {{agent}} {{status}}"), width=8),
        _p("timeseries", "Tool executions served per second by tool", "reqps",
           "Tools this service served per second (an MCP server's tools/call), whoever called them: "
           "a call from an instrumented client is also in Tool calls, on the client's service.",
           q(f"sum by (service, tool) ({rec.TOOL_EXECUTIONS_RATE5M}{{{S}}})", "{{service}} {{tool}}"),
           width=6),
        _p("timeseries", "Served tool error ratio by tool", "percentunit",
           "Share of the executions a service served that failed over the last 5 minutes.",
           q(f"{rec.TOOL_EXECUTION_ERROR_RATIO_RATE5M}{{{S}}}", "{{service}} {{tool}}"), width=6,
           thresholds=((0.0, "green"), (spec.thresholds.tool_error_ratio, "red"))),
        _p("timeseries", "Guardrail verdicts and trips per second", "reqps",
           "Guardrail evaluations with a verdict per second, and those whose tripwire triggered, "
           "per service and guardrail.",
           q(f"sum by (service, guardrail) ({rec.GUARDRAIL_EVALUATIONS_RATE5M}{{{S}}})",
             "verdicts {{service}} {{guardrail}}"),
           q(f"sum by (service, guardrail) ({rec.GUARDRAIL_TRIPS_RATE5M}{{{S}}})",
             "trips {{service}} {{guardrail}}"), width=6),
        _p("timeseries", "Guardrail trip ratio by guardrail", "percentunit",
           "Share of a guardrail's verdicts that tripped (stopped the run) over the last 5 minutes.",
           q(f"{rec.GUARDRAIL_TRIP_RATIO_RATE5M}{{{S}}}", "{{service}} {{guardrail}}"), width=6),
        _p("timeseries", "Agent run duration p50 / p95", "s",
           "Percentiles of an agent run's duration (its model calls and tools inside) over 5 minutes.",
           q(f'{rec.AGENT_RUN_QUANTILE5M}{{{S}, quantile="0.5"}}', "p50 {{service}} {{agent}}"),
           q(f'{rec.AGENT_RUN_QUANTILE5M}{{{S}, quantile="0.95"}}', "p95 {{service}} {{agent}}"), width=24),
    ]  # fmt: skip


def _collector(counter: str) -> str:
    """A collector counter whichever way its telemetry is exposed (with or without `_total`)."""
    return f'{{__name__=~"otelcol_{counter}(_total)?"}}'


def pipeline(spec: Spec) -> list[Panel]:
    lost = "0 when nothing was lost"
    return [
        _p("stat", "Processor up", "short", "1 when Prometheus can scrape the genai-otel processor.",
           q(f'up{{job="{PROCESSOR_JOB}"}}', "{{instance}}"), width=6, height=4,
           thresholds=((0.0, "red"), (1.0, "green"))),
        _p("stat", "Collector up", "short", "1 when Prometheus can scrape the collector's own telemetry.",
           q(f'up{{job="{COLLECTOR_JOB}"}}', "{{instance}}"), width=6, height=4,
           thresholds=((0.0, "red"), (1.0, "green"))),
        _p("stat", "Processor queue fill", "percentunit", "How full the processor's forwarding queue is.",
           q(f"{rec.QUEUE_FILL_RATIO}"), width=6, height=4,
           thresholds=((0.0, "green"), (spec.thresholds.queue_fill_ratio, "red"))),
        _p("stat", "Rule evaluation failures", "short",
           "Prometheus rule evaluations that failed over the last 5 minutes (0 when all succeeded).",
           q("sum(increase(prometheus_rule_evaluation_failures_total[5m])) or vector(0)"), width=6, height=4),
        _p("timeseries", "Spans received and forwarded", "short",
           "Spans per second the processor receives from the collector and forwards after enrichment.",
           q(rec.RECEIVED_RATE5M, "received"), q(rec.FORWARDED_RATE5M, "forwarded")),
        _p("timeseries", "Spans lost by reason", "short",
           f"Spans per second the processor rejected as invalid or dropped, by reason ({lost}).",
           q(f'sum by (reason) ({rec.INVALID_RATE5M}) or vector(0)', "invalid {{reason}}"),
           q(f'sum by (reason) ({rec.DROPPED_RATE5M}) or vector(0)', "dropped {{reason}}")),
        _p("timeseries", "Export failures and rejected requests", "short",
           f"Forwarding failures and export requests refused for backpressure, per second ({lost}).",
           q(f'sum by (reason) ({rec.EXPORT_FAILURES_RATE5M}) or vector(0)', "export failed {{reason}}"),
           q(f'sum by (reason) ({rec.REJECTED_RATE5M}) or vector(0)', "rejected {{reason}}")),
        _p("timeseries", "Collector spans accepted and refused", "short",
           "Spans per second the collector's receivers accepted and refused.",
           q(f"sum(rate({_collector('receiver_accepted_spans')}[5m]))", "accepted"),
           q(f"sum(rate({_collector('receiver_refused_spans')}[5m])) or vector(0)", "refused")),
        _p("timeseries", "Second spans of one call", "short",
           "Spans per second found to describe a call another instrumentation's span was counted for "
           "(not counted again), by the two scopes.",
           q(f"sum by (counted_scope, duplicate_scope) (rate({sc.PROM_PROCESSOR_DUPLICATE_SPANS}[5m]))",
             "{{duplicate_scope}} after {{counted_scope}}")),
    ]  # fmt: skip


@dataclass(frozen=True)
class DashboardDef:
    uid: str
    title: str
    purpose: str
    panels: Callable[[Spec], list[Panel]] | Callable[[Spec], list[Item]]
    # collapsible rows after the panels: (title, their panels)
    rows: tuple[tuple[str, Callable[[Spec], list[Panel]]], ...] = ()


DASHBOARDS = (
    DashboardDef("genai-otel-overview", "GenAI: Overview",
                 "Calls, spend, latency and errors at a glance.", overview,
                 rows=(("Agents and tools", agents_row),)),
    DashboardDef("genai-otel-cost", "GenAI: Cost",
                 "Spend by provider, model, service, user and feature.", cost),
    DashboardDef("genai-otel-latency-slo", "GenAI: Latency & SLO",
                 "Latency percentiles, time to first chunk, generation speed, error budgets and burn rates.",
                 latency_slo),
    DashboardDef("genai-otel-errors", "GenAI: Errors", "Failed LLM calls by category and model.", errors),
    DashboardDef("genai-otel-quality", "GenAI: Quality & drift",
                 "LLM-as-judge scores and their drift over time; hallucination, toxicity and content-filter "
                 "rates.", quality),
    DashboardDef("genai-otel-pipeline", "GenAI: Pipeline health",
                 "The collector, the genai-otel processor and Prometheus itself.", pipeline),
)  # fmt: skip


def _variable(name: str, previous: list[str]) -> gdash.QueryVariable:
    scope = ", ".join(f'{p}=~"${p}"' for p in previous)
    return (
        gdash.QueryVariable(name)
        .label(name.capitalize())
        .datasource(PROMETHEUS)
        .query(f"label_values({sc.PROM_LLM_REQUESTS}{{{scope}}}, {name})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .current(models.VariableOption(selected=True, text="All", value="$__all"))
    )


def _panel(panel: Panel, panel_id: int) -> Any:
    builder = (
        KINDS[panel.kind]()
        .id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(PROMETHEUS)
        .span(panel.width)
        .height(panel.height)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        target = gprom.Dataquery().ref_id(ref).expr(query.expr).datasource(PROMETHEUS)
        target = target.legend_format(query.legend or "__auto")
        target = target.instant() if panel.instant else target.range()
        if query.exemplar:
            target = target.exemplar(True)
        builder = builder.with_target(target)
    if panel.thresholds:
        steps = [
            models.Threshold(value=None if i == 0 else value, color=color)
            for i, (value, color) in enumerate(panel.thresholds)
        ]
        builder = builder.thresholds(
            gdash.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(steps)
        )
    return builder


def build(definition: DashboardDef, spec: Spec) -> models.Dashboard:
    builder = (
        gdash.Dashboard(definition.title)
        .uid(definition.uid)
        .description(f"{definition.purpose} ({GENERATED_NOTE})")
        .tags(["genai-otel", "generated"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
    )
    for index, name in enumerate(VARIABLES):
        builder = builder.with_variable(_variable(name, list(VARIABLES[:index])))
    panel_id = 0
    for panel_id, item in enumerate(definition.panels(spec), start=1):
        if isinstance(item, Row):
            builder = builder.with_row(gdash.Row(item.title).id(panel_id))
        else:
            builder = builder.with_panel(_panel(item, panel_id))
    for title, row_panels in definition.rows:
        panel_id += 1
        builder = builder.with_row(gdash.Row(title).id(panel_id))
        for panel in row_panels(spec):
            panel_id += 1
            builder = builder.with_panel(_panel(panel, panel_id))
    return builder.build()


def to_json(dashboard: models.Dashboard) -> str:
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dashboard_files(spec: Spec) -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    return {f"{d.uid}.json": to_json(build(d, spec)) for d in DASHBOARDS}
