"""Grafana's provisioned datasources reach the live Prometheus and Jaeger of the local stack.

Grafana cannot run here: the stand-in of tests/test_stack_grafana.py (a script named like
Grafana's binary, in a Grafana home) takes its place and requests each provisioned datasource URL
as Grafana's proxy would, beside the real Prometheus and Jaeger binaries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from genai_otel.stack import release
from genai_otel.stack.runner import LocalStack, free_ports
from tests.test_stack_grafana import RECORD_VARIABLE, grafana_home, recorded


def test_provisioned_datasources_reach_the_live_prometheus_and_jaeger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, require_binaries: Callable[..., None]
) -> None:
    require_binaries("jaeger", "prometheus")
    binary = grafana_home(tmp_path / "grafana-home")
    monkeypatch.setenv(RECORD_VARIABLE, str(tmp_path / "record.json"))
    monkeypatch.setenv(release.DOWNLOAD_VARIABLE, "0")
    stack = LocalStack(
        tmp_path / "run",
        ports=free_ports(),
        services=("jaeger", "prometheus"),
        build_missing=False,
        grafana=str(binary),
    )
    with stack:
        assert stack.endpoints()["grafana_url"] == f"http://127.0.0.1:{stack.ports['GRAFANA_PORT']}"
        got = recorded(tmp_path)
        assert got["reached"] == {"genai-otel-prometheus": 200, "genai-otel-jaeger": 200}
        pids = stack.running_pids()
        assert set(pids) == {"jaeger", "prometheus", "grafana"}
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
