"""The test command's fuzz run: the ASAN+UBSAN extension against pure Python for about 2 minutes.

One test, in a subprocess (`scripts/fuzz`): it fails on any crash, sanitizer report or C/Python
mismatch and names the reproducer. Longer runs: `scripts/fuzz --minutes 30`. The seed corpus and
its generator are checked here too (cheap), and the target's own comparison is shown to catch a
difference (a target that cannot fail would be worth nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from genai_otel.processors import scan as scan_module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPT = ROOT / "scripts" / "fuzz"
SECONDS = int(os.environ.get("GENAI_OTEL_FUZZ_SECONDS", "110"))
NO_COMPILER = 77


def test_the_seed_corpus_is_what_its_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / "make_corpus.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_differential_check_catches_a_c_path_that_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    if not scan_module.accelerated_available():
        pytest.skip("the _wirescan extension is not built here")
    from .differential import check

    data = (HERE / "corpus" / "seed-openai-chat.bin").read_bytes()
    assert check(data) is None
    from genai_otel.processors import pipeline

    real = pipeline._accelerator.assemble
    monkeypatch.setattr(pipeline._accelerator, "assemble", lambda *a: real(*a) + b"\x00")
    mismatch = check(data)
    assert mismatch is not None and mismatch.what == "pipeline: C no lane vs Python" and not mismatch.known


def test_a_bounded_fuzz_run_under_asan_and_ubsan_finds_nothing(tmp_path: Path) -> None:
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("no C compiler (gcc or $CC): the sanitized extension cannot be built")
    figure_path = tmp_path / "figure.json"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--seconds", str(SECONDS), "--python", sys.executable,
            "--corpus", str(tmp_path / "corpus"), "--findings", str(tmp_path / "findings"),
            "--json", str(figure_path),
        ],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SECONDS + 240, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if result.returncode == NO_COMPILER:
        pytest.skip(result.stderr.strip())
    log = tmp_path / "findings" / "fuzz.log"
    tail = log.read_text(errors="replace")[-6000:] if log.exists() else ""
    assert figure_path.exists(), f"scripts/fuzz failed to run:\n{result.stdout}\n{result.stderr}\n{tail}"
    figure = json.loads(figure_path.read_text())
    print(f"{result.stdout.strip()} ({elapsed:.0f} s with the build)")
    assert (figure["crashes"], figure["mismatches"]) == (0, 0), (
        f"{result.stdout}\nreproducers (replay each: scripts/fuzz --reproduce FILE): "
        f"{figure['reproducers']}\n{tail}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert figure["inputs_run"] > figure["seed_corpus"]  # it ran past the seeds
