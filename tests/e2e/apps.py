"""How a test runs an instrumented app: its environment is this process's variables minus any
that configure the app's telemetry, SDKs or the demo (OTEL_*, PYTEST_*, DEMO_*, GENAI_OTEL_*, AWS_*,
GOOGLE_*, GEMINI_*), plus `app_environment` and what the test sets; it runs under
`opentelemetry-instrument` and must succeed."""

from __future__ import annotations

import os
import subprocess

from genai_otel.demo.run import app_environment, instrumented_command

CONFIGURING = ("OTEL_", "PYTEST_", "DEMO_", "GENAI_OTEL_", "AWS_", "GOOGLE_", "GEMINI_")

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


def demo_environment(
    endpoints: dict[str, str], provider_url: str, service: str | None = None, **settings: str
) -> dict[str, str]:
    """`settings`: the variables this test wants on top, e.g. DEMO_RATE="6"."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(CONFIGURING)}
    configured = app_environment(endpoints, provider_url, *([service] if service else []))
    return {**inherited, **configured, **settings}


def run_app(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`opentelemetry-instrument python *args` to its end; fails the test unless it exits 0."""
    done = subprocess.run(
        instrumented_command(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
