"""Google Gen AI and Bedrock Runtime through the local stack: an application under
`opentelemetry-instrument` (environment variables only) calls the fake provider's Gemini API with
the google-genai SDK and its Bedrock Runtime API with boto3 (SigV4, fake credentials), one plain
and one streamed call each, with cache tokens; Prometheus shows each model's exact tokens and cost,
the cost computed here from the SDK's own usage by genai-prices' `calc_price`, and each call
counted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price

from genai_otel.fake_provider import FakeProvider, message_tokens
from genai_otel.stack.query import prometheus_query, prometheus_scalar, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import demo_environment, run_app

SERVICE = "e2e-gemini-bedrock"
PROMPT = "Give me three facts about otters."
GEMINI_PLAIN, GEMINI_STREAMED = "gemini-2.5-flash", "gemini-2.0-flash"
BEDROCK_PLAIN = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
BEDROCK_STREAMED = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
# x-fake-* headers the app sends: what each call's usage must then report
GEMINI_FAKE = {
    GEMINI_PLAIN: {"x-fake-cache-read-tokens": "300", "x-fake-output-tokens": "12"},
    GEMINI_STREAMED: {"x-fake-cache-read-tokens": "200", "x-fake-reasoning-tokens": "5"},
}
BEDROCK_FAKE = {
    BEDROCK_PLAIN: {"x-fake-cache-read-tokens": "400", "x-fake-cache-write-tokens": "100"},
    BEDROCK_STREAMED: {
        "x-fake-cache-read-tokens": "50",
        "x-fake-cache-write-tokens": "250",
        "x-fake-output-tokens": "9",
    },
}

APP = """
import json, sys
import boto3
from google import genai

base_url, output = sys.argv[1:3]
gemini_fake, bedrock_fake = json.loads(sys.argv[3]), json.loads(sys.argv[4])
plain, streamed = list(gemini_fake)
usage = {}

gemini = genai.Client(api_key="fake-key", http_options={"base_url": base_url})
answer = gemini.models.generate_content(
    model=plain, contents=PROMPT, config={"http_options": {"headers": gemini_fake[plain]}}
)
usage[plain] = answer.usage_metadata.model_dump(exclude_none=True)
for chunk in gemini.models.generate_content_stream(
    model=streamed, contents=PROMPT, config={"http_options": {"headers": gemini_fake[streamed]}}
):
    usage[streamed] = chunk.usage_metadata.model_dump(exclude_none=True)

bedrock = boto3.client("bedrock-runtime", endpoint_url=base_url)  # credentials and region: AWS_*
sending = {}
def add_fake_headers(request, **_):
    for name, value in sending.items():
        request.headers[name] = value
bedrock.meta.events.register_first("before-sign.bedrock-runtime.*", add_fake_headers)
messages = [{"role": "user", "content": [{"text": PROMPT}]}]
plain, streamed = list(bedrock_fake)
sending = bedrock_fake[plain]
usage[plain] = bedrock.converse(modelId=plain, messages=messages)["usage"]
sending = bedrock_fake[streamed]
for event in bedrock.converse_stream(modelId=streamed, messages=messages)["stream"]:
    if "metadata" in event:
        usage[streamed] = event["metadata"]["usage"]

with open(output, "w") as out:
    json.dump(usage, out)
""".replace("PROMPT", repr(PROMPT))


@dataclass(frozen=True)
class Run:
    prometheus: str
    usage: dict[str, dict[str, int]]  # model -> the usage its SDK returned
    started: datetime


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, require_binaries: Callable[..., None], require_processor: None
) -> Iterator[Run]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp_path = tmp_path_factory.mktemp("gemini-bedrock")
    stack = LocalStack(tmp_path / "run", ports=free_ports(), build_missing=False, scrape_interval="1s")
    try:
        endpoints = stack.start(timeout=60)
        app, output = tmp_path / "app.py", tmp_path / "usage.json"
        app.write_text(APP)
        started = datetime.now(UTC)
        with FakeProvider() as provider:
            env = demo_environment(
                endpoints,
                provider.base_url,
                SERVICE,
                AWS_ACCESS_KEY_ID="AKIDFAKEFAKEFAKE",
                AWS_SECRET_ACCESS_KEY="fake-secret",
                AWS_DEFAULT_REGION="us-east-1",
                AWS_MAX_ATTEMPTS="1",
                AWS_CONFIG_FILE=str(tmp_path / "none"),
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
            )
            fakes = json.dumps(GEMINI_FAKE), json.dumps(BEDROCK_FAKE)
            run_app(str(app), provider.base_url, str(output), *fakes, env=env)
        yield Run(endpoints["prometheus_url"], json.loads(output.read_text()), started)
    finally:
        stack.stop()


def in_prometheus(run: Run, provider: str, models: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per model: its requests by status, tokens by type and cost, once both calls are counted."""

    def by(expr: str, label: str) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for sample in prometheus_query(run.prometheus, expr):
            metric = sample["metric"]
            found.setdefault(metric["model"], {})[f"{label}:{metric.get(label, '')}"] = float(
                sample["value"][1]
            )
        return found

    selector = f'service="{SERVICE}",provider="{provider}"'
    wait_for(
        lambda: prometheus_scalar(run.prometheus, f"sum(llm_requests_total{{{selector}}}) >= {len(models)}"),
        timeout=60,
        what=f"the {provider} calls in Prometheus",
    )
    seen: dict[str, dict[str, float]] = {}
    for expr, label in (
        (f"sum by (model, status) (llm_requests_total{{{selector}}})", "status"),
        (f"sum by (model, token_type) (llm_tokens_total{{{selector}}})", "token_type"),
        (f"sum by (model) (llm_cost_usd_total{{{selector}}})", "cost"),
    ):
        for model, values in by(expr, label).items():
            seen.setdefault(model, {}).update(values)
    return seen


