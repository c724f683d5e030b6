"""scripts/build-components' progress: numbered lines with elapsed time and the measured estimate,
a heartbeat while a long step runs in a CI log, and Go's errors shown when a build fails.

No Go build runs here: the Go-module build (`build.build_from_go_modules`) is replaced by a cheap
step that runs a real child process through the same runner (`build._run`) a Go step uses.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from genai_otel.stack import build, release
from genai_otel.stack.env import REPO_ROOT, read_env_file

ENV = read_env_file()


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENAI_OTEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(release.DOWNLOAD_VARIABLE, "0")
    monkeypatch.setattr(build, "HEARTBEAT_SECONDS", 0.2)


def cheap_step(child: str) -> Callable[[build.Component], None]:
    """A build step running `python -c child` the way a Go step runs, then installing scripts."""

    def step(component: build.Component) -> None:
        build._run([sys.executable, "-c", child], cwd=Path.cwd(), step=f"go build {component.name}")
        for path in component.paths().values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)

    return step


def progress(log: str) -> list[str]:
    """The numbered progress lines, with elapsed times (which vary) replaced by <t>."""
    lines = [line for line in log.splitlines() if re.match(r"\[\d+/\d+\] ", line)]
    return [re.sub(r"\b(\d+m)?\d+s\b", "<t>", line) for line in lines]


def test_each_build_is_numbered_with_its_estimate_and_a_ci_log_gets_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(build, "_stderr_is_terminal", lambda: False)  # as in CI: stderr is a file
    monkeypatch.setattr(build, "build_from_go_modules", cheap_step("import time; time.sleep(0.5)"))
    build.ensure(["alertmanager", "jaeger"])
    alertmanager, jaeger = ENV["ALERTMANAGER_VERSION"], ENV["JAEGER_VERSION"]
    lines = progress(capsys.readouterr().err)
    for number, name, version, about, minutes in (
        (1, "alertmanager", alertmanager, "Alertmanager and amtool (Go module)", 3),
        (2, "jaeger", jaeger, "Jaeger v2 (Go module, wrapper module)", 15),
    ):
        mine = [line for line in lines if line.startswith(f"[{number}/2] {name} {version}: ")]
        assert mine[0] == (
            f"[{number}/2] {name} {version}: building {about} from Go modules "
            f"(usually ~{minutes} min on 2 vCPUs from an empty Go module cache) ..."
        )
        beats = mine[1:-1]
        assert beats  # the step ran 0.5 s: at least two beats were due, one is enough to see
        assert set(beats) == {
            f"[{number}/2] {name} {version}: still building, <t> so far (usually ~{minutes} min)"
        }
        assert mine[-1] == f"[{number}/2] {name} {version}: done in <t>"


def test_a_terminal_gets_no_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(build, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(build, "build_from_go_modules", cheap_step("import time; time.sleep(0.5)"))
    build.ensure(["alertmanager"])
    version = ENV["ALERTMANAGER_VERSION"]
    assert progress(capsys.readouterr().err) == [
        f"[1/1] alertmanager {version}: building Alertmanager and amtool (Go module) from Go modules "
        "(usually ~3 min on 2 vCPUs from an empty Go module cache) ...",
        f"[1/1] alertmanager {version}: done in <t>",
    ]


def test_a_failing_build_shows_gos_errors_and_how_long_it_ran(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(build, "_stderr_is_terminal", lambda: False)
    go_like = (
        "import sys, time; print('# github.com/example/broken', flush=True); time.sleep(0.5); "
        "print('broken/x.go:3:2: undefined: y'); sys.exit(1)"
    )
    monkeypatch.setattr(build, "build_from_go_modules", cheap_step(go_like))
    with pytest.raises(build.BuildError) as failed:
        build.ensure(["prometheus"])
    assert str(failed.value) == (
        "go build prometheus failed (exit 1); last output:\n"
        "# github.com/example/broken\nbroken/x.go:3:2: undefined: y"
    )
    log = capsys.readouterr().err
    # Go's output streams as it comes, heartbeats between, and the failure is the last progress line
    assert "      broken/x.go:3:2: undefined: y\n" in log
    version = ENV["PROMETHEUS_VERSION"]
    lines = progress(log)
    assert lines[0].startswith(f"[1/1] prometheus {version}: building ")
    assert f"[1/1] prometheus {version}: still building, <t> so far (usually ~9 min)" in lines
    assert lines[-1] == f"[1/1] prometheus {version}: failed after <t>"
    assert not build.components()["prometheus"].is_cached()


def test_elapsed_time_reads_like_the_readme() -> None:
    assert build.duration(521.4) == "8m41s"
    assert build.duration(41.2) == "41s"
    assert build.duration(60) == "1m00s"
    assert set(build.GO_BUILD_SECONDS) == set(build.components())


def test_the_estimates_are_the_readmes_measured_figures() -> None:
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    measured = re.search(
        r"collector (\d+) min (\d+) s \(builder install included\), "
        r"Prometheus \+ promtool (\d+) min (\d+) s, "
        r"Alertmanager \+ amtool (\d+) min (\d+) s, Jaeger (\d+) min (\d+) s",
        readme,
    )
    assert measured is not None
    minutes_seconds = [int(value) for value in measured.groups()]
    figures = [m * 60 + s for m, s in zip(minutes_seconds[::2], minutes_seconds[1::2], strict=True)]
    table = build.GO_BUILD_SECONDS
    assert figures == [table["collector"], table["prometheus"], table["alertmanager"], table["jaeger"]]
    assert "`GO_BUILD_SECONDS` in `genai_otel/stack/build.py`" in readme
