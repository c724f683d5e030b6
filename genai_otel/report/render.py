"""The report as text, Markdown or JSON. Text and Markdown share one list of sections."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from genai_otel.report.model import Report, promql_duration

Section = tuple[str, list[str], list[list[str]], str]  # title, header, rows, note shown when empty


def usd(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _title(report: Report) -> str:
    until = datetime.fromtimestamp(report.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"LLM cost report: last {promql_duration(report.range_seconds)} until {until}"


def sections(report: Report) -> list[Section]:
    user_note = f" (top {len(report.cost_by_user)}; {report.other_users} more)" if report.other_users else ""
    return [
        (
            "Cost by model",
            ["provider", "model", "cost"],
            [[c.key[0], c.key[1], usd(c.usd)] for c in report.cost_by_model],
            "no priced calls in the range",
        ),
        ("Cost by service", ["service", "cost"], [[*c.key, usd(c.usd)] for c in report.cost_by_service],
         "none"),
        (
            f"Cost by user{user_note}",
            ["service", "user", "cost"],
            [[*c.key, usd(c.usd)] for c in report.cost_by_user],
            "no user attribution",
        ),
        (
            "Cost by feature",
            ["service", "feature", "cost"],
            [[*c.key, usd(c.usd)] for c in report.cost_by_feature],
            "no feature attribution",
        ),
        ("Cost per day (UTC)", ["day", "cost"], [[*c.key, usd(c.usd)] for c in report.cost_per_day],
         "none"),
        (
            "Cost per hour (UTC, hour starting)",
            ["hour", "cost"],
            [[c.key[0], usd(c.usd)] for c in report.cost_per_hour],
            "none",
        ),
        (
            "Average cost per model",
            ["provider", "model", "requests", "tokens (in+out)", "per request", "per 1k tokens"],
            [
                [u.provider, u.model, _count(u.requests), _count(u.tokens), usd(u.per_request_usd, 6),
                 usd(u.per_1k_tokens_usd, 6)]
                for u in report.unit_costs
            ],
            "none",
        ),
        (
            f"Cache savings (total {usd(report.total_cache_savings_usd)})",
            ["provider", "model", "saved"],
            [[*c.key, usd(c.usd)] for c in report.cache_savings],
            "no cache reads",
        ),
        (
            "Unpriced calls (not in any cost above)",
            ["provider", "model", "reason", "calls"],
            [[u.provider, u.model, u.reason, _count(u.calls)] for u in report.unpriced],
            "none",
        ),
        (
            f"Cheaper models where quality allows (score within {report.tolerance:g} points, "
            f"at least {report.min_judged_samples} judged samples each)",
            ["service", "evaluation", "move from", "score", "to", "score", "tokens", "est. saving"],
            [
                [s.current.service, s.current.evaluation, s.current.model,
                 f"{s.current.mean_score:.2f} (n={s.current.samples})", s.cheaper.model,
                 f"{s.cheaper.mean_score:.2f} (n={s.cheaper.samples})", _count(s.tokens),
                 f"{usd(s.saving_usd)} of {usd(s.current_cost_usd)}"]
                for s in report.suggestions
            ],
            "no suggestion",
        ),
        (
            "Judged models without a suggestion",
            ["service", "evaluation", "model", "score", "why"],
            [
                [n.judged.service, n.judged.evaluation, n.judged.model,
                 f"{n.judged.mean_score:.2f} (n={n.judged.samples})", n.reason]
                for n in report.no_suggestions
            ],
            "none" if report.suggestions else "no judge scores (llm_quality_score) in the range",
        ),
    ]  # fmt: skip


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]  # fmt: skip


def to_text(report: Report) -> str:
    lines = [_title(report), f"Total cost: {usd(report.total_cost_usd)}"]
    for title, header, rows, empty in sections(report):
        lines += ["", title]
        lines += _table(header, rows) if rows else [f"  {empty}"]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    lines = [f"# {_title(report)}", "", f"Total cost: **{usd(report.total_cost_usd)}**"]
    for title, header, rows, empty in sections(report):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append(f"_{empty}_")
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_dict(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    for suggestion, source in zip(data["suggestions"], report.suggestions, strict=True):
        suggestion["saving_usd"] = source.saving_usd
    data["range"] = promql_duration(report.range_seconds)
    return data


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"
