"""The report's figures from hand-made query results: exact numbers, exact text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from genai_otel.report.model import (
    Cost,
    Judged,
    ModelUnitCost,
    NoSuggestion,
    Options,
    Suggestion,
    Unpriced,
    build_report,
    promql_duration,
    report_queries,
)
from genai_otel.report.render import to_dict, to_markdown, to_text

GPT4O = {"provider": "openai", "model": "gpt-4o"}
MINI = {"provider": "openai", "model": "gpt-4o-mini"}
CLAUDE = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
LLAMA = {"provider": "openai", "model": "acme-llama"}
T0 = datetime(2026, 11, 22, 23, 0, tzinfo=UTC).timestamp()
AT = T0 + 7200


def _q(service: str, labels: dict[str, str], evaluation: str = "helpfulness") -> dict[str, str]:
    return {"service": service, **labels, "evaluation": evaluation}


# Powers of two where a ratio is taken, so every expected figure is exact in binary floating point.
RESULTS = {
    "cost_by_model": [(GPT4O, 3.0), (MINI, 0.5), (CLAUDE, 2.0)],
    "cost_by_service": [({"service": "svc-a"}, 4.0), ({"service": "svc-b"}, 1.5)],
    "cost_by_service_model": [
        ({"service": "svc-a", **GPT4O}, 2.0),
        ({"service": "svc-b", **GPT4O}, 1.0),
        ({"service": "svc-a", **MINI}, 0.5),
        ({"service": "svc-a", **CLAUDE}, 1.5),
        ({"service": "svc-b", **CLAUDE}, 0.5),
    ],
    "tokens_by_service_model": [
        ({"service": "svc-a", **GPT4O}, 262144.0),
        ({"service": "svc-b", **GPT4O}, 37856.0),
        ({"service": "svc-a", **MINI}, 524288.0),
        ({"service": "svc-a", **CLAUDE}, 150000.0),
        ({"service": "svc-b", **CLAUDE}, 50000.0),
        ({"service": "svc-a", **LLAMA}, 1000.0),
    ],
    "requests_by_model": [(GPT4O, 300.0), (MINI, 100.0), (CLAUDE, 400.0), (LLAMA, 12.0)],
    "cost_by_user": [
        ({"service": "svc-a", "user": "u-bob"}, 1.25),
        ({"service": "svc-a", "user": "u-alice"}, 2.5),
        ({"service": "svc-b", "user": "other"}, 0.5),
    ],
    "cost_by_feature": [({"service": "svc-a", "feature": "support-chat"}, 4.0)],
    "cache_savings_by_model": [(CLAUDE, 0.75), (GPT4O, 0.0)],
    "unpriced_by_model": [
        ({**LLAMA, "reason": "unknown_model"}, 12.0),
        ({**MINI, "reason": "no_usage"}, 0.0),
    ],
    "quality_sum": [
        (_q("svc-a", GPT4O), 840.0),
        (_q("svc-a", MINI), 818.0),
        (_q("svc-a", CLAUDE), 176.0),
        (_q("svc-a", LLAMA), 450.0),
    ],
    "quality_count": [
        (_q("svc-a", GPT4O), 100.0),
        (_q("svc-a", MINI), 100.0),
        (_q("svc-a", CLAUDE), 20.0),
        (_q("svc-a", LLAMA), 50.0),
    ],
}
HOURLY = [(T0 + 3600, 1.0), (T0 + 7200, 2.5)]
OPTIONS = Options(range_seconds=7200, top_users=2)


def test_queries_use_raw_counters_over_the_range_and_recorded_series_for_one_day() -> None:
    two_hours = report_queries(OPTIONS)
    assert two_hours["cost_by_model"] == "sum by (provider, model) (increase(llm_cost_usd_total[2h]))"
    assert two_hours["tokens_by_service_model"] == (
        'sum by (service, provider, model) (increase(llm_tokens_total{token_type=~"input|output"}[2h]))'
    )
    day = report_queries(Options())
    assert day["cost_by_model"] == "sum by (provider, model) (service_provider_model:llm_cost_usd:increase1d)"
    assert day["cost_by_user"] == "sum by (service, user) (service_user:llm_user_cost_usd:increase1d)"
    assert day["quality_count"] == (
        "sum by (service, provider, model, evaluation) (increase(llm_quality_score_count[1d]))"
    )
    assert [promql_duration(s) for s in (60, 5400, 86400, 90)] == ["1m", "90m", "1d", "90s"]


def test_build_report_figures() -> None:
    report = build_report(RESULTS, HOURLY, OPTIONS, AT)
    assert report.total_cost_usd == 5.5
    assert report.cost_by_model == [
        Cost(("openai", "gpt-4o"), 3.0),
        Cost(("anthropic", "claude-sonnet-4-5"), 2.0),
        Cost(("openai", "gpt-4o-mini"), 0.5),
    ]
    assert report.cost_by_user == [Cost(("svc-a", "u-alice"), 2.5), Cost(("svc-a", "u-bob"), 1.25)]
    assert report.other_users == 1
    assert report.cost_per_hour == [
        Cost(("2026-11-22T23:00:00Z",), 1.0),
        Cost(("2026-11-23T00:00:00Z",), 2.5),
    ]
    assert report.cost_per_day == [Cost(("2026-11-22",), 1.0), Cost(("2026-11-23",), 2.5)]
    assert report.unit_costs == [
        ModelUnitCost("openai", "gpt-4o", 3.0, 300.0, 300000.0, 0.01, 0.01),
        ModelUnitCost("anthropic", "claude-sonnet-4-5", 2.0, 400.0, 200000.0, 0.005, 0.01),
        ModelUnitCost("openai", "gpt-4o-mini", 0.5, 100.0, 524288.0, 0.005, 500 / 524288),
    ]
    assert report.cache_savings == [Cost(("anthropic", "claude-sonnet-4-5"), 0.75)]
    assert report.total_cache_savings_usd == 0.75
    assert report.unpriced == [Unpriced("openai", "acme-llama", "unknown_model", 12.0)]


def test_suggestions_need_a_cheaper_model_within_tolerance_and_enough_samples() -> None:
    report = build_report(RESULTS, HOURLY, OPTIONS, AT)
    gpt4o = Judged("svc-a", "openai", "gpt-4o", "helpfulness", 8.4, 100)
    mini = Judged("svc-a", "openai", "gpt-4o-mini", "helpfulness", 8.18, 100)
    # gpt-4o in svc-a: 2^18 tokens at gpt-4o-mini's $0.5 / 2^19 tokens = $0.25 instead of $2.00
    (suggestion,) = report.suggestions
    assert suggestion == Suggestion(gpt4o, mini, 262144.0, 2.0, 0.25)
    assert suggestion.saving_usd == 1.75
    assert report.no_suggestions == [
        NoSuggestion(
            Judged("svc-a", "anthropic", "claude-sonnet-4-5", "helpfulness", 8.8, 20),
            "not enough judged samples (20 of 30)",
        ),
        NoSuggestion(
            Judged("svc-a", "openai", "acme-llama", "helpfulness", 9.0, 50),
            "no observed cost per token (unpriced or no tokens)",
        ),
        NoSuggestion(mini, "no cheaper model within 0.3 points"),
    ]


def test_tolerance_and_min_samples_are_configurable() -> None:
    strict = build_report(RESULTS, HOURLY, Options(range_seconds=7200, tolerance=0.2), AT)
    assert strict.suggestions == []
    assert (
        NoSuggestion(
            Judged("svc-a", "openai", "gpt-4o", "helpfulness", 8.4, 100), "no cheaper model within 0.2 points"
        )
        in strict.no_suggestions
    )
    demanding = build_report(RESULTS, HOURLY, Options(range_seconds=7200, min_judged_samples=101), AT)
    assert demanding.suggestions == []
    assert {n.reason for n in demanding.no_suggestions} == {
        "not enough judged samples (100 of 101)",
        "not enough judged samples (20 of 101)",
        "not enough judged samples (50 of 101)",
    }


def test_a_cheaper_model_judged_in_another_service_is_not_suggested() -> None:
    results = dict(RESULTS, quality_sum=[(_q("svc-a", GPT4O), 840.0), (_q("svc-b", MINI), 840.0)],
                   quality_count=[(_q("svc-a", GPT4O), 100.0), (_q("svc-b", MINI), 100.0)])  # fmt: skip
    assert build_report(results, HOURLY, OPTIONS, AT).suggestions == []


EXPECTED_TEXT = """\
LLM cost report: last 2h until 2026-11-23T01:00:00Z
Total cost: $5.5000

