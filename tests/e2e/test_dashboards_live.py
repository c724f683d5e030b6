"""Dashboards and alerts against the live local stack with demo traffic.

The demo (errors, slow calls, a budget-breaking batch job) and a small extras app (judge scores,
an unpriced model) run through the real collector, processor, Prometheus and Alertmanager. Then:
every query of every generated panel returns data with the template variables set to "All";
every generated rule evaluates without error; the error-rate and daily-budget alerts fire in
Prometheus and reach a local webhook through Alertmanager, routed by severity.

Rules are rendered from prometheus/slos.yaml with short pending periods and a small budget: the
budget counter starts at the first scrape, so the first $19 batch call is never an increase.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from genai_otel.demo.run import instrumented_command
from genai_otel.fake_provider import FakeProvider
from genai_otel.observability import dashboards, rules
from genai_otel.observability import recording as rec
from genai_otel.observability.alertmanager import render_config
from genai_otel.observability.spec import load_spec
from genai_otel.stack.query import get_json, prometheus_query, prometheus_scalar, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import demo_environment

pytestmark = pytest.mark.e2e

SERVICE = "genai-otel-demo"
EXTRAS_APP = Path(__file__).with_name("dashboard_extras_app.py")
DEMO_SECONDS = 50
TEST_BUDGET_USD = 10.0
FAST_PENDING = {"LLMErrorRateHigh": "5s", "LLMDailyCostOverBudget": "5s"}
ALL = ".*"


class Webhook:
    """A local Alertmanager webhook receiver that keeps every notification it is sent."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def firing(self) -> dict[str, str]:
        """alertname -> receiver, for every firing alert notified so far."""
        return {
            alert["labels"]["alertname"]: notification["receiver"]
            for notification in list(self.notifications)
            for alert in notification["alerts"]
            if alert["status"] == "firing"
        }


