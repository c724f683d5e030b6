"""The environment an instrumented test app runs with: this process's variables minus any OTEL_*,
PYTEST_* or DEMO_* ones (the app is configured by `app_environment` and the test alone)."""

from __future__ import annotations

import os

from genai_otel.demo.run import app_environment

# The collector's tail sampling keeping every trace (its policies' defaults keep 10% of a model's)
KEEP_EVERYTHING = {
    "TAIL_SAMPLING_PERCENT_GPT_4O": "100",
    "TAIL_SAMPLING_PERCENT_GPT_4O_MINI": "100",
    "TAIL_SAMPLING_PERCENT_O3_MINI": "100",
    "TAIL_SAMPLING_PERCENT_CLAUDE_SONNET": "100",
    "TAIL_SAMPLING_PERCENT_CLAUDE_HAIKU": "100",
    "TAIL_SAMPLING_PERCENT_OTHER": "100",
    "TAIL_SAMPLING_DECISION_WAIT": "3s",
    "TAIL_SAMPLING_DECISION_WAIT_AFTER_ROOT": "1s",
}


def demo_environment(endpoints: dict[str, str], provider_url: str, **demo: str) -> dict[str, str]:
    """`demo`: the DEMO_* and OTEL_* settings this test wants on top, e.g. DEMO_RATE="6"."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_", "DEMO_"))}
    return {**inherited, **app_environment(endpoints, provider_url), **demo}
