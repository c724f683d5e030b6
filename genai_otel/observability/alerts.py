"""Alert rules, from the thresholds in the spec. Each alert has a runbook section in docs/runbook.md.

Conventions (STYLE 13): CamelCase names, a `severity` label (critical | high | medium | low), an
explicit `for`, a static `summary`, a templated `description` and a `runbook_url` whose anchor is
the lower-cased alert name. Where one alert name has two severities, Alertmanager's inhibition
lets the more severe one silence the other (same alertname and labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genai_otel import semconv as sc
from genai_otel.observability import recording as rec
from genai_otel.observability.spec import Severity, Spec

PROCESSOR_JOB = "genai-otel-processor"
COLLECTOR_JOB = "otel-collector"
SPM_TEXT = "{{ $labels.service }} / {{ $labels.provider }} / {{ $labels.model }}"


def num(value: float) -> str:
    """A threshold as PromQL and people write it: 0.05, 100, 0.144 (no float noise)."""
    text = repr(round(float(value), 10))
    return text.removesuffix(".0")


@dataclass(frozen=True)
class Alert:
    name: str
    severity: Severity
    expr: str
    pending: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        return self.name.lower()

    def as_rule(self, runbook_url: str) -> dict[str, object]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.pending,
            "labels": {"severity": str(self.severity), **self.labels},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_url}#{self.anchor}",
            },
        }


def _pending(spec: Spec, name: str, default: str) -> str:
    return spec.pending.get(name, default)


def llm_alerts(spec: Spec) -> list[Alert]:
    t = spec.thresholds
    spm = SPM_TEXT
    alerts = [
        Alert(
            "LLMErrorRateHigh",
            severity,
            f"{rec.ERROR_RATIO_RATE5M} > {num(ratio)}",
            _pending(spec, "LLMErrorRateHigh", "5m"),
            "LLM calls of one model are failing",
            f"{spm}: {{{{ $value | humanizePercentage }}}} of calls failed over the last 5 minutes "
            f"(threshold {num(ratio * 100)}%).",
        )
        for severity, ratio in (
            (Severity.CRITICAL, t.error_ratio_critical),
            (Severity.HIGH, t.error_ratio_high),
        )
    ]
    alerts += [
        Alert(
            "LLMLatencyP95High",
            Severity.MEDIUM,
            f'{rec.DURATION_QUANTILE5M}{{quantile="0.95"}} > {num(t.latency_p95_seconds)}',
            _pending(spec, "LLMLatencyP95High", "10m"),
            "LLM calls of one model are slow",
            f"{spm}: p95 call duration is {{{{ $value | humanizeDuration }}}} "
            f"(threshold {num(t.latency_p95_seconds)}s).",
        ),
        Alert(
            "LLMTimeToFirstChunkP95High",
            Severity.MEDIUM,
            f'{rec.TTFC_QUANTILE5M}{{quantile="0.95"}} > {num(t.time_to_first_chunk_p95_seconds)}',
            _pending(spec, "LLMTimeToFirstChunkP95High", "10m"),
            "Streaming LLM calls are slow to start",
            f"{spm}: p95 time to first chunk is {{{{ $value | humanizeDuration }}}} "
            f"(threshold {num(t.time_to_first_chunk_p95_seconds)}s).",
        ),
        Alert(
            "LLMRateLimitSurge",
            Severity.MEDIUM,
            f'{rec.ERRORS_RATE5M}{{error_type="{sc.ErrorCategory.RATE_LIMIT}"}}'
            f" / ignoring(error_type) {rec.REQUESTS_RATE5M} > {num(t.rate_limit_ratio)}",
            _pending(spec, "LLMRateLimitSurge", "5m"),
            "The provider is rate-limiting LLM calls",
            f"{spm}: {{{{ $value | humanizePercentage }}}} of calls were refused by rate limits "
            f"(threshold {num(t.rate_limit_ratio * 100)}%).",
        ),
    ]
    return alerts


def cost_alerts(spec: Spec) -> list[Alert]:
    t = spec.thresholds
    budget = spec.daily_cost_budget_usd
    hourly = rec.SERVICE_COST_RATE1H
    tokens = rec.SERVICE_TOKENS_RATE1H
    return [
        Alert(
            "LLMDailyCostOverBudget",
            Severity.HIGH,
            f"sum({rec.COST_INCREASE1D}) > {num(budget)}",
            _pending(spec, "LLMDailyCostOverBudget", "5m"),
            "LLM spend over the last 24 hours is over the daily budget",
            f'LLM calls cost ${{{{ $value | printf "%.2f" }}}} over the last 24 hours '
            f"(daily budget ${num(budget)}).",
        ),
        Alert(
            "LLMCostPerRequestOverBudget",
            Severity.MEDIUM,
            f"{rec.COST_PER_REQUEST_MEAN5M} > {num(t.cost_per_request_budget_usd)}",
            _pending(spec, "LLMCostPerRequestOverBudget", "15m"),
            "LLM calls of one model cost more than budgeted per call",
            f'{SPM_TEXT}: a call costs ${{{{ $value | printf "%.4f" }}}} on average '
            f"(budget ${num(t.cost_per_request_budget_usd)} per call).",
        ),
        Alert(
            "LLMCostSpike",
            Severity.MEDIUM,
            f"{hourly} * 3600 > {num(t.cost_spike_factor)} * ({hourly} offset 1w) * 3600"
            f" and {hourly} * 3600 > {num(t.cost_spike_min_usd_per_hour)}",
            _pending(spec, "LLMCostSpike", "30m"),
            "LLM spend is far above the same hour last week",
            f'{{{{ $labels.service }}}}: LLM spend runs at ${{{{ $value | printf "%.2f" }}}} per hour, '
            f"more than {num(t.cost_spike_factor)}x the same hour a week ago.",
        ),
        Alert(
            "LLMTokenUsageSpike",
            Severity.LOW,
            f"{tokens} > {num(t.token_spike_factor)} * ({rec.SERVICE_TOKENS_RATE1D} offset 1h)"
            f" and {tokens} > {num(t.token_spike_min_per_second)}",
            _pending(spec, "LLMTokenUsageSpike", "30m"),
            "Token usage is far above the previous day's average",
            f"{{{{ $labels.service }}}}: {{{{ $value | humanize }}}} tokens/s over the last hour, more than "
            f"{num(t.token_spike_factor)}x the previous day's average.",
        ),
        Alert(
            "LLMUnpricedModel",
            Severity.LOW,
            f"{rec.UNPRICED_INCREASE1H} > 0",
            _pending(spec, "LLMUnpricedModel", "5m"),
            "LLM calls to a model without a price are not counted in cost",
            "{{ $labels.provider }} / {{ $labels.model }}: {{ $value | humanize }} calls in the last hour "
            "could not be priced (reason: {{ $labels.reason }}).",
        ),
        Alert(
            "LLMUserDailyBudgetExceeded",
            Severity.MEDIUM,
            f'{rec.USER_COST_INCREASE1D}{{user!="{sc.OTHER_LABEL_VALUE}"}} > {num(t.user_daily_budget_usd)}',
            _pending(spec, "LLMUserDailyBudgetExceeded", "5m"),
            "One user's LLM spend over the last 24 hours is over the per-user budget",
            f"{{{{ $labels.service }}}}: user {{{{ $labels.user }}}} spent "
            f'${{{{ $value | printf "%.2f" }}}} over the last 24 hours '
            f"(per-user daily budget ${num(t.user_daily_budget_usd)}).",
        ),
    ]


def quality_alerts(spec: Spec) -> list[Alert]:
    t = spec.thresholds
    subject = f"{SPM_TEXT} ({{{{ $labels.evaluation }}}})"
    return [
        Alert(
            "LLMQualityScoreLow",
            Severity.MEDIUM,
            f"{rec.QUALITY_MEAN1H} < {num(t.quality_score_min)}",
            _pending(spec, "LLMQualityScoreLow", "30m"),
            "Judged response quality is below target",
            f'{subject}: mean score {{{{ $value | printf "%.2f" }}}}/10 over the last hour '
            f"(target {num(t.quality_score_min)}).",
        ),
        Alert(
            "LLMQualityScoreDrift",
            Severity.MEDIUM,
            f"abs({rec.QUALITY_MEAN1D} - ({rec.QUALITY_MEAN1D} offset 1d)) > {num(t.quality_drift)}",
            _pending(spec, "LLMQualityScoreDrift", "1h"),
            "Judged response quality drifted from the day before",
            f'{subject}: the daily mean score moved by {{{{ $value | printf "%.2f" }}}} points '
            f"against the previous day (threshold {num(t.quality_drift)}).",
        ),
    ]


def safety_alerts(spec: Spec) -> list[Alert]:
    t = spec.thresholds
    hallucination = f'{{evaluation="{sc.EVALUATION_HALLUCINATION}"}}'
    return [
        # Judges score a sample: a few results in an hour are no rate (1 of 3 is 33%).
        Alert(
            "LLMHallucinationRateHigh",
            Severity.HIGH,
            f"{rec.SAFETY_FLAGGED_RATIO_RATE1H}{hallucination} > {num(t.hallucination_ratio)}"
            f" and {rec.SAFETY_EVALUATIONS_INCREASE1H}{hallucination}"
            f" >= {num(t.hallucination_min_evaluations)}",
            _pending(spec, "LLMHallucinationRateHigh", "15m"),
            "Responses of one model are flagged as hallucinations too often",
            f"{SPM_TEXT}: {{{{ $value | humanizePercentage }}}} of the responses judged over the last hour "
            f"were flagged as hallucinations (threshold {num(t.hallucination_ratio * 100)}%).",
        ),
        Alert(
            "LLMContentFilterBlockRateHigh",
            Severity.MEDIUM,
            f"{rec.CONTENT_FILTER_RATIO_RATE5M} > {num(t.content_filter_ratio)}",
            _pending(spec, "LLMContentFilterBlockRateHigh", "15m"),
            "The provider's content filter blocks many LLM calls",
            f"{SPM_TEXT}: {{{{ $value | humanizePercentage }}}} of calls were refused by the content "
            f"filter over the last 5 minutes (threshold {num(t.content_filter_ratio * 100)}%).",
        ),
    ]


def pipeline_alerts(spec: Spec) -> list[Alert]:
    t = spec.thresholds
    return [
        Alert(
            "GenAIOtelProcessorDown",
            Severity.CRITICAL,
            f'up{{job="{PROCESSOR_JOB}"}} == 0',
            _pending(spec, "GenAIOtelProcessorDown", "2m"),
            "The genai-otel processor is down: no cost or token metrics are derived",
            "Prometheus cannot scrape the processor at {{ $labels.instance }}.",
        ),
        Alert(
            "OtelCollectorDown",
            Severity.CRITICAL,
            f'up{{job="{COLLECTOR_JOB}"}} == 0',
            _pending(spec, "OtelCollectorDown", "2m"),
            "The OpenTelemetry Collector is down: spans are not received",
            "Prometheus cannot scrape the collector's telemetry at {{ $labels.instance }}.",
        ),
        Alert(
            "GenAIOtelProcessorSpansDropped",
            Severity.HIGH,
            f"{rec.DROPPED_RATE5M} > 0",
            _pending(spec, "GenAIOtelProcessorSpansDropped", "5m"),
            "The processor is dropping spans: metrics undercount",
            '{{ $labels.job }} drops {{ $value | printf "%.3g" }} spans/s (reason: {{ $labels.reason }}).',
        ),
        Alert(
            "GenAIOtelProcessorInvalidSpans",
            Severity.MEDIUM,
            f"{rec.INVALID_RATE5M} / ignoring(reason) group_left {rec.RECEIVED_RATE5M}"
            f" > {num(t.invalid_span_ratio)}",
            _pending(spec, "GenAIOtelProcessorInvalidSpans", "15m"),
            "The processor rejects many spans as invalid",
            "{{ $labels.job }}: {{ $value | humanizePercentage }} of received spans are invalid "
            f"(reason: {{{{ $labels.reason }}}}; threshold {num(t.invalid_span_ratio * 100)}%).",
        ),
        Alert(
            "GenAIOtelProcessorExportFailing",
            Severity.HIGH,
            f"{rec.EXPORT_FAILURES_RATE5M} > 0",
            _pending(spec, "GenAIOtelProcessorExportFailing", "10m"),
            "The processor cannot forward enriched spans: traces are missing",
            '{{ $labels.job }}: {{ $value | printf "%.3g" }} export failures/s '
            "(reason: {{ $labels.reason }}).",
        ),
        Alert(
            "GenAIOtelProcessorRejectingRequests",
            Severity.MEDIUM,
            f"{rec.REJECTED_RATE5M} > 0",
            _pending(spec, "GenAIOtelProcessorRejectingRequests", "10m"),
            "The processor pushes back on the collector",
            '{{ $labels.job }} rejects {{ $value | printf "%.3g" }} export requests/s '
            "(reason: {{ $labels.reason }}).",
        ),
        Alert(
            "GenAIOtelProcessorQueueNearlyFull",
            Severity.MEDIUM,
            f"{rec.QUEUE_FILL_RATIO} > {num(t.queue_fill_ratio)}",
            _pending(spec, "GenAIOtelProcessorQueueNearlyFull", "10m"),
            "The processor's forwarding queue is nearly full",
            "{{ $labels.job }}: the forwarding queue is {{ $value | humanizePercentage }} full "
            f"(threshold {num(t.queue_fill_ratio * 100)}%).",
        ),
    ]


def agent_alerts(spec: Spec) -> list[Alert]:
    """Tools an agent (or an MCP client) runs, and tools a service serves: a tool failing often."""
    t = spec.thresholds
    return [
        Alert(
            "LLMToolErrorRateHigh",
            Severity.HIGH,
            f"{rec.TOOL_ERROR_RATIO_RATE5M} > {num(t.tool_error_ratio)}"
            f" and {rec.TOOL_CALLS_RATE5M} * 300 >= {num(t.tool_error_min_calls)}",
            _pending(spec, "LLMToolErrorRateHigh", "10m"),
            "A tool the agents call is failing",
            "{{ $labels.service }} / tool {{ $labels.tool }}: {{ $value | humanizePercentage }} of calls "
            f"failed over the last 5 minutes (threshold {num(t.tool_error_ratio * 100)}%).",
        ),
        # The server's side of tool calls (an MCP server's tools/call spans): its own alert, on the
        # serving service, whether its clients are instrumented or not (the same thresholds).
        Alert(
            "LLMToolExecutionErrorRateHigh",
            Severity.HIGH,
            f"{rec.TOOL_EXECUTION_ERROR_RATIO_RATE5M} > {num(t.tool_error_ratio)}"
            f" and {rec.TOOL_EXECUTIONS_RATE5M} * 300 >= {num(t.tool_error_min_calls)}",
            _pending(spec, "LLMToolExecutionErrorRateHigh", "10m"),
            "A tool this service serves is failing",
            "{{ $labels.service }} / tool {{ $labels.tool }}: {{ $value | humanizePercentage }} of the "
            "executions it served failed over the last 5 minutes "
            f"(threshold {num(t.tool_error_ratio * 100)}%).",
        ),
    ]
