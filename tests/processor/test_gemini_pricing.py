"""Gemini spans priced by the processor: as genai-otel's google-genai instrumentor emits them.

Prices are genai-prices 0.2.3's (USD per million tokens): gemini-2.5-flash input 0.3, cache
read 0.03, output 2.5 (thinking is billed as output); gemini-2.0-flash 0.1 / 0.4;
gemini-embedding-001 input 0.15.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from genai_otel.instrumentation.google_genai import GoogleGenAIInstrumentor
from google import genai
from google.genai import types
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel import semconv as sc
from genai_otel.fake_provider import FakeProvider

from .helpers import assert_priced_exactly, enrich_exported, enrich_one, instrumented

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS
CR, REASONING = sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS


def gemini_span(operation: str, provider: str, model: str, **usage: int) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model,
        **usage,
    }


@pytest.mark.parametrize(
    ("attributes", "breakdown", "total"),
    [
        pytest.param(
            # 6000 uncached * 0.3 + 4000 cached * 0.03 + (2000 + 1000 thinking) * 2.5
            gemini_span(
                "generate_content",
                "gcp.gemini",
                "gemini-2.5-flash",
                **{IN: 10_000, CR: 4000, OUT: 3000, REASONING: 1000},
            ),
            (0.0018, 0.0075, 0.00012, 0.0, 0.00108),
            0.00942,
            id="generate-content-cached-with-thinking",
        ),
        pytest.param(
            gemini_span("generate_content", "gcp.vertex_ai", "gemini-2.0-flash", **{IN: 1000, OUT: 500}),
            (0.0001, 0.0002, 0.0, 0.0, 0.0),
            0.0003,
            id="vertex-ai",
        ),
        pytest.param(
            gemini_span("embeddings", "gcp.gemini", "gemini-embedding-001", **{IN: 2000}),
            (0.0003, 0.0, 0.0, 0.0, 0.0),
            0.0003,
            id="embeddings",
        ),
    ],
)
def test_gemini_span_priced_exactly(
    attributes: dict[str, Any], breakdown: tuple[float, ...], total: float
) -> None:
    enriched = enrich_one(
        attributes, name=f"{attributes[sc.GEN_AI_OPERATION_NAME]} {attributes[sc.GEN_AI_REQUEST_MODEL]}"
    )
    assert_priced_exactly(enriched, breakdown, total)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    with instrumented(GoogleGenAIInstrumentor) as spans:
        yield spans


def test_span_from_the_real_sdk_is_priced_exactly(exporter: InMemorySpanExporter) -> None:
    headers = {
        "x-fake-cache-read-tokens": "4000",
        "x-fake-output-tokens": "2000",
        "x-fake-reasoning-tokens": "1000",
    }
    with FakeProvider() as provider:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=provider.base_url))
        response = client.models.generate_content(
            model="gemini-2.5-flash", contents="Price me", config={"http_options": {"headers": headers}}
        )
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count is not None

    enriched = enrich_exported(exporter)

    uncached = usage.prompt_token_count - 4000  # Gemini's prompt count includes the cached part
    expected = (uncached * 0.3 + 4000 * 0.03 + (2000 + 1000) * 2.5) / 1e6
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_CACHE_READ] == pytest.approx(4000 * 0.03 / 1e6, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_OUTPUT] == pytest.approx(3000 * 2.5 / 1e6, abs=1e-9)
