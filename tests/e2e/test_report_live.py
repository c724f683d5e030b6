"""`genai-otel report` against the live local stack with demo traffic (bounded: about a minute).

The report's cost by model must equal what Prometheus itself computes at the same instant, and
the text report must name every model the demo called and every model it judged.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from genai_otel.cli import main as cli_main
from genai_otel.demo.run import instrumented_command
from genai_otel.fake_provider import FakeProvider
from genai_otel.stack.query import get_json, prometheus_query, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import demo_environment

pytestmark = pytest.mark.e2e

DEMO_SECONDS = 25
RANGE = "10m"
JUDGED_BY_DEMO = {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"}


@dataclass
class LiveRun:
    prometheus: str
    at: float


def _settled(prometheus: str) -> float | None:
    """The total request count once two scrapes a few seconds apart agree (the demo has flushed)."""
    first = prometheus_query(prometheus, "sum(llm_requests_total)")
    time.sleep(3)
    second = prometheus_query(prometheus, "sum(llm_requests_total)")
    if first and second and first[0]["value"][1] == second[0]["value"][1]:
        return float(second[0]["value"][1])
    return None


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    require_binaries: Callable[..., None],
    require_processor: None,
) -> Iterator[LiveRun]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp = tmp_path_factory.mktemp("report-live")
    stack = LocalStack(tmp / "run", ports=free_ports(), build_missing=False, scrape_interval="1s")
    try:
        endpoints = stack.start(timeout=60)
        with FakeProvider() as provider:
            env = demo_environment(
                endpoints,
                provider.base_url,
                DEMO_RATE="20",
                DEMO_SLOW_MS="200",
                DEMO_BUDGET_BREACH_CALLS="1",
                OTEL_METRIC_EXPORT_INTERVAL="1000",
            )
            demo = subprocess.run(
                instrumented_command("-m", "genai_otel.demo.app", "--duration", str(DEMO_SECONDS)),
                env=env,
                capture_output=True,
                text=True,
                timeout=DEMO_SECONDS + 45,
                check=False,
            )
            assert demo.returncode == 0, demo.stderr[-3000:]
        prometheus = endpoints["prometheus_url"]
        wait_for(lambda: _settled(prometheus), timeout=30, interval=0, what="demo metrics settled")
        yield LiveRun(prometheus, time.time())
    finally:
        stack.stop()


def _report(live: LiveRun, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    argv = ["report", "--prometheus", live.prometheus, "--range", RANGE, "--at", repr(live.at)]
    assert cli_main([*argv, "--format", fmt]) == 0
    return capsys.readouterr().out


def _at(live: LiveRun, expr: str) -> list[dict[str, object]]:
    body = get_json(f"{live.prometheus}/api/v1/query", {"query": expr, "time": repr(live.at)})
    assert body["status"] == "success"
    return list(body["data"]["result"])


def test_cost_by_model_equals_prometheus(live: LiveRun, capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads(_report(live, "json", capsys))
    from_report = {row["key"][1]: row["usd"] for row in report["cost_by_model"]}
    expected = {
        sample["metric"]["model"]: float(sample["value"][1])  # type: ignore[index]
        for sample in _at(live, f"sum by (model) (increase(llm_cost_usd_total[{RANGE}]))")
    }
    assert len(expected) >= 4
    assert from_report == expected


def test_text_report_names_every_demo_model(live: LiveRun, capsys: pytest.CaptureFixture[str]) -> None:
    text = _report(live, "text", capsys)
    called = {s["metric"]["model"] for s in _at(live, "sum by (model) (llm_requests_total)")}  # type: ignore[index]
    judged = {s["metric"]["model"] for s in _at(live, "sum by (model) (llm_quality_score_count)")}  # type: ignore[index]
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"} <= called
    assert judged and judged <= JUDGED_BY_DEMO
    assert [model for model in sorted(called) if model not in text] == []
    quality_lines = text.split("Cheaper models where quality allows", 1)[1].splitlines()
    assert {model for model in judged if any(f"  {model}  " in line for line in quality_lines)} == judged
    assert text.startswith(f"LLM cost report: last {RANGE} until ")
