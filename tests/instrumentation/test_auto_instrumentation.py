"""Zero code: `opentelemetry-instrument python app.py` with environment variables only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otel_fixtures import run_instrumented_app

from genai_otel.fake_provider import FakeProvider

APP = """
import anthropic, openai, sys
base = sys.argv[1]
openai.OpenAI(base_url=base + "/v1", api_key="k", max_retries=0).chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
anthropic.Anthropic(base_url=base, api_key="k", max_retries=0).messages.create(
    model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
print("APP-DONE", flush=True)
"""


def _run(tmp_path: Path, provider: FakeProvider, **env: str) -> tuple[list[dict], str]:
    return run_instrumented_app(
        tmp_path,
        APP,
        provider,
        ("OTEL_", "ANTHROPIC_"),
        **{
            "OTEL_SERVICE_NAME": "auto-test",
            # the official OpenAI instrumentation may be installed too (benchmarks): one span per call
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
            **env,
        },
    )


def test_opentelemetry_instrument_exports_one_span_per_call(tmp_path: Path, provider: FakeProvider) -> None:
    spans, _ = _run(tmp_path, provider)
    assert sorted(span["name"] for span in spans) == ["chat claude-haiku-4-5", "chat gpt-4o-mini"]
    by_provider = {span["attributes"]["gen_ai.provider.name"]: span for span in spans}
    assert set(by_provider) == {"openai", "anthropic"}
    for span in spans:
        assert span["kind"] == "SpanKind.CLIENT"
        assert span["resource"]["attributes"]["service.name"] == "auto-test"
        assert span["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert by_provider["openai"]["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"


def test_disabled_instrumentations_are_honoured(tmp_path: Path, provider: FakeProvider) -> None:
    spans, _ = _run(tmp_path, provider, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,genai_otel_openai")
    assert [span["name"] for span in spans] == ["chat claude-haiku-4-5"]


def test_no_sdk_configured_is_a_no_op(tmp_path: Path, provider: FakeProvider) -> None:
    script = tmp_path / "plain.py"
    script.write_text(
        "import openai, sys\n"
        "from genai_otel.instrumentation.openai import OpenAIInstrumentor\n"
        "OpenAIInstrumentor().instrument()\n"
        "c = openai.OpenAI(base_url=sys.argv[1] + '/v1', api_key='k', max_retries=0)\n"
        "m = [{'role': 'user', 'content': 'hi'}]\n"
        "r = c.chat.completions.create(model='gpt-4o-mini', messages=m)\n"
        "s = c.chat.completions.create(model='gpt-4o-mini', messages=m, stream=True)\n"
        "print('OK', r.choices[0].finish_reason, len(list(s)) > 0)\n"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, str(script), provider.base_url],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "OK stop True"
    assert done.stderr == ""