@dataclass
class LiveRun:
    prometheus: str
    webhook: Webhook


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    require_binaries: Callable[..., None],
    require_processor: None,
) -> Iterator[LiveRun]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp = tmp_path_factory.mktemp("dashboards-live")
    spec = load_spec().with_overrides(daily_cost_budget_usd=TEST_BUDGET_USD, pending=FAST_PENDING)
    rules_dir = tmp / "rules"
    rules_dir.mkdir()
    for name, content in rules.rule_files(spec).items():
        (rules_dir / name).write_text(content, encoding="utf-8")
    with Webhook() as webhook:
        stack = LocalStack(
            tmp / "run",
            ports=free_ports(),
            build_missing=False,
            scrape_interval="1s",
            rules_dir=rules_dir,
            alertmanager_config=render_config(webhook.url, tmp / "alertmanager.yml", fast=True),
        )
        try:
            endpoints = stack.start(timeout=60)
            with FakeProvider() as provider:
                env = demo_environment(endpoints, provider.base_url, DEMO_RATE="6", DEMO_SLOW_MS="6000")
                demo = subprocess.Popen(
                    instrumented_command("-m", "genai_otel.demo.app", "--duration", str(DEMO_SECONDS)),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                extras = subprocess.run(
                    instrumented_command(str(EXTRAS_APP)),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert extras.returncode == 0, extras.stderr[-3000:]
                _, demo_errors = demo.communicate(timeout=DEMO_SECONDS + 60)
                assert demo.returncode == 0, demo_errors[-3000:]
            yield LiveRun(endpoints["prometheus_url"], webhook)
        finally:
            stack.stop()


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, expr) of every target of every generated dashboard."""
    spec = load_spec()
    queries = []
    for definition in dashboards.DASHBOARDS:
        board = json.loads(dashboards.to_json(dashboards.build(definition, spec)))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((board["title"], panel["title"], target["expr"]))
    return queries


def _substitute(expr: str) -> str:
    """Template variables as Grafana sends them for "All"; history older than the stack dropped.

    An `offset 1d`/`offset 1w` comparison cannot have data in a stack minutes old: its series is
    checked without the offset (the offset itself is exercised by the promtool tests).
    """
    for variable in ("service", "provider", "model"):
        expr = expr.replace(f"${variable}", ALL)
    return re.sub(r"\s+offset\s+\d+[smhdwy]", "", expr)


QUERIES = _panel_queries()


@pytest.mark.parametrize(("board", "panel", "expr"), QUERIES, ids=[f"{b}: {p}" for b, p, _ in QUERIES])
def test_every_panel_query_returns_data(live: LiveRun, board: str, panel: str, expr: str) -> None:
    query = _substitute(expr)

    def has_data() -> list[dict[str, Any]] | None:
        return prometheus_query(live.prometheus, query) or None

    try:
        wait_for(has_data, timeout=60, interval=2, what=f"data for {board} / {panel}")
    except TimeoutError:
        pytest.fail(f"{board} / {panel}: no data for {query}")


def test_every_generated_rule_evaluates_without_error(live: LiveRun) -> None:
    groups = get_json(f"{live.prometheus}/api/v1/rules")["data"]["groups"]
    assert {group["file"].rsplit("/", 1)[-1] for group in groups} == set(rules.rule_files(load_spec()))
    broken = [
        (rule["name"], rule.get("lastError"))
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not broken


def test_safety_rates_are_what_the_extras_app_recorded(live: LiveRun) -> None:
    """The extras app judged gpt-4o three times: hallucination 1 and 0 (half flagged), toxicity 0.02
    (under the 0.5 threshold); and the fake provider's content filter refused three of its calls."""
    where = f'service="{SERVICE}", provider="openai", model="gpt-4o"'

    def ratio(evaluation: str) -> float | None:
        return prometheus_scalar(
            live.prometheus, f'{rec.SAFETY_FLAGGED_RATIO_RATE1H}{{{where}, evaluation="{evaluation}"}}'
        )

    def both() -> tuple[float, float] | None:
        hallucination, toxicity = ratio("hallucination"), ratio("toxicity")
        return None if hallucination is None or toxicity is None else (hallucination, toxicity)

    hallucination, toxicity = wait_for(both, timeout=60, interval=2, what="the safety rates of gpt-4o")
    assert hallucination == pytest.approx(0.5)
    assert toxicity == 0
    blocked = prometheus_scalar(live.prometheus, f"{rec.CONTENT_FILTER_RATIO_RATE5M}{{{where}}}")
    assert blocked is not None and blocked > 0


def _firing_in_prometheus(prometheus: str, alertname: str) -> list[dict[str, Any]] | None:
    alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    found = [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]
    return found or None


def test_error_rate_alert_fires_and_reaches_the_webhook(live: LiveRun) -> None:
    firing = wait_for(
        lambda: _firing_in_prometheus(live.prometheus, "LLMErrorRateHigh"),
        timeout=90,
        interval=2,
        what="LLMErrorRateHigh firing in Prometheus",
    )
    assert all(alert["labels"]["service"] == SERVICE for alert in firing)
    assert {alert["labels"]["severity"] for alert in firing} <= {"high", "critical"}
    receivers = wait_for(
        lambda: live.webhook.firing() if "LLMErrorRateHigh" in live.webhook.firing() else None,
        timeout=60,
        interval=1,
        what="LLMErrorRateHigh at the webhook",
    )
    assert receivers["LLMErrorRateHigh"] in {"genai-otel-high", "genai-otel-critical"}


def test_daily_budget_alert_fires_and_reaches_the_webhook(live: LiveRun) -> None:
    (alert,) = wait_for(
        lambda: _firing_in_prometheus(live.prometheus, "LLMDailyCostOverBudget"),
        timeout=90,
        interval=2,
        what="LLMDailyCostOverBudget firing in Prometheus",
    )
    # external labels (stack="genai-otel") are added only on the way to Alertmanager
    assert alert["labels"] == {"alertname": "LLMDailyCostOverBudget", "severity": "high"}
    assert alert["annotations"]["description"].endswith(f"(daily budget ${TEST_BUDGET_USD:g}).")
    spent = float(alert["annotations"]["description"].split("$")[1].split(" ")[0])
    assert spent > TEST_BUDGET_USD
    receivers = wait_for(
        lambda: live.webhook.firing() if "LLMDailyCostOverBudget" in live.webhook.firing() else None,
        timeout=60,
        interval=1,
        what="LLMDailyCostOverBudget at the webhook",
    )
    assert receivers["LLMDailyCostOverBudget"] == "genai-otel-high"
