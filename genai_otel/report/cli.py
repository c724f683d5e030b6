"""`genai-otel report`: LLM cost, cache savings, unpriced calls and cheaper-model suggestions.

    genai-otel report --prometheus http://127.0.0.1:9090 [--range 24h] [--format text|json|markdown]

Reads the processor's derived metrics from Prometheus's HTTP API (recorded 1-day series when
the range is 1d). Exit codes: 0 a report was printed, 1 Prometheus has no LLM metrics in the range,
2 Prometheus cannot be reached or an option is wrong.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import datetime

from genai_otel.report.model import (
    Options,
    Report,
    bucket_seconds,
    build_report,
    hourly_cost_query,
    report_queries,
)
from genai_otel.report.prometheus import PrometheusClient, PrometheusError
from genai_otel.report.render import to_json, to_markdown, to_text

RENDERERS = {"text": to_text, "json": to_json, "markdown": to_markdown}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_RANGE_SECONDS = 90 * 86400


def parse_range(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not 60 <= seconds <= MAX_RANGE_SECONDS:
        raise argparse.ArgumentTypeError(
            f"--range must be a duration such as 30m, 24h or 7d, between 1m and 90d; got {text!r}"
        )
    return seconds


def parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at must be Unix seconds or ISO 8601, got {text!r}") from None


def collect(client: PrometheusClient, options: Options, at: float) -> Report:
    """Runs every query of the report at `at` and builds it."""
    results = {name: client.query(expr, at) for name, expr in report_queries(options).items()}
    bucket = bucket_seconds(options.range_seconds)
    hourly_series = client.query_range(
        hourly_cost_query(options.range_seconds), at - options.range_seconds + bucket, at, bucket
    )
    hourly = [point for _, values in hourly_series for point in values]
    return build_report(results, hourly, options, at)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genai-otel report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    parser.add_argument(
        "--range", type=parse_range, default=86400, help="period to report, e.g. 24h, 7d (24h)"
    )
    parser.add_argument("--format", choices=tuple(RENDERERS), default="text")
    parser.add_argument("--at", type=parse_time, help="end of the period: Unix seconds or ISO 8601 (now)")
    parser.add_argument("--top-users", type=int, default=Options.top_users, help="users listed (10)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=Options.tolerance,
        help="score points a cheaper model may lose and still be suggested (0.3)",
    )
    parser.add_argument(
        "--min-judged-samples",
        type=int,
        default=Options.min_judged_samples,
        help="judged samples each model needs before a suggestion (30)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.top_users < 1 or args.min_judged_samples < 1 or args.tolerance < 0:
        parser.error("--top-users and --min-judged-samples must be at least 1, --tolerance at least 0")
    options = Options(
        range_seconds=args.range,
        top_users=args.top_users,
        tolerance=args.tolerance,
        min_judged_samples=args.min_judged_samples,
    )
    at = time.time() if args.at is None else args.at
    try:
        report = collect(PrometheusClient(args.prometheus), options, at)
    except PrometheusError as error:
        print(f"genai-otel report: {error}", file=sys.stderr)
        return 2
    if report.empty:
        print(
            f"genai-otel report: no LLM metrics in {args.prometheus} over the range "
            "(is the genai-otel processor scraped, and has traffic flowed?)",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(RENDERERS[args.format](report))
    return 0
