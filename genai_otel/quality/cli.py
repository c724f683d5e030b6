"""`genai-otel calibrate FILE.csv`: how well the LLM judge agrees with human labels.

Exit codes: 0 the kappa meets the target (> 0.85), 1 it does not, 2 the file cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

from genai_otel.quality.calibration import DEFAULT_BINS, Calibration, calibrate, read_pairs

MAX_BAD_ROWS_SHOWN = 20


def _fmt(value: Fraction | None) -> str:
    return "undefined (chance agreement is total)" if value is None else f"{float(value):.3f}"


def render(result: Calibration, bins: tuple[float, ...]) -> str:
    target = float(result.target)
    lines = [f"samples: {result.samples}"]
    if result.bad_rows:
        lines.append(f"bad rows: {len(result.bad_rows)} (skipped)")
        lines += [f"  line {bad.line}: {bad.reason}" for bad in result.bad_rows[:MAX_BAD_ROWS_SHOWN]]
        if len(result.bad_rows) > MAX_BAD_ROWS_SHOWN:
            lines.append(f"  ... and {len(result.bad_rows) - MAX_BAD_ROWS_SHOWN} more")
    binned = f" (scores binned at {', '.join(f'{edge:g}' for edge in bins)})" if result.weighted_kappa else ""
    lines.append(f"agreement: {float(result.agreement):.1%}{binned}")
    lines.append(f"cohen kappa (unweighted){binned}: {_fmt(result.kappa)}")
    if result.weighted_kappa is not None:
        lines.append(f"cohen kappa (quadratic-weighted, 0-10 scale): {_fmt(result.weighted_kappa)}")
    verdict = "PASS" if result.passed else "FAIL"
    lines.append(f"target kappa > {target:g}: {verdict}")
    return "\n".join(lines)


def _bins(text: str) -> tuple[float, ...]:
    try:
        edges = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bins must be comma-separated numbers, got {text!r}") from None
    if list(edges) != sorted(set(edges)) or not all(0 < e <= 10 for e in edges):
        raise argparse.ArgumentTypeError(f"--bins must be increasing edges within (0, 10], got {text!r}")
    return edges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genai-otel calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "file", type=Path, help="CSV: id,judge_score,human_score or id,judge_label,human_label"
    )
    parser.add_argument(
        "--bins",
        type=_bins,
        default=DEFAULT_BINS,
        help="score edges for the labels of the unweighted kappa (default 4,7: low/medium/high)",
    )
    args = parser.parse_args(argv)
    try:
        pairs = read_pairs(args.file)
    except FileNotFoundError:
        print(f"genai-otel calibrate: {args.file}: no such file", file=sys.stderr)
        return 2
    except (ValueError, UnicodeDecodeError) as error:
        print(f"genai-otel calibrate: {args.file}: {error}", file=sys.stderr)
        return 2
    if not pairs.judge:
        print(f"genai-otel calibrate: {args.file}: no usable rows", file=sys.stderr)
        for row in pairs.bad_rows[:MAX_BAD_ROWS_SHOWN]:
            print(f"  line {row.line}: {row.reason}", file=sys.stderr)
        return 2
    result = calibrate(pairs, args.bins)
    print(render(result, args.bins))
    return 0 if result.passed else 1