def expected(
    run: Run,
    table: str,
    model: str,
    *,
    input_: int,
    output: int,
    cache_read: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
) -> dict[str, float]:
    """What Prometheus must show for one call: input counts the cache tokens, output the reasoning."""
    price = calc_price(
        Usage(
            input_tokens=input_,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        ),
        model,
        provider_id=table,
        genai_request_timestamp=run.started,
    )
    tokens = {"input": input_, "output": output, "cache_read": cache_read, "cache_write": cache_write}
    return {
        "status:ok": 1.0,
        **{
            f"token_type:{kind}": float(n)
            for kind, n in (*tokens.items(), ("reasoning", reasoning))
            if n or kind in ("input", "output")
        },
        "cost:": float(price.total_price),
    }


def assert_matches(seen: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> None:
    assert {model: {k: v for k, v in values.items() if k != "cost:"} for model, values in seen.items()} == {
        model: {k: v for k, v in values.items() if k != "cost:"} for model, values in want.items()
    }
    for model, values in want.items():
        # the processor rounds each cost part to 2**-32 USD
        assert seen[model]["cost:"] == pytest.approx(values["cost:"], rel=0, abs=1e-9), model


def test_gemini_calls_are_counted_once_with_exact_tokens_and_cost(run: Run) -> None:
    plain, streamed = run.usage[GEMINI_PLAIN], run.usage[GEMINI_STREAMED]
    # Gemini's accounting: promptTokenCount includes the cached part, candidates exclude thinking
    assert (
        plain["prompt_token_count"],
        plain["cached_content_token_count"],
        plain["candidates_token_count"],
    ) == (
        message_tokens(PROMPT) + 300,
        300,
        12,
    )
    assert (streamed["cached_content_token_count"], streamed["thoughts_token_count"]) == (200, 5)
    want = {
        GEMINI_PLAIN: expected(
            run, "google", GEMINI_PLAIN, input_=plain["prompt_token_count"], output=12, cache_read=300
        ),
        GEMINI_STREAMED: expected(
            run,
            "google",
            GEMINI_STREAMED,
            input_=streamed["prompt_token_count"],
            output=streamed["candidates_token_count"] + 5,
            cache_read=200,
            reasoning=5,
        ),
    }
    assert_matches(in_prometheus(run, "gcp.gemini", (GEMINI_PLAIN, GEMINI_STREAMED)), want)


def test_bedrock_calls_are_counted_once_with_exact_tokens_and_cost(run: Run) -> None:
    plain, streamed = run.usage[BEDROCK_PLAIN], run.usage[BEDROCK_STREAMED]
    # Bedrock's accounting: inputTokens excludes the cache reads and writes
    assert plain == {
        "inputTokens": message_tokens(PROMPT),
        "outputTokens": 16,
        "totalTokens": message_tokens(PROMPT) + 16 + 500,
        "cacheReadInputTokens": 400,
        "cacheWriteInputTokens": 100,
    }
    assert streamed == {
        "inputTokens": message_tokens(PROMPT),
        "outputTokens": 9,
        "totalTokens": message_tokens(PROMPT) + 9 + 300,
        "cacheReadInputTokens": 50,
        "cacheWriteInputTokens": 250,
    }
    want = {
        BEDROCK_PLAIN: expected(
            run,
            "aws",
            BEDROCK_PLAIN,
            input_=plain["inputTokens"] + 500,
            output=16,
            cache_read=400,
            cache_write=100,
        ),
        BEDROCK_STREAMED: expected(
            run,
            "aws",
            BEDROCK_STREAMED,
            input_=streamed["inputTokens"] + 300,
            output=9,
            cache_read=50,
            cache_write=250,
        ),
    }
    assert_matches(in_prometheus(run, "aws.bedrock", (BEDROCK_PLAIN, BEDROCK_STREAMED)), want)
