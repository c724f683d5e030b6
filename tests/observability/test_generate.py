"""`genai-otel generate`: the committed outputs are up to date, and --check notices when not."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genai_otel.observability import generate, rules
from genai_otel.observability.spec import REPO_ROOT, SPEC_FILE, SpecError, load_spec


def _genai_otel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genai_otel", "generate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )


def test_committed_outputs_are_up_to_date() -> None:
    result = _genai_otel("--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "genai-otel generate: 24 outputs up to date"


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """A copy of the generated outputs and the spec, to break without touching the repository."""
    for folder in (generate.RULES_DIR, generate.DASHBOARDS_DIR, Path("collector-config")):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    return tmp_path


def test_check_fails_on_an_edited_rule_file_and_generate_repairs_it(scratch_repo: Path) -> None:
    edited = scratch_repo / generate.RULES_DIR / "genai-otel-alerts.yml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("> 0.05", "> 0.5"), encoding="utf-8")

    result = _genai_otel("--check", "--root", str(scratch_repo))
    assert result.returncode == 1
    assert "prometheus/rules/genai-otel-alerts.yml: stale (differs from what its sources generate)" in (
        result.stderr
    )

    assert _genai_otel("--root", str(scratch_repo)).returncode == 0
    assert _genai_otel("--check", "--root", str(scratch_repo)).returncode == 0


def test_check_fails_on_a_missing_dashboard_and_a_leftover_generated_file(scratch_repo: Path) -> None:
    (scratch_repo / generate.DASHBOARDS_DIR / "genai-otel-cost.json").unlink()
    leftover = scratch_repo / generate.RULES_DIR / "old.yml"
    leftover.write_text(rules.GENERATED_HEADER + "groups: []\n", encoding="utf-8")
    hand_written = scratch_repo / generate.RULES_DIR / "team.yml"
    hand_written.write_text("groups: []\n", encoding="utf-8")

    result = _genai_otel("--check", "--root", str(scratch_repo))
    assert result.returncode == 1
    assert "grafana/dashboards/genai-otel-cost.json: missing" in result.stderr
    assert "prometheus/rules/old.yml: no longer generated" in result.stderr
    assert "team.yml" not in result.stderr  # files without the generated header are left alone


def test_every_generated_file_says_it_is_generated() -> None:
    spec = load_spec()
    for relative, content in generate.outputs(spec).items():
        if relative.parts[0] == "collector-config":  # hand-written configs with a generated region
            assert re.search(
                r"^ *# >>> (generated|copied) by `genai-otel generate`.*do not edit$", content, re.M
            )
            continue
        assert "generated — do not edit" in content[:400], relative


def test_check_fails_on_an_edited_genai_split(scratch_repo: Path) -> None:
    config = scratch_repo / "collector-config" / "gateway.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace('"gen_ai.system"] != nil or ', ""))
    result = _genai_otel("--check", "--root", str(scratch_repo))
    assert result.returncode == 1
    assert "collector-config/gateway.yaml: stale" in result.stderr


def test_daily_budget_comes_from_env_unless_the_spec_sets_it(tmp_path: Path) -> None:
    spec = load_spec(SPEC_FILE, env={"DAILY_COST_BUDGET_USD": "250"})
    assert spec.daily_cost_budget_usd == 250
    alerts = yaml.safe_load(rules.rule_files(spec)["genai-otel-alerts.yml"])
    (budget,) = [
        rule
        for group in alerts["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "LLMDailyCostOverBudget"
    ]
    assert budget["expr"] == "sum(service_provider_model:llm_cost_usd:increase1d) > 250"
    assert budget["annotations"]["description"].endswith("(daily budget $250).")

    own = tmp_path / "slos.yaml"
    own.write_text("thresholds:\n  daily_cost_budget_usd: 7.5\n", encoding="utf-8")
    assert load_spec(own, env={"DAILY_COST_BUDGET_USD": "250"}).daily_cost_budget_usd == 7.5


def test_overrides_render_a_test_variant() -> None:
    spec = load_spec().with_overrides(daily_cost_budget_usd=0.01, pending={"LLMErrorRateHigh": "30s"})
    alerts = yaml.safe_load(rules.rule_files(spec)["genai-otel-alerts.yml"])
    by_name = {(r["alert"], r["labels"]["severity"]): r for g in alerts["groups"] for r in g["rules"]}
    assert by_name[("LLMErrorRateHigh", "high")]["for"] == "30s"
    assert by_name[("LLMDailyCostOverBudget", "high")]["expr"].endswith("> 0.01")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "thresholds:\n  error_ratio_high: 5\n",
            "thresholds.error_ratio_high=5: Input should be less than 1",
        ),
        ("for:\n  LLMErrorRateHigh: soon\n", "for.LLMErrorRateHigh: 'soon' is not a Prometheus duration"),
        (
            "slos:\n  - {name: latency, kind: latency, objective: 0.9, description: x,"
            " threshold_seconds: 5}\n",
            "a latency SLO needs a bucket boundary of llm_request_duration_seconds",
        ),
        ("colour: red\n", "colour='red': Extra inputs are not permitted"),
        ("slo_period: 2d\n", "'2d' is shorter than the longest burn-rate window (3d)"),
    ],
)
def test_invalid_spec_names_key_value_and_rule(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "slos.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as error:
        load_spec(bad, env={"DAILY_COST_BUDGET_USD": "100"})
    assert message in str(error.value)


def test_generate_without_the_dashboards_extra_says_which_extra_to_install() -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['grafana_foundation_sdk'] = None\n"  # as if it were not installed
        "from genai_otel.generate import main\n"
        "sys.exit(main(['--check']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "genai-otel generate: the dashboards are built with grafana-foundation-sdk, which is not "
        "installed here: pip install 'genai-otel[dashboards]'"
    )


@pytest.mark.parametrize(
    ("period", "factors"),
    [("30d", [14.4, 6.0, 3.0, 1.0]), ("4w", [13.44, 5.6, 2.8, 0.933333]), ("7d", [3.36, 1.4, 0.7, 0.233333])],
)
def test_burn_rate_factors_follow_the_slo_period(tmp_path: Path, period: str, factors: list[float]) -> None:
    """The same budget shares (2% in 1h, 5% in 6h, 10% in 1d, 10% in 3d) of a shorter period's
    budget are smaller burn rates; the rendered alert thresholds are factor x error budget."""
    from genai_otel.observability.slo import PAGE, TICKET

    assert [window.factor(period) for window in (*PAGE, *TICKET)] == factors
    spec_file = tmp_path / "slos.yaml"
    spec_file.write_text(
        f"slo_period: {period}\nslos:\n  - {{name: availability, kind: availability, objective: 0.99,"
        " description: x}\n",
        encoding="utf-8",
    )
    spec = load_spec(spec_file, env={"DAILY_COST_BUDGET_USD": "100"})
    text = rules.rule_files(spec)["genai-otel-slos.yml"]
    # each branch is "(long window > threshold and short window > threshold)": the long ones, in order
    thresholds = [
        float(t) for t in re.findall(r"\(\s*slo:sli_error:ratio_rate\w+\{[^}]*\} > ([0-9.e-]+)", text)
    ]
    assert thresholds == pytest.approx([f * 0.01 for f in factors], rel=1e-6)
    assert f"the {period} budget" in text


def test_the_charts_copies_follow_their_sources(scratch_repo: Path) -> None:
    assert _genai_otel("--root", str(scratch_repo)).returncode == 0
    chart_files = scratch_repo / "deploy" / "helm" / "genai-otel" / "files"
    gateway = (scratch_repo / "collector-config" / "gateway.yaml").read_text(encoding="utf-8")
    assert (chart_files / "collector" / "gateway.yaml").read_text(encoding="utf-8") == (
        "# generated — do not edit: a copy of collector-config/gateway.yaml, "
        "written by `genai-otel generate`\n" + gateway
    )
    source = scratch_repo / "collector-config" / "gateway.yaml"
    source.write_text(gateway.replace("queue_size: 5000", "queue_size: 6000"), encoding="utf-8")
    (chart_files / "dashboards" / "old.json").write_text("{}", encoding="utf-8")

    result = _genai_otel("--check", "--root", str(scratch_repo))
    assert result.returncode == 1
    assert result.stderr.splitlines()[:2] == [
        "deploy/helm/genai-otel/files/collector/gateway.yaml: stale (differs from what its sources generate)",
        "deploy/helm/genai-otel/files/dashboards/old.json: no longer generated",
    ]
    assert _genai_otel("--root", str(scratch_repo)).returncode == 0
    assert "queue_size: 6000" in (chart_files / "collector" / "gateway.yaml").read_text(encoding="utf-8")
    assert not (chart_files / "dashboards" / "old.json").exists()
