"""OpenAI-compatible providers through the local stack: an application under `opentelemetry-instrument`
(environment variables only) calls two endpoints through the openai SDK, one mapped to Groq by
GENAI_OTEL_PROVIDER_HOSTS, one that no table knows; Prometheus shows the Groq call priced from Groq's
table (genai-prices: llama-3.3-70b-versatile 0.59 / 0.79 USD per million tokens) and the other
unpriced as `self_hosted`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from genai_otel.fake_provider import FakeProvider
from genai_otel.stack.query import prometheus_scalar, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import demo_environment, run_app

SERVICE = "e2e-compatible"
APP = """
import json, sys
import openai

groq_url, other_url, output = sys.argv[1:4]
messages = [{"role": "user", "content": "Give me three facts about otters."}]
usage = {}
for name, url, model in (("groq", groq_url, "llama-3.3-70b-versatile"), ("other", other_url, "gpt-4o")):
    client = openai.OpenAI(base_url=url, max_retries=0)
    completion = client.chat.completions.create(model=model, messages=messages)
    usage[name] = [completion.usage.prompt_tokens, completion.usage.completion_tokens]
with open(output, "w") as out:
    json.dump(usage, out)
"""


def test_a_groq_mapped_host_is_priced_from_groqs_table_and_an_unknown_one_is_unpriced(
    tmp_path: Path, require_binaries: Callable[..., None], require_processor: None
) -> None:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    stack = LocalStack(tmp_path / "run", ports=free_ports(), build_missing=False, scrape_interval="1s")
    try:
        endpoints = stack.start(timeout=60)
        prometheus = endpoints["prometheus_url"]
        app, output = tmp_path / "app.py", tmp_path / "usage.json"
        app.write_text(APP)
        with FakeProvider() as groq, FakeProvider() as other:
            env = demo_environment(endpoints, groq.base_url, SERVICE)
            del env["GENAI_OTEL_OPENAI_PROVIDER"]  # the demo's "every call is OpenAI"
            groq_port = groq.base_url.rsplit(":", 1)[1]
            env["GENAI_OTEL_PROVIDER_HOSTS"] = f"127.0.0.1:{groq_port}=groq"
            run_app(str(app), groq.openai_base_url, other.openai_base_url, str(output), env=env)
        (groq_in, groq_out), _ = json.loads(output.read_text()).values()

        cost = wait_for(
            lambda: prometheus_scalar(
                prometheus,
                f'sum(llm_cost_usd_total{{service="{SERVICE}",provider="groq",model="llama-3.3-70b-versatile"}})',
            ),
            timeout=60,
            what="the Groq call's cost in Prometheus",
        )
        unpriced = wait_for(
            lambda: prometheus_scalar(
                prometheus,
                'sum(llm_unpriced_requests_total{provider="self_hosted",model="gpt-4o",reason="self_hosted"})',
            ),
            timeout=30,
            what="the unknown host's unpriced call in Prometheus",
        )
        assert cost == pytest.approx((groq_in * 0.59 + groq_out * 0.79) / 1e6, abs=1e-9)
        assert unpriced == 1
        assert prometheus_scalar(
            prometheus, f'sum(llm_cost_usd_total{{service="{SERVICE}",provider!="groq"}})'
        ) in (
            None,
            0.0,
        )
    finally:
        stack.stop()
