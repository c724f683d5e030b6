"""The platform wheel carries the compiled hot path: installed where there is no compiler, the
processor runs accelerated. And the Docker image is built the same way (a wheel made in a build
stage with a compiler, installed alone in the final stage)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_LEFTOVERS = (".git", ".venv", ".cache", "build", "dist", "run", "*.so", "*.egg-info", "__pycache__",
                   ".mypy_cache", ".ruff_cache", ".hypothesis", ".pytest_cache")  # fmt: skip


def _wheel(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`pip wheel` of a clean copy of the sources (a build folder in the checkout would let
    setuptools reuse an object compiled earlier)."""
    source = out / "src"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler to build the platform wheel with")
    out = tmp_path_factory.mktemp("wheel")
    built = _wheel(out, GENAI_OTEL_REQUIRE_EXTENSION="1")
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("genai_otel-*.whl")
    return path


def test_the_wheel_is_a_platform_wheel_with_the_extension(wheel: Path) -> None:
    assert not wheel.name.endswith("-none-any.whl")  # tagged for this interpreter and platform
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if re.fullmatch(r"genai_otel/processors/_wirescan\..*\.so", n)]
    shipped = {n for n in names if n.startswith("genai_otel/processors/native/")}
    native = REPO_ROOT / "processors" / "native"
    # every source the build is checked against, the shared header too
    assert shipped == {f"genai_otel/processors/native/{p.name}" for p in native.iterdir()}
    assert "genai_otel/processors/native/_wirescan.h" in shipped


def test_a_required_extension_that_cannot_compile_fails_the_build(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    broken = _wheel(tmp_path, GENAI_OTEL_REQUIRE_EXTENSION="1", CC="false")
    assert broken.returncode != 0
    assert not list(tmp_path.glob("*.whl"))


def test_installed_without_build_tools_the_processor_runs_accelerated(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    bare = {**os.environ, "PATH": str(bin_dir), "CC": "/nonexistent/cc"}  # no compiler to fall back on
    bare.pop("GENAI_OTEL_PURE_PYTHON", None)
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=bare,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    processor = subprocess.Popen(
        [str(bin_dir / "genai-otel"), "processor", "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--forward-endpoint", "127.0.0.1:9"],
        stderr=subprocess.PIPE,
        text=True,
        env=bare,
        cwd=tmp_path,  # not the repository: the installed package, not the source tree, is imported
    )  # fmt: skip
    try:
        assert processor.stderr is not None
        metrics_port = 0
        hot_path = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (metrics_port and hot_path):
            line = processor.stderr.readline()
            if not line:
                break
            found = re.search(r"listening on \d+ \(OTLP\) and (\d+) \(metrics\)", line)
            if found:
                metrics_port = int(found[1])
            if "hot path: " in line:
                hot_path = line.split("hot path: ", 1)[1]
        assert hot_path.startswith("accelerated"), hot_path
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            body = response.read().decode()
        assert 'genai_otel_processor_info{accelerated="true"} 1' in body
    finally:
        processor.terminate()
        processor.wait(timeout=30)


def test_the_image_installs_only_a_wheel_built_with_the_extension_required() -> None:
    """No Docker engine here: the Dockerfile is checked as text, stage by stage."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert [stage.split("\n", 1)[0] for stage in stages] == [
        "python:${PYTHON_VERSION}-slim AS build",
        "python:${PYTHON_VERSION}-slim",
    ]
    build, final = stages
    assert "GENAI_OTEL_REQUIRE_EXTENSION=1" in build
    assert "gcc" in build and "pip wheel --no-deps --wheel-dir /wheels ." in build
    assert "the wheel has no compiled _wirescan" in build  # the stage fails without the .so
    # the final stage: no compiler, no sources; the wheel from the build stage and nothing else
    assert "gcc" not in final and "apt-get" not in final
    assert "COPY --from=build /wheels /wheels" in final
    assert 'pip install "$(ls /wheels/genai_otel-*.whl)[demo]"' in final
    assert not re.search(r"^COPY (processors|instrumentation|genai_otel|setup\.py)", final, re.MULTILINE)
    assert "USER 10001" in final
