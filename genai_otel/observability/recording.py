"""Recording rules: `level:metric:operations`, read by the alerts and the dashboards.

Every name is built from the derived-metrics contract in `genai_otel.semconv`,
so a renamed metric changes the rules, the alerts and the dashboards together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genai_otel import semconv as sc

SPM = "service, provider, model"
QUANTILES = ("0.5", "0.95", "0.99")


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def as_rule(self) -> dict[str, object]:
        rule: dict[str, object] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


def _base(counter: str) -> str:
    """`llm_cost_usd_total` -> `llm_cost_usd` (recorded names drop the `_total` suffix)."""
    return counter.removesuffix("_total")


# --- recorded series names (the alerts and dashboards import these) ---------------------------
REQUESTS_RATE5M = f"service_provider_model:{_base(sc.PROM_LLM_REQUESTS)}:rate5m"
ERRORS_RATE5M = "service_provider_model_error_type:llm_request_errors:rate5m"
ERROR_RATIO_RATE5M = "service_provider_model:llm_request_error_ratio:rate5m"
DURATION_BUCKET_RATE5M = f"service_provider_model_le:{sc.PROM_LLM_REQUEST_DURATION}_bucket:rate5m"
DURATION_QUANTILE5M = f"service_provider_model:{sc.PROM_LLM_REQUEST_DURATION}:histogram_quantile5m"
TTFC_BUCKET_RATE5M = f"service_provider_model_le:{sc.PROM_LLM_TIME_TO_FIRST_CHUNK}_bucket:rate5m"
TTFC_QUANTILE5M = f"service_provider_model:{sc.PROM_LLM_TIME_TO_FIRST_CHUNK}:histogram_quantile5m"
TOKENS_PER_SECOND_BUCKET_RATE5M = (
    f"service_provider_model_le:{sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND}_bucket:rate5m"
)
TOKENS_PER_SECOND_QUANTILE5M = (
    f"service_provider_model:{sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND}:histogram_quantile5m"
)
TOKENS_RATE5M = f"service_provider_model_token_type:{_base(sc.PROM_LLM_TOKENS)}:rate5m"
COST_RATE5M = f"service_provider_model:{_base(sc.PROM_LLM_COST)}:rate5m"
COST_BREAKDOWN_RATE5M = f"service_provider_model_cost_type:{_base(sc.PROM_LLM_COST_BREAKDOWN)}:rate5m"
CACHE_SAVINGS_RATE5M = f"service_provider_model:{_base(sc.PROM_LLM_CACHE_SAVINGS)}:rate5m"
COST_PER_REQUEST_MEAN5M = f"service_provider_model:{sc.PROM_LLM_COST_PER_REQUEST}:mean5m"
UNPRICED_INCREASE1H = f"provider_model_reason:{_base(sc.PROM_LLM_UNPRICED_REQUESTS)}:increase1h"
USER_COST_RATE5M = f"service_user:{_base(sc.PROM_LLM_USER_COST)}:rate5m"
FEATURE_COST_RATE5M = f"service_feature:{_base(sc.PROM_LLM_FEATURE_COST)}:rate5m"
QUALITY_MEAN1H = f"service_provider_model_evaluation:{sc.PROM_LLM_QUALITY_SCORE}:mean1h"
SAFETY_FLAGGED_RATIO_RATE5M = (
    f"service_provider_model_evaluation:{_base(sc.PROM_LLM_SAFETY_FLAGGED)}:ratio_rate5m"
)
CONTENT_FILTER_RATIO_RATE5M = "service_provider_model:llm_content_filter_block_ratio:rate5m"

COST_INCREASE1D = f"service_provider_model:{_base(sc.PROM_LLM_COST)}:increase1d"
SERVICE_COST_RATE1H = f"service:{_base(sc.PROM_LLM_COST)}:rate1h"
SERVICE_TOKENS_RATE1H = f"service:{_base(sc.PROM_LLM_TOKENS)}:rate1h"
SERVICE_TOKENS_RATE1D = f"service:{_base(sc.PROM_LLM_TOKENS)}:rate1d"
USER_COST_INCREASE1D = f"service_user:{_base(sc.PROM_LLM_USER_COST)}:increase1d"
QUALITY_MEAN1D = f"service_provider_model_evaluation:{sc.PROM_LLM_QUALITY_SCORE}:mean1d"
SAFETY_FLAGGED_RATIO_RATE1H = (
    f"service_provider_model_evaluation:{_base(sc.PROM_LLM_SAFETY_FLAGGED)}:ratio_rate1h"
)
SAFETY_EVALUATIONS_INCREASE1H = (
    f"service_provider_model_evaluation:{_base(sc.PROM_LLM_SAFETY_EVALUATIONS)}:increase1h"
)

RECEIVED_RATE5M = f"job:{_base(sc.PROM_PROCESSOR_SPANS_RECEIVED)}:rate5m"
FORWARDED_RATE5M = f"job:{_base(sc.PROM_PROCESSOR_SPANS_FORWARDED)}:rate5m"
INVALID_RATE5M = f"job_reason:{_base(sc.PROM_PROCESSOR_SPANS_INVALID)}:rate5m"
DROPPED_RATE5M = f"job_reason:{_base(sc.PROM_PROCESSOR_SPANS_DROPPED)}:rate5m"
REJECTED_RATE5M = f"job_reason:{_base(sc.PROM_PROCESSOR_REQUESTS_REJECTED)}:rate5m"
EXPORT_FAILURES_RATE5M = f"job_reason:{_base(sc.PROM_PROCESSOR_EXPORT_FAILURES)}:rate5m"
QUEUE_FILL_RATIO = "job:genai_otel_processor_queue_fill:ratio"

# Agents and tools (agent_rules)
TOOL_CALLS_RATE5M = f"service_tool:{_base(sc.PROM_LLM_TOOL_CALLS)}:rate5m"
TOOL_ERRORS_RATE5M = "service_tool:llm_tool_call_errors:rate5m"
TOOL_ERROR_RATIO_RATE5M = "service_tool:llm_tool_call_error_ratio:rate5m"
AGENT_RUNS_RATE5M = f"service_agent_status:{sc.PROM_LLM_AGENT_RUN_DURATION}_count:rate5m"
AGENT_RUN_BUCKET_RATE5M = f"service_agent_le:{sc.PROM_LLM_AGENT_RUN_DURATION}_bucket:rate5m"
AGENT_RUN_QUANTILE5M = f"service_agent:{sc.PROM_LLM_AGENT_RUN_DURATION}:histogram_quantile5m"
# a server's side (llm_tool_executions_total): the tools a service served, whoever called them
TOOL_EXECUTIONS_RATE5M = f"service_tool:{_base(sc.PROM_LLM_TOOL_EXECUTIONS)}:rate5m"
TOOL_EXECUTION_ERRORS_RATE5M = "service_tool:llm_tool_execution_errors:rate5m"
TOOL_EXECUTION_ERROR_RATIO_RATE5M = "service_tool:llm_tool_execution_error_ratio:rate5m"
GUARDRAIL_EVALUATIONS_RATE5M = f"service_guardrail:{_base(sc.PROM_LLM_GUARDRAIL_EVALUATIONS)}:rate5m"
GUARDRAIL_TRIPS_RATE5M = "service_guardrail:llm_guardrail_trips:rate5m"
GUARDRAIL_TRIP_RATIO_RATE5M = "service_guardrail:llm_guardrail_trip_ratio:rate5m"

# Tokens actually sent and received: input includes cache tokens and output includes reasoning,
# so adding the other token types would count them twice.
_BILLED_TOKENS = f'{sc.PROM_LLM_TOKENS}{{token_type=~"{sc.TokenType.INPUT}|{sc.TokenType.OUTPUT}"}}'


def _quantiles(record: str, buckets: str) -> list[Recording]:
    return [
        Recording(record, f"histogram_quantile({q}, {buckets})", {"quantile": q})
        for q in QUANTILES
        if not (record == TOKENS_PER_SECOND_QUANTILE5M and q != "0.5")
    ]


def llm_rules() -> list[Recording]:
    """Five-minute rates and quantiles per service/provider/model: the dashboards' staple."""
    errors = f'{sc.PROM_LLM_REQUESTS}{{status="error"}}'
    return [
        Recording(REQUESTS_RATE5M, f"sum by ({SPM}) (rate({sc.PROM_LLM_REQUESTS}[5m]))"),
        Recording(ERRORS_RATE5M, f"sum by ({SPM}, error_type) (rate({errors}[5m]))"),
        # A model that never failed has no error series: count it as 0, not as missing.
        Recording(
            ERROR_RATIO_RATE5M,
            f"(sum by ({SPM}) ({ERRORS_RATE5M}) or {REQUESTS_RATE5M} * 0) / {REQUESTS_RATE5M}",
        ),
        Recording(
            DURATION_BUCKET_RATE5M, f"sum by ({SPM}, le) (rate({sc.PROM_LLM_REQUEST_DURATION}_bucket[5m]))"
        ),
        *_quantiles(DURATION_QUANTILE5M, DURATION_BUCKET_RATE5M),
        Recording(
            TTFC_BUCKET_RATE5M, f"sum by ({SPM}, le) (rate({sc.PROM_LLM_TIME_TO_FIRST_CHUNK}_bucket[5m]))"
        ),
        *_quantiles(TTFC_QUANTILE5M, TTFC_BUCKET_RATE5M),
        Recording(
            TOKENS_PER_SECOND_BUCKET_RATE5M,
            f"sum by ({SPM}, le) (rate({sc.PROM_LLM_OUTPUT_TOKENS_PER_SECOND}_bucket[5m]))",
        ),
        *_quantiles(TOKENS_PER_SECOND_QUANTILE5M, TOKENS_PER_SECOND_BUCKET_RATE5M),
        Recording(TOKENS_RATE5M, f"sum by ({SPM}, token_type) (rate({sc.PROM_LLM_TOKENS}[5m]))"),
        Recording(COST_RATE5M, f"sum by ({SPM}) (rate({sc.PROM_LLM_COST}[5m]))"),
        Recording(
            COST_BREAKDOWN_RATE5M, f"sum by ({SPM}, cost_type) (rate({sc.PROM_LLM_COST_BREAKDOWN}[5m]))"
        ),
        Recording(CACHE_SAVINGS_RATE5M, f"sum by ({SPM}) (rate({sc.PROM_LLM_CACHE_SAVINGS}[5m]))"),
        Recording(
            COST_PER_REQUEST_MEAN5M,
            f"sum by ({SPM}) (rate({sc.PROM_LLM_COST_PER_REQUEST}_sum[5m]))"
            f" / sum by ({SPM}) (rate({sc.PROM_LLM_COST_PER_REQUEST}_count[5m]))",
        ),
        Recording(
            UNPRICED_INCREASE1H,
            f"sum by (provider, model, reason) (increase({sc.PROM_LLM_UNPRICED_REQUESTS}[1h]))",
        ),
        Recording(USER_COST_RATE5M, f"sum by (service, user) (rate({sc.PROM_LLM_USER_COST}[5m]))"),
        Recording(FEATURE_COST_RATE5M, f"sum by (service, feature) (rate({sc.PROM_LLM_FEATURE_COST}[5m]))"),
        Recording(
            QUALITY_MEAN1H,
            f"sum by ({SPM}, evaluation) (rate({sc.PROM_LLM_QUALITY_SCORE}_sum[1h]))"
            f" / sum by ({SPM}, evaluation) (rate({sc.PROM_LLM_QUALITY_SCORE}_count[1h]))",
        ),
        Recording(SAFETY_FLAGGED_RATIO_RATE5M, _safety_ratio("5m")),
        # A model that was never blocked has no content_filter series: its share is 0, not missing.
        Recording(
            CONTENT_FILTER_RATIO_RATE5M,
            f'(sum by ({SPM}) ({ERRORS_RATE5M}{{error_type="{sc.ErrorCategory.CONTENT_FILTER}"}})'
            f" or {REQUESTS_RATE5M} * 0) / {REQUESTS_RATE5M}",
        ),
    ]


