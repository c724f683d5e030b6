"""The same held-out application under each peer instrumentation, priced by the processor.

The app (peer_app.py: OpenAI and Anthropic calls, plain, streamed, cached and failing) runs with the
real SDKs against the fake provider, once instrumented by genai-otel (the reference) and once under
each peer, installed in its own virtualenv as its users install it (peer_envs.py): the official
OpenTelemetry GenAI instrumentations and OpenLLMetry's through `opentelemetry-instrument`, OpenLIT
initialised in code. The anthropic SDK's own span is left on (its default). Each run exports OTLP to
a processor started here, which forwards to a sink.

What the peers' spans say differently, found by these runs, and so asserted:
* OpenLLMetry 0.62.4's Anthropic stream span says 17 output tokens where the provider said 16: it
  adds message_start's placeholder `output_tokens: 1` to message_delta's cumulative count.
* OpenLLMetry writes no cache-write attribute for OpenAI; the table prices gpt-4o-mini's cache
  writes as input, so the cost is the same.
* OpenLIT 1.45.0 writes its own cost estimate, 0 here (its price list cannot be downloaded): the
  processor re-prices it (pricing.trust_reported_cost=provider), so OpenAI is not at $0.
* OpenLIT's failed Anthropic calls carry no attributes at all (not recognisable as model calls):
  only the anthropic SDK's own span says they happened.
* A context-window failure is `BadRequestError` to every peer, with nothing else on the span that
  says why: its category stays `other` (genai-otel reads the provider's error code).
* Every Anthropic call has a second span, the anthropic SDK's own: a child of the official
  instrumentation's and OpenLIT's span, an unrelated trace under OpenLLMetry. The processor counts
  each call once (processors/duplicates.py): the request counts equal the number of calls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from genai_otel.processors.config import load_config
from genai_otel.processors.service import Processor

from genai_otel import semconv as sc
from genai_otel.fake_provider import FakeProvider
from tests.e2e import peer_envs
from tests.processor.helpers import Sink, scrape

HERE = Path(__file__).parent
APP = HERE / "peer_app.py"
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
CALLS = 10  # peer_app.calls()
APP_OUTPUT = [
    "openai chat: ok",
    "openai chat cached: ok",
    "openai stream: ok",
    "openai rate limit: RateLimitError",
    "openai context window: BadRequestError",
    "anthropic chat: ok",
    "anthropic chat cached: ok",
    "anthropic stream cached: ok",
    "anthropic overloaded: OverloadedError",
    "anthropic timeout: APITimeoutError",
]


@dataclass
class Run:
    output: list[str]
    cost: dict[str, float]  # llm_cost_usd_total summed by provider
    requests: Counter[tuple[str, str]]  # llm_requests_total by (provider, error_type)
    seconds: float


def _series(body: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, _, _ = line.partition(" # ")
        text, _, value = head.rpartition(" ")
        labels = dict(
            part.split("=", 1) for part in text[len(name) + 1 : -1].replace('"', "").split(",") if "=" in part
        )
        out.append((labels, float(value)))
    return out


def _command(name: str) -> list[str]:
    if name == "genai-otel":
        return [str(VENV_BIN / "opentelemetry-instrument"), str(VENV_BIN / "python"), str(APP)]
    peer = peer_envs.PEERS[name]
    venv, _ = peer_envs.ensure(peer)
    python = str(peer_envs.python_of(venv))
    if peer.launch == "openlit":
        return [python, str(APP), "--openlit"]
    return [str(venv / "bin" / "opentelemetry-instrument"), python, str(APP)]


async def _run(name: str) -> Run:
    command = await asyncio.to_thread(_command, name)  # builds the peer's venv on first use
    sink = await Sink().start()
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 5,
            "forward": {"endpoint": f"127.0.0.1:{sink.port}"},
        },
        environ={},
    )
    processor = Processor(config)
    await processor.start()
    try:
        with FakeProvider(host="127.0.0.1", port=0) as provider:
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_", "ANTHROPIC_"))
            }
            env.update(
                OTEL_SERVICE_NAME="peer-app",
                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{processor.port}",
                OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                OTEL_TRACES_EXPORTER="otlp",
                OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
                OTEL_BSP_SCHEDULE_DELAY="200",
                OPENAI_BASE_URL=provider.openai_base_url,
                GENAI_OTEL_OPENAI_PROVIDER="openai",  # the fake provider stands in for OpenAI
                OPENAI_API_KEY="fake-key",
                ANTHROPIC_BASE_URL=provider.base_url,
                ANTHROPIC_API_KEY="fake-key",
            )
            started = time.monotonic()
            done = await asyncio.to_thread(
                subprocess.run, command, env=env, capture_output=True, text=True, timeout=180
            )
            seconds = time.monotonic() - started
        assert done.returncode == 0, done.stderr[-3000:]
        registry = processor.registry
        deadline = time.monotonic() + 20
        # the app flushed its spans before it exited: wait until the processor has passed them on
        while not (
            sum(registry.received.values()) > 0
            and len(sink.spans()) == sum(registry.received.values())
            and registry.queue_spans == 0
        ):
            assert time.monotonic() < deadline, "spans not delivered"
            await asyncio.sleep(0.05)
        _, body = await asyncio.to_thread(scrape, processor.metrics_port)
    finally:
        await processor.stop()
        await sink.stop()
    cost: dict[str, float] = {}
    for labels, value in _series(body, sc.PROM_LLM_COST):
        cost[labels["provider"]] = cost.get(labels["provider"], 0.0) + value
    requests: Counter[tuple[str, str]] = Counter()
    for labels, value in _series(body, sc.PROM_LLM_REQUESTS):
        requests[(labels["provider"], labels["error_type"])] += int(value)
    return Run(done.stdout.splitlines(), cost, requests, seconds)


@pytest.fixture(scope="module")
def reference() -> Run:
    return asyncio.run(_run("genai-otel"))


@pytest.fixture(scope="module", params=sorted(peer_envs.PEERS))
def peer(request: pytest.FixtureRequest) -> tuple[str, Run]:
    return request.param, asyncio.run(_run(request.param))


def test_reference_run_prices_and_counts_every_call(reference: Run) -> None:
    assert reference.output == APP_OUTPUT
    assert sum(reference.requests.values()) == CALLS
    assert reference.requests[("openai", "context_window_exceeded")] == 1
    assert reference.cost["openai"] > 0
    assert reference.cost["anthropic"] > 0


def test_peer_prices_openai_calls_as_genai_otel_does(reference: Run, peer: tuple[str, Run]) -> None:
    _, run = peer
    assert run.output == APP_OUTPUT
    assert run.cost.get("openai", 0.0) == pytest.approx(reference.cost["openai"], abs=1e-9)


def test_peer_classifies_openai_failures_its_attributes_allow(peer: tuple[str, Run]) -> None:
    _, run = peer
    # the context-window failure is only `BadRequestError` on a peer's span: `other`
    assert run.requests[("openai", "rate_limit")] == 1
    assert run.requests[("openai", "other")] == 1


def test_peer_prices_anthropic_calls_as_genai_otel_does(reference: Run, peer: tuple[str, Run]) -> None:
    """Each Anthropic call has two spans (the SDK's own and the peer's) and is priced once. The
    SDK's span ends first, so it is exported and counted first: OpenLLMetry's extra stream token
    (see the module docstring) is on the span marked duplicate, and is not billed."""
    _, run = peer
    assert run.cost.get("anthropic", 0.0) == pytest.approx(reference.cost["anthropic"], abs=1e-9)


def test_peer_counts_each_call_once(peer: tuple[str, Run]) -> None:
    _, run = peer
    assert sum(run.requests.values()) == CALLS
