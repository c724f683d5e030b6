"""LocalStack bookkeeping that needs no binaries: templates, ports, and never signalling a stranger."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from genai_otel.stack import runner
from genai_otel.stack.query import wait_for
from genai_otel.stack.runner import PORT_KEYS, LocalStack, StackError, free_ports, render_template


def test_stop_never_signals_a_pid_now_running_another_program(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        # a stale state file, as after a reboot: the recorded pid now belongs to someone else
        state = {"pids": {"collector": stranger.pid}, "programs": {"collector": "/opt/old/otelcol-genai"}}
        (run_dir / "stack.json").write_text(json.dumps(state))
        stack = LocalStack(run_dir, ports=free_ports())
        assert stack.running_pids() == {}
        assert stack.stop() == []
        assert stranger.poll() is None
        assert not (run_dir / "stack.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_signals_the_process_group_it_started(tmp_path: Path) -> None:
    started = subprocess.Popen(["sleep", "30"], start_new_session=True)
    # as `genai-otel stack down` sees it from another process: once the program runs
    wait_for(lambda: Path(f"/proc/{started.pid}/cmdline").read_bytes().startswith(b"sleep\0") or None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    state = {"pids": {"jaeger": started.pid}, "programs": {"jaeger": "sleep"}}
    (run_dir / "stack.json").write_text(json.dumps(state))
    stack = LocalStack(run_dir, ports=free_ports())
    assert stack.running_pids() == {"jaeger": started.pid}
    assert stack.stop() == ["jaeger"]
    # stop() reaps its own children, so the process is gone without a trace in /proc
    assert not Path(f"/proc/{started.pid}").exists()


def test_free_ports_are_distinct_and_cover_every_port_variable() -> None:
    ports = free_ports()
    assert set(ports) == set(PORT_KEYS)
    assert len(set(ports.values())) == len(PORT_KEYS)


def test_picked_ports_are_below_the_ephemeral_range_free_and_never_handed_out_twice() -> None:
    low, _ = runner.ephemeral_range()
    first, second = runner.pick_ports(30), runner.pick_ports(30)
    assert len(set(first) | set(second)) == 60
    assert all(runner.PICK_FLOOR <= port < low for port in first + second)
    for port in first:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if something held it


def test_a_listening_port_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", runner.pick_ports(1)[0]))
        listener.listen()
        taken = listener.getsockname()[1]
        runner._picked.discard(taken)
        monkeypatch.setattr(runner.random, "choice", lambda pool: taken)  # every draw hits it
        port = runner.free_port()
        assert port != taken  # fell back to the kernel's choice


def test_without_room_below_the_ephemeral_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ephemeral_range", lambda: (1024, 65535))
    ports = runner.pick_ports(3)
    assert len(set(ports)) == 3
    assert all(port >= 1024 for port in ports)


def test_template_with_a_missing_value_names_the_placeholder(tmp_path: Path) -> None:
    template = tmp_path / "t.yml"
    template.write_text("targets: [${PROCESSOR_METRICS_TARGET}]\ncost: $$5\n")
    with pytest.raises(StackError, match=r"no value for placeholder \$\{PROCESSOR_METRICS_TARGET\}"):
        render_template(template, {}, tmp_path / "out.yml")
    out = render_template(template, {"PROCESSOR_METRICS_TARGET": "processor:9464"}, tmp_path / "out.yml")
    assert out.read_text() == "targets: [processor:9464]\ncost: $5\n"