Cost by model
  provider   model              cost
  openai     gpt-4o             $3.0000
  anthropic  claude-sonnet-4-5  $2.0000
  openai     gpt-4o-mini        $0.5000

Cost by service
  service  cost
  svc-a    $4.0000
  svc-b    $1.5000

Cost by user (top 2; 1 more)
  service  user     cost
  svc-a    u-alice  $2.5000
  svc-a    u-bob    $1.2500

Cost by feature
  service  feature       cost
  svc-a    support-chat  $4.0000

Cost per day (UTC)
  day         cost
  2026-11-22  $1.0000
  2026-11-23  $2.5000

Cost per hour (UTC, hour starting)
  hour                  cost
  2026-11-22T23:00:00Z  $1.0000
  2026-11-23T00:00:00Z  $2.5000

Average cost per model
  provider   model              requests  tokens (in+out)  per request  per 1k tokens
  openai     gpt-4o             300       300,000          $0.010000    $0.010000
  anthropic  claude-sonnet-4-5  400       200,000          $0.005000    $0.010000
  openai     gpt-4o-mini        100       524,288          $0.005000    $0.000954

Cache savings (total $0.7500)
  provider   model              saved
  anthropic  claude-sonnet-4-5  $0.7500

Unpriced calls (not in any cost above)
  provider  model       reason         calls
  openai    acme-llama  unknown_model  12

