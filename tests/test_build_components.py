"""scripts/build-components: versioned cache, idempotence, clear failures, go.mod directive copying."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from genai_otel.stack import build
from genai_otel.stack.env import REPO_ROOT, read_env_file

SCRIPT = REPO_ROOT / "scripts" / "build-components"


def _run(*args: str, cache: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENAI_OTEL_CACHE_DIR": str(cache)}
    if path is not None:
        env["PATH"] = path
        env["GO"] = ""
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_binaries_are_named_with_the_env_versions() -> None:
    env = read_env_file()
    assert build.binary("collector").name == (
        f"otelcol-genai-{env['COLLECTOR_VERSION']}-{build.manifest_digest()}"
    )
    assert build.binary("jaeger").name == f"jaeger-{env['JAEGER_VERSION']}"
    assert build.binary("promtool").name == f"promtool-{env['PROMETHEUS_VERSION']}"
    assert build.binary("alertmanager").name == f"alertmanager-{env['ALERTMANAGER_VERSION']}"
    assert build.binary("helm").name == f"helm-{env['HELM_VERSION']}"


def test_cached_binaries_are_reused_without_building(tmp_path: Path) -> None:
    env = read_env_file()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / f"otelcol-genai-{env['COLLECTOR_VERSION']}-{build.manifest_digest()}"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    # no Go on PATH: anything but the cache hit would fail
    result = _run("collector", cache=tmp_path, path="/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert f"==> collector {env['COLLECTOR_VERSION']}: cached" in result.stderr
    assert str(fake) in result.stderr


def test_missing_go_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = _run("jaeger", cache=tmp_path, path="/usr/bin:/bin")
    assert result.returncode == 1
    assert "`go` is not on PATH" in result.stderr


def test_unknown_component_is_rejected_naming_the_known_ones(tmp_path: Path) -> None:
    result = _run("grafana", cache=tmp_path)
    assert result.returncode == 1
    known = "collector, jaeger, prometheus, alertmanager, helm"
    assert f"unknown component(s) grafana; known: {known}" in result.stderr


def test_prometheus_release_maps_to_its_go_module_version() -> None:
    assert build.prometheus_module_version("3.14.0") == "v0.314.0"
    assert build.prometheus_module_version("3.5.1") == "v0.305.1"


def test_wrapper_module_repeats_single_line_and_block_directives() -> None:
    go_mod = """module example.com/upstream

go 1.25.0

require (
\texample.com/a v1.0.0
)

exclude example.com/bad v1.0.0 // broken

exclude (
\texample.com/b v0.1.0
\t// a comment
\texample.com/c v0.2.0
)

replace example.com/d => example.com/d v1.2.3
"""
    assert build.directives(go_mod, "exclude") == [
        "exclude example.com/bad v1.0.0",
        "exclude example.com/b v0.1.0",
        "exclude example.com/c v0.2.0",
    ]
    assert build.directives(go_mod, "replace") == ["replace example.com/d => example.com/d v1.2.3"]