def _safety_ratio(window: str) -> str:
    """Flagged / evaluated safety results (processors/safety.py); no result gives no sample, not 0/0.
    The flagged series exists, at 0, from a key's first result, so no `or` fallback is needed."""
    by = f"sum by ({SPM}, evaluation)"
    return (
        f"{by} (rate({sc.PROM_LLM_SAFETY_FLAGGED}[{window}]))"
        f" / ({by} (rate({sc.PROM_LLM_SAFETY_EVALUATIONS}[{window}])) > 0)"
    )


def trend_rules() -> list[Recording]:
    """Hour- and day-long windows: budgets, week-over-week and day-over-day comparisons."""
    return [
        Recording(COST_INCREASE1D, f"sum by ({SPM}) (increase({sc.PROM_LLM_COST}[1d]))"),
        Recording(SERVICE_COST_RATE1H, f"sum by (service) (rate({sc.PROM_LLM_COST}[1h]))"),
        Recording(SERVICE_TOKENS_RATE1H, f"sum by (service) (rate({_BILLED_TOKENS}[1h]))"),
        Recording(SERVICE_TOKENS_RATE1D, f"sum by (service) (rate({_BILLED_TOKENS}[1d]))"),
        Recording(USER_COST_INCREASE1D, f"sum by (service, user) (increase({sc.PROM_LLM_USER_COST}[1d]))"),
        Recording(
            QUALITY_MEAN1D,
            f"sum by ({SPM}, evaluation) (rate({sc.PROM_LLM_QUALITY_SCORE}_sum[1d]))"
            f" / sum by ({SPM}, evaluation) (rate({sc.PROM_LLM_QUALITY_SCORE}_count[1d]))",
        ),
        Recording(SAFETY_FLAGGED_RATIO_RATE1H, _safety_ratio("1h")),
        Recording(
            SAFETY_EVALUATIONS_INCREASE1H,
            f"sum by ({SPM}, evaluation) (increase({sc.PROM_LLM_SAFETY_EVALUATIONS}[1h]))",
        ),
    ]


