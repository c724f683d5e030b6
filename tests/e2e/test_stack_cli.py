"""`genai-otel stack up|status|down` as a user runs it: real binaries, ports overridden by env vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genai_otel.stack.query import get_json, wait_for
from genai_otel.stack.runner import free_ports


def prometheus_targets(prometheus_url: str) -> list[dict[str, Any]]:
    return list(get_json(prometheus_url + "/api/v1/targets")["data"]["activeTargets"])


def _stack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genai_otel", "stack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_up_status_down_on_ports_from_the_environment(
    tmp_path: Path, require_binaries: Callable[..., None], require_processor: None
) -> None:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    ports = free_ports()
    env = {**os.environ, **{key: str(value) for key, value in ports.items()}}
    run_dir = tmp_path / "run"
    up = _stack("up", "--run-dir", str(run_dir), "--no-build", env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}" in up.stdout

        status = _stack("status", "--run-dir", str(run_dir), "--json", env=env)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["otlp_grpc_endpoint"] == f"http://127.0.0.1:{ports['OTLP_GRPC_PORT']}"
        assert report["otlp_http_endpoint"] == f"http://127.0.0.1:{ports['OTLP_HTTP_PORT']}"
        assert report["jaeger_url"] == f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}"
        assert report["prometheus_url"] == f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        assert report["alertmanager_url"] == f"http://127.0.0.1:{ports['ALERTMANAGER_PORT']}"
        assert (
            report["processor_metrics_url"] == f"http://127.0.0.1:{ports['PROCESSOR_METRICS_PORT']}/metrics"
        )
        services = report["services"]
        assert set(services) == {"collector", "processor", "jaeger", "prometheus", "alertmanager"}
        assert all(info["healthy"] for info in services.values()), services
        assert services["processor"]["hot_path"] == "accelerated"
        pids = {name: int(info["pid"]) for name, info in services.items()}

        # Prometheus scrapes the processor and the collector from the rendered template (its
        # target discovery publishes the static targets within about 5 s of start-up)
        def targets() -> list[dict[str, Any]] | None:
            found = prometheus_targets(report["prometheus_url"])
            return found or None

        scraped = {
            target["labels"]["job"]: target["scrapeUrl"] for target in wait_for(targets, what="targets")
        }
        assert scraped["genai-otel-processor"] == report["processor_metrics_url"]
        assert scraped["otel-collector"] == f"http://127.0.0.1:{ports['COLLECTOR_TELEMETRY_PORT']}/metrics"

        again = _stack("up", "--run-dir", str(run_dir), "--no-build", env=env)
        assert again.returncode == 1
        assert "already running" in again.stderr
    finally:
        down = _stack("down", "--run-dir", str(run_dir), env=env)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
    stopped = _stack("status", "--run-dir", str(run_dir), "--json", env=env)
    assert stopped.returncode == 0
    assert json.loads(stopped.stdout)["running"] is False
