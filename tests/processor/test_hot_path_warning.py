"""A processor on its slow path says so at WARNING, with what it costs and the one fix, and
`genai-otel stack status` repeats it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.config import load_config
from genai_otel.processors.service import Processor, slow_path_warning

from genai_otel.stack.runner import processor_hot_path

from .helpers import Sink


async def _start_and_stop(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    sink = await Sink().start()
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "forward": {"endpoint": f"127.0.0.1:{sink.port}"},
        },
        environ={},
    )
    processor = Processor(config)
    with caplog.at_level(logging.INFO, logger="genai_otel.processors.service"):
        await processor.start()
        await processor.stop()
    await sink.stop()
    return [r for r in caplog.records if "hot path" in r.getMessage()]


@pytest.mark.skipif(not scan_module.accelerated_available(), reason="the _wirescan extension is not built")
async def test_the_accelerated_path_is_an_info_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(scan_module.PURE_PYTHON_ENV, raising=False)
    (record,) = await _start_and_stop(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("hot path: accelerated")


async def test_the_slow_path_is_a_warning_with_its_cost_and_its_fix(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(scan_module.PURE_PYTHON_ENV, "1")
    (record,) = await _start_and_stop(caplog)
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message == "hot path: " + slow_path_warning()
    assert "about 16,000 GenAI spans per CPU-second instead of over 100,000" in message
    if scan_module.accelerated_available():
        assert message.endswith(f"to fix: unset {scan_module.PURE_PYTHON_ENV}")


def test_stack_status_repeats_the_processors_slow_path(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    warning = (
        "2026-11-29 00:00:00,000 WARNING genai_otel.processors.service: hot path: " + slow_path_warning()
    )
    (logs / "processor.log").write_text("earlier start\n" + warning + "\n")
    assert processor_hot_path(logs / "processor.log") == slow_path_warning()
    shown = subprocess.run(
        [sys.executable, "-m", "genai_otel", "stack", "status", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 3  # nothing running
    assert f"hot path: {slow_path_warning()}" in shown.stdout
    (logs / "processor.log").write_text(warning + "\nlater start INFO hot path: accelerated (C extension)\n")
    assert processor_hot_path(logs / "processor.log") == "accelerated"
    assert processor_hot_path(tmp_path / "missing.log") is None
