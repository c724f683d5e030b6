"""prometheus/alertmanager.yml: valid, routes by severity, and a critical alert silences its twin.

Runs the real amtool and alertmanager binaries (scripts/build-components) on a free port.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from genai_otel.observability.alertmanager import ALERTMANAGER_CONFIG, render_config
from genai_otel.stack.runner import free_port


def _amtool(amtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(amtool), *args], capture_output=True, text=True, timeout=60, check=False)


def test_committed_and_rendered_configs_are_valid(
    require_binary: Callable[[str], Path], tmp_path: Path
) -> None:
    amtool = require_binary("amtool")
    rendered = render_config("http://127.0.0.1:1/hook", tmp_path / "am.yml", fast=True)
    for config in (ALERTMANAGER_CONFIG, rendered):
        result = _amtool(amtool, "check-config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=GenAIOtelProcessorDown"], "genai-otel-critical"),
        (["severity=high", "alertname=LLMErrorRateHigh"], "genai-otel-high"),
        (["severity=medium", "alertname=LLMLatencyP95High"], "genai-otel-medium"),
        (["severity=low", "alertname=LLMUnpricedModel"], "genai-otel-low"),
        (["alertname=SomethingWithoutSeverity"], "genai-otel-medium"),
    ],
)
def test_routing_by_severity(require_binary: Callable[[str], Path], labels: list[str], receiver: str) -> None:
    amtool = require_binary("amtool")
    result = _amtool(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


class _Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def alertmanager(require_binary: Callable[[str], Path], tmp_path: Path) -> Iterator[tuple[str, _Webhook]]:
    binary = require_binary("alertmanager")
    webhook = _Webhook()
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    config = render_config(f"http://127.0.0.1:{webhook.server_address[1]}/", tmp_path / "am.yml", fast=True)
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"alertmanager did not start: {(tmp_path / 'alertmanager.log').read_text()}")
                time.sleep(0.1)
        yield url, webhook
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        webhook.shutdown()
        webhook.server_close()


def _alert(severity: str, model: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": "LLMErrorRateHigh",
            "severity": severity,
            "service": "chat",
            "provider": "openai",
            "model": model,
        },
        "annotations": {"summary": "LLM calls of one model are failing"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }


def test_a_critical_alert_silences_its_high_twin_only(alertmanager: tuple[str, _Webhook]) -> None:
    url, webhook = alertmanager
    body = json.dumps([_alert("critical", "gpt-4o"), _alert("high", "gpt-4o"), _alert("high", "gpt-4o-mini")])
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    def notified() -> set[tuple[str, str, str]]:
        return {
            (n["receiver"], a["labels"]["severity"], a["labels"]["model"])
            for n in list(webhook.received)
            for a in n["alerts"]
        }

    deadline = time.monotonic() + 20
    while len(notified()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # anything that should not arrive has had its group_wait (1s) too
    assert notified() == {
        ("genai-otel-critical", "critical", "gpt-4o"),
        ("genai-otel-high", "high", "gpt-4o-mini"),
    }
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        states = {
            (a["labels"]["severity"], a["labels"]["model"]): a["status"]["state"] for a in json.load(response)
        }
    assert states == {
        ("critical", "gpt-4o"): "active",
        ("high", "gpt-4o"): "suppressed",
        ("high", "gpt-4o-mini"): "active",
    }
