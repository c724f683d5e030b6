"""Regenerate every derived artefact from its source, or check that none is stale.

Sources: `prometheus/slos.yaml` (+ `DAILY_COST_BUDGET_USD` from `.env`) and the code in
`genai_otel/observability/`. Outputs: `prometheus/rules/*.yml`, `grafana/dashboards/*.json`,
the generated regions of the collector configs (`genai_otel.observability.collector_split`) and the
Kubernetes chart's copies of all these (`genai_otel.observability.chart_files`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from genai_otel.observability import chart_files, collector_split, dashboards, rules
from genai_otel.observability.spec import REPO_ROOT, SPEC_FILE, Spec, SpecError, load_spec

logger = logging.getLogger(__name__)

RULES_DIR = Path("prometheus/rules")
DASHBOARDS_DIR = Path("grafana/dashboards")
GENERATED_MARK = "generated — do not edit"


def outputs(spec: Spec, root: Path = REPO_ROOT) -> dict[Path, str]:
    """Relative path -> content of every generated file (or generated region, for the collector
    configs: their hand-written rest is read from `root`)."""
    files = {RULES_DIR / name: content for name, content in rules.rule_files(spec).items()}
    files |= {DASHBOARDS_DIR / name: content for name, content in dashboards.dashboard_files(spec).items()}
    files |= collector_split.outputs(root)
    files |= chart_files.outputs(root, files)
    return files


def _stale_generated_files(root: Path, expected: dict[Path, str]) -> list[Path]:
    """Generated files on disk that the sources no longer produce."""
    leftovers = []
    for folder, pattern in ((RULES_DIR, "*.yml"), (DASHBOARDS_DIR, "*.json")):
        for path in sorted((root / folder).glob(pattern)):
            relative = path.relative_to(root)
            if relative not in expected and GENERATED_MARK in path.read_text(encoding="utf-8")[:2000]:
                leftovers.append(relative)
    return leftovers + chart_files.stale(root, expected)


def write(spec: Spec, root: Path = REPO_ROOT) -> list[Path]:
    """Write every output under `root`; returns the paths whose content changed."""
    expected = outputs(spec, root)
    changed = []
    for relative, content in expected.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(relative)
    for relative in _stale_generated_files(root, expected):
        (root / relative).unlink()
        changed.append(relative)
    return changed


def check(spec: Spec, root: Path = REPO_ROOT) -> list[str]:
    """Human-readable problems; empty when every output is up to date."""
    expected = outputs(spec, root)
    problems = []
    for relative, content in expected.items():
        path = root / relative
        if not path.exists():
            problems.append(f"{relative}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{relative}: stale (differs from what its sources generate)")
    problems += [f"{relative}: no longer generated" for relative in _stale_generated_files(root, expected)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="genai-otel generate",
        description="Regenerate Prometheus rules and Grafana dashboards from prometheus/slos.yaml and code.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any output is stale")
    parser.add_argument("--spec", type=Path, default=SPEC_FILE, help="the SLO and threshold spec")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the repository to write into")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
        outputs(spec, args.root)
    except (SpecError, collector_split.SplitError, OSError) as exc:
        print(f"genai-otel generate: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(spec, args.root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("genai-otel generate: outputs are stale; run `genai-otel generate`", file=sys.stderr)
            return 1
        print(f"genai-otel generate: {len(outputs(spec, args.root))} outputs up to date")
        return 0
    changed = write(spec, args.root)
    for relative in changed:
        print(f"wrote {relative}")
    print(f"genai-otel generate: {len(changed)} of {len(outputs(spec, args.root))} outputs changed")
    return 0