def _by_outcome(
    metric: str, by: str, matcher: str, *, total: str, failed: str, share: str
) -> list[Recording]:
    """`total` and `failed` (`metric{matcher}`) per `by`, and `share` = failed / total, where a key
    that never failed (no such series) counts 0, not missing."""
    return [
        Recording(total, f"sum by ({by}) (rate({metric}[5m]))"),
        Recording(failed, f"sum by ({by}) (rate({metric}{{{matcher}}}[5m]))"),
        Recording(share, f"({failed} or {total} * 0) / {total}"),
    ]


def agent_rules() -> list[Recording]:
    """Tool calls, tool executions served, agent runs and guardrail verdicts per service: rates,
    the tool error ratios, the guardrail trip ratio, run-time quantiles."""
    return [
        *_by_outcome(sc.PROM_LLM_TOOL_CALLS, "service, tool", 'status="error"', total=TOOL_CALLS_RATE5M,
                     failed=TOOL_ERRORS_RATE5M, share=TOOL_ERROR_RATIO_RATE5M),
        *_by_outcome(sc.PROM_LLM_TOOL_EXECUTIONS, "service, tool", 'status="error"',
                     total=TOOL_EXECUTIONS_RATE5M, failed=TOOL_EXECUTION_ERRORS_RATE5M,
                     share=TOOL_EXECUTION_ERROR_RATIO_RATE5M),
        *_by_outcome(sc.PROM_LLM_GUARDRAIL_EVALUATIONS, "service, guardrail", 'triggered="true"',
                     total=GUARDRAIL_EVALUATIONS_RATE5M, failed=GUARDRAIL_TRIPS_RATE5M,
                     share=GUARDRAIL_TRIP_RATIO_RATE5M),
        Recording(
            AGENT_RUNS_RATE5M,
            f"sum by (service, agent, status) (rate({sc.PROM_LLM_AGENT_RUN_DURATION}_count[5m]))",
        ),
        Recording(
            AGENT_RUN_BUCKET_RATE5M,
            f"sum by (service, agent, le) (rate({sc.PROM_LLM_AGENT_RUN_DURATION}_bucket[5m]))",
        ),
        *_quantiles(AGENT_RUN_QUANTILE5M, AGENT_RUN_BUCKET_RATE5M),
    ]  # fmt: skip


