"""`genai-otel demo` as the README runs it (shortened): stack up, demo traffic, where to look, stop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from genai_otel.stack.runner import free_ports


def test_demo_sends_traffic_through_the_stack_and_stops_cleanly(
    tmp_path: Path, require_binaries: Callable[..., None], require_processor: None
) -> None:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    ports = free_ports()
    fake_provider_port = free_ports()["OTLP_GRPC_PORT"]
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("OTEL_")},
        **{key: str(value) for key, value in ports.items()},
        "FAKE_PROVIDER_PORT": str(fake_provider_port),
        "DEMO_RATE": "10",
        "DEMO_SLOW_MS": "300",
        "DEMO_BUDGET_BREACH_CALLS": "1",
    }
    run_dir = tmp_path / "run"
    demo = subprocess.run(
        [sys.executable, "-m", "genai_otel", "demo", "--duration", "6", "--run-dir", str(run_dir), "--stop"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "where to look:" in demo.stdout
    assert f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}/api/traces?service=genai-otel-demo" in demo.stdout
    assert "stack stopped" in demo.stdout
    summary = [line for line in demo.stderr.splitlines() if " demo done: " in line]
    assert len(summary) == 1, demo.stderr[-3000:]
    assert not (run_dir / "stack.json").exists()
    # the processor priced the demo's spans and forwarded them all when it drained at --stop
    processor_log = (run_dir / "logs" / "processor.log").read_text()
    (forwarded,) = re.findall(r"processor stopped: (\d+) spans forwarded", processor_log)
    assert int(forwarded) > 0
