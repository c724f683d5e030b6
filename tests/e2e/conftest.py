"""End-to-end fixtures: real collector, Jaeger, Prometheus and Alertmanager binaries on free ports.

Binaries come from `scripts/build-components` (~/.cache/genai-otel/bin). Outside CI a missing binary
skips these tests with the reason; in CI (`CI=true`) it fails them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from genai_otel.stack import build

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def _require_binaries(*roles: str) -> None:
    missing = [str(build.binary(role)) for role in roles if not os.access(build.binary(role), os.X_OK)]
    if not missing:
        return
    message = f"not built: {', '.join(missing)} (run scripts/build-components)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; in CI the real binaries are required")
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_binaries() -> Callable[..., None]:
    """`require_binaries("collector", "jaeger")`: skip (fail in CI) unless those binaries are built."""
    return _require_binaries


@pytest.fixture(scope="session")
def require_processor() -> None:
    if importlib.util.find_spec("genai_otel.processors.service") is None:
        pytest.skip("the processor (genai_otel.processors.service) is not in this tree yet")


@pytest.fixture(autouse=True)
def no_grafana_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacks here start no Grafana (one on a developer's PATH would change what these tests see);
    tests/e2e/test_stack_grafana_live.py asks for its stand-in explicitly."""
    monkeypatch.setenv("GENAI_OTEL_GRAFANA", "off")