def pipeline_rules() -> list[Recording]:
    """The processor's own health, per scrape job."""

    def by_reason(record: str, counter: str) -> Recording:
        return Recording(record, f"sum by (job, reason) (rate({counter}[5m]))")

    return [
        Recording(RECEIVED_RATE5M, f"sum by (job) (rate({sc.PROM_PROCESSOR_SPANS_RECEIVED}[5m]))"),
        Recording(FORWARDED_RATE5M, f"sum by (job) (rate({sc.PROM_PROCESSOR_SPANS_FORWARDED}[5m]))"),
        by_reason(INVALID_RATE5M, sc.PROM_PROCESSOR_SPANS_INVALID),
        by_reason(DROPPED_RATE5M, sc.PROM_PROCESSOR_SPANS_DROPPED),
        by_reason(REJECTED_RATE5M, sc.PROM_PROCESSOR_REQUESTS_REJECTED),
        by_reason(EXPORT_FAILURES_RATE5M, sc.PROM_PROCESSOR_EXPORT_FAILURES),
        Recording(
            QUEUE_FILL_RATIO,
            f"max by (job) ({sc.PROM_PROCESSOR_QUEUE_DEPTH})"
            f" / max by (job) ({sc.PROM_PROCESSOR_QUEUE_CAPACITY})",
        ),
    ]
