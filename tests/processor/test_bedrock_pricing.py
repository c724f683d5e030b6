"""Bedrock spans priced by the processor: as genai-otel's Bedrock instrumentor emits them.

Prices are genai-prices 0.2.3's AWS table (USD per million tokens): Claude 3.5 Sonnet v2 input 3,
output 15, cache read 0.3, cache write 3.75 (regional and cross-region profiles alike); Claude
Sonnet 4.5 3 / 15 through the `global.` profile, 3.3 / 16.5 through a regional one (`us.`);
Llama 3.1 8B 0.22 / 0.22; Nova Lite 0.06 / 0.24, cache read 0.015; Titan Text Express 0.2 / 0.6.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from genai_otel.instrumentation.bedrock import BedrockInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel import semconv as sc
from genai_otel.fake_provider import FakeProvider
from genai_otel.fake_provider.bedrock_client import bedrock_client

from .helpers import assert_priced_exactly, enrich_exported, enrich_one, instrumented

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS
CR, CW = sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS


def bedrock_span(model: str, response_model: str | None = None, **usage: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        sc.GEN_AI_REQUEST_MODEL: model,
        **usage,
    }
    if response_model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
    return attributes


@pytest.mark.parametrize(
    ("attributes", "breakdown", "total"),
    [
        pytest.param(
            # 5000 uncached * 3 + 4000 read * 0.3 + 1000 written * 3.75 + 500 * 15
            bedrock_span(
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0", **{IN: 10_000, CR: 4000, CW: 1000, OUT: 500}
            ),
            (0.015, 0.0075, 0.0012, 0.00375, 0.0108),
            0.02745,
            id="us-profile-cached",
        ),
        pytest.param(
            bedrock_span("anthropic.claude-3-5-sonnet-20241022-v2:0", **{IN: 1000, OUT: 100}),
            (0.003, 0.0015, 0.0, 0.0, 0.0),
            0.0045,
            id="versioned-model-id",
        ),
        pytest.param(
            bedrock_span("eu.anthropic.claude-3-5-sonnet-20241022-v2:0", **{IN: 1000, OUT: 100}),
            (0.003, 0.0015, 0.0, 0.0, 0.0),
            0.0045,
            id="eu-profile",
        ),
        pytest.param(
            # the body's bare model name would price at the regional rate: the profile decides
            bedrock_span(
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "claude-sonnet-4-5-20250929",
                **{IN: 1000, OUT: 100},
            ),
            (0.003, 0.0015, 0.0, 0.0, 0.0),
            0.0045,
            id="global-profile-beats-response-model",
        ),
        pytest.param(
            bedrock_span("us.anthropic.claude-sonnet-4-5-20250929-v1:0", **{IN: 1000, OUT: 100}),
            (0.0033, 0.00165, 0.0, 0.0, 0.0),
            0.00495,
            id="regional-profile-premium",
        ),
        pytest.param(
            bedrock_span("meta.llama3-1-8b-instruct-v1:0", **{IN: 1000, OUT: 1000}),
            (0.00022, 0.00022, 0.0, 0.0, 0.0),
            0.00044,
            id="meta-llama",
        ),
        pytest.param(
            bedrock_span("us.amazon.nova-lite-v1:0", **{IN: 2000, CR: 1000, OUT: 1000}),
            (0.00006, 0.00024, 0.000015, 0.0, 0.000045),
            0.000315,
            id="nova-lite-cached",
        ),
        pytest.param(
            bedrock_span("amazon.titan-text-express-v1", **{IN: 1000, OUT: 1000}),
            (0.0002, 0.0006, 0.0, 0.0, 0.0),
            0.0008,
            id="titan-text",
        ),
    ],
)
def test_bedrock_span_priced_exactly(
    attributes: dict[str, Any], breakdown: tuple[float, ...], total: float
) -> None:
    enriched = enrich_one(attributes, name=f"chat {attributes[sc.GEN_AI_REQUEST_MODEL]}")
    assert_priced_exactly(enriched, breakdown, total)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    with instrumented(BedrockInstrumentor) as spans:
        yield spans


def test_span_from_the_real_sdk_is_priced_exactly(exporter: InMemorySpanExporter) -> None:
    headers = {
        "x-fake-cache-read-tokens": "4000",
        "x-fake-cache-write-tokens": "1000",
        "x-fake-output-tokens": "2000",
    }
    with FakeProvider() as provider:
        client = bedrock_client(provider.base_url, headers)
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Price me"}],
        }
        response = client.invoke_model(
            modelId="us.anthropic.claude-3-5-sonnet-20241022-v2:0", body=json.dumps(body)
        )
        usage = json.loads(response["body"].read())["usage"]

    enriched = enrich_exported(exporter)

    uncached = usage["input_tokens"]  # Anthropic's figure excludes the cache tokens
    expected = (uncached * 3 + 4000 * 0.3 + 1000 * 3.75 + 2000 * 15) / 1e6
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_CACHE_READ] == pytest.approx(4000 * 0.3 / 1e6, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_CACHE_WRITE] == pytest.approx(1000 * 3.75 / 1e6, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_OUTPUT] == pytest.approx(2000 * 15 / 1e6, abs=1e-9)