Cheaper models where quality allows (score within 0.3 points, at least 30 judged samples each)
  service  evaluation   move from  score         to           score         tokens   est. saving
  svc-a    helpfulness  gpt-4o     8.40 (n=100)  gpt-4o-mini  8.18 (n=100)  262,144  $1.7500 of $2.0000

Judged models without a suggestion
  service  evaluation   model              score         why
  svc-a    helpfulness  claude-sonnet-4-5  8.80 (n=20)   not enough judged samples (20 of 30)
  svc-a    helpfulness  acme-llama         9.00 (n=50)   no observed cost per token (unpriced or no tokens)
  svc-a    helpfulness  gpt-4o-mini        8.18 (n=100)  no cheaper model within 0.3 points
"""


def test_text_report() -> None:
    assert to_text(build_report(RESULTS, HOURLY, OPTIONS, AT)) == EXPECTED_TEXT


def test_markdown_and_json_reports() -> None:
    report = build_report(RESULTS, HOURLY, OPTIONS, AT)
    markdown = to_markdown(report)
    assert markdown.startswith(
        "# LLM cost report: last 2h until 2026-11-23T01:00:00Z\n\nTotal cost: **$5.5000**\n"
    )
    assert "| openai | gpt-4o | $3.0000 |" in markdown
    assert (
        "| svc-a | helpfulness | gpt-4o | 8.40 (n=100) | gpt-4o-mini | 8.18 (n=100) | 262,144 |" in markdown
    )
    data = json.loads(json.dumps(to_dict(report)))
    assert data["range"] == "2h"
    assert data["cost_by_model"][0] == {"key": ["openai", "gpt-4o"], "usd": 3.0}
    assert data["suggestions"][0]["saving_usd"] == 1.75
    assert data["suggestions"][0]["cheaper"]["model"] == "gpt-4o-mini"


def test_empty_results_make_an_empty_report() -> None:
    empty = build_report({name: [] for name in RESULTS}, [], OPTIONS, AT)
    assert empty.empty
    text = to_text(empty)
    assert "Cost by model\n  no priced calls in the range\n" in text
    assert text.endswith(
        "Judged models without a suggestion\n  no judge scores (llm_quality_score) in the range\n"
    )
