"""The generated rules are valid and behave as their promtool unit tests say."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from genai_otel.observability.generate import RULES_DIR
from genai_otel.observability.spec import REPO_ROOT

TESTS_DIR = REPO_ROOT / "prometheus" / "tests"


def _rule_files() -> list[Path]:
    return sorted((REPO_ROOT / RULES_DIR).glob("*.yml"))


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_check_rules_is_clean(require_binary: Callable[[str], Path]) -> None:
    promtool = require_binary("promtool")
    result = _run([str(promtool), "check", "rules", *map(str, _rule_files())])
    assert result.returncode == 0, result.stdout + result.stderr
    # no warnings either (promtool prints them but still exits 0)
    assert "WARNING" not in result.stdout + result.stderr


def test_promtool_unit_tests_pass(require_binary: Callable[[str], Path]) -> None:
    promtool = require_binary("promtool")
    test_files = sorted(TESTS_DIR.glob("*_test.yml"))
    result = _run([str(promtool), "test", "rules", *map(str, test_files)])
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for path in _rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules += group["rules"]
    return rules


def _tests() -> list[dict[str, object]]:
    groups: list[dict[str, object]] = []
    for path in sorted(TESTS_DIR.glob("*_test.yml")):
        groups += yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    return groups


def test_every_alert_has_silent_firing_and_negative_cases() -> None:
    """Each alert: a test before `for` with no alert, one at `for` with exact annotations."""
    cases: dict[str, list[dict[str, object]]] = {}
    for group in _tests():
        for case in group.get("alert_rule_test", []):  # type: ignore[attr-defined]
            cases.setdefault(case["alertname"], []).append(case)
    alerts = {str(rule["alert"]) for rule in _rules() if "alert" in rule}
    assert alerts, "no alerts generated"
    missing = sorted(alerts - set(cases))
    assert not missing, f"alerts without promtool tests: {missing}"
    for name in alerts:
        silent = [c for c in cases[name] if not c.get("exp_alerts")]
        firing = [c for c in cases[name] if c.get("exp_alerts")]
        assert silent and firing, f"{name}: needs a silent and a firing case"
        for case in firing:
            for expected in case["exp_alerts"]:  # type: ignore[attr-defined]
                assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}, name


def test_every_recording_rule_has_an_expression_test() -> None:
    tested = " ".join(
        str(case["expr"])
        for group in _tests()
        for case in group.get("promql_expr_test", [])  # type: ignore[attr-defined]
    )
    records = {str(rule["record"]) for rule in _rules() if "record" in rule}
    untested = sorted(record for record in records if record not in tested)
    assert not untested, f"recording rules without a promql_expr_test: {untested}"
