"""Observability test fixtures: promtool, amtool and alertmanager from the cached build, else PATH.

Under CI (CI=true) a missing binary fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def find_binary(role: str) -> Path | None:
    try:
        from genai_otel.stack.build import binary

        cached = binary(role)
        if cached.exists():
            return cached
    except (ImportError, KeyError):
        pass
    found = shutil.which(role)
    return Path(found) if found else None


def _require_binary(role: str) -> Path:
    path = find_binary(role)
    if path is None:
        reason = f"{role} not found (run scripts/build-components, or put {role} on PATH)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def require_binary() -> Callable[[str], Path]:
    """`require_binary("promtool")`: its path, or skip (fail under CI=true) when it is not built."""
    return _require_binary
