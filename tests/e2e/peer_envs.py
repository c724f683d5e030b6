"""Virtualenvs holding each peer instrumentation, installed as a user would install it.

Each environment is built once per requirement list and kept under ~/.cache/genai-otel/peer-venvs
(GENAI_OTEL_PEER_VENVS overrides the folder): its name carries a digest of the requirements, so a
changed pin builds a new one, and a `.complete` marker written last tells a finished install from
an interrupted one (which is removed and built again).

`python tests/e2e/peer_envs.py` builds them all and prints how long each install took.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The SDKs the held-out app calls, in the versions genai-otel's own tests use.
SDKS = ("openai==3.57.0", "anthropic==2.14.0")
OTLP = ("opentelemetry-distro==0.66b2", "opentelemetry-exporter-otlp-proto-grpc==1.45.2")


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    # how the app is started: "instrument" = opentelemetry-instrument (zero code),
    # "openlit" = openlit.init() in code, before the app runs
    launch: str
    # installed afterwards, in a second `pip install`, as an application that already pins them would
    then: tuple[str, ...] = ()


PEERS = {
    "official": Peer(
        "official",
        (
            *SDKS,
            *OTLP,
            "opentelemetry-instrumentation-genai-openai==1.3b0",
            "opentelemetry-instrumentation-genai-anthropic==1.3b0",
        ),
        "instrument",
    ),
    "openllmetry": Peer(
        "openllmetry",
        (
            *SDKS,
            *OTLP,
            "opentelemetry-instrumentation-openai==0.62.4",
            "opentelemetry-instrumentation-anthropic==0.62.4",
        ),
        "instrument",
    ),
    # `pip install openlit==1.45.0` alone ends in ResolutionImpossible: the newest OpenTelemetry SDK
    # (1.45.2) has no contrib instrumentation release to match, and pip backtracks into conflicts; the
    # OpenTelemetry pins give it a consistent set. OpenLIT also declares openai<3 and anthropic<1: an
    # application on the current SDKs installs them afterwards (pip warns about the conflict and
    # installs them), which is how the run had it.
    "openlit": Peer(
        "openlit",
        (
            "openlit==1.45.0",
            "opentelemetry-instrumentation==0.66b1",
            "opentelemetry-sdk==1.45.1",
            "opentelemetry-exporter-otlp==1.45.1",
        ),
        "openlit",
        then=SDKS,
    ),
}


def cache_root() -> Path:
    configured = os.environ.get("GENAI_OTEL_PEER_VENVS")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "genai-otel" / "peer-venvs"


def venv_path(peer: Peer) -> Path:
    digest = hashlib.sha256(
        "\n".join(
            (f"{sys.version_info.major}.{sys.version_info.minor}", *peer.requirements, "then", *peer.then)
        ).encode()
    ).hexdigest()[:12]
    return cache_root() / f"{peer.name}-{digest}"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(peer: Peer) -> tuple[Path, float]:
    """The peer's venv (built if missing) and the seconds this call spent installing (0 if cached)."""
    venv = venv_path(peer)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run building the same venv: wait for it
        if (venv / ".complete").exists():
            return venv, 0.0
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        for stage in (peer.requirements, peer.then):
            if stage:
                subprocess.run(
                    [
                        str(python_of(venv)),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        *stage,
                    ],
                    check=True,
                )
        (venv / ".complete").write_text("\n".join((*peer.requirements, *peer.then)) + "\n")
        return venv, time.monotonic() - started


if __name__ == "__main__":
    for peer in PEERS.values():
        path, seconds = ensure(peer)
        print(f"{peer.name}: {path} ({seconds:.1f} s installing)")
