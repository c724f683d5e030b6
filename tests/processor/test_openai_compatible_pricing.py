"""OpenAI-compatible providers priced by the processor with their own provider's table.

Prices are genai-prices 0.2.3's (USD per million tokens): Groq llama-3.3-70b-versatile input
0.59, output 0.79; OpenAI gpt-4o input 2.5, output 10.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from genai_otel.instrumentation.openai import OpenAIInstrumentor
from genai_otel.processors.pricing import PROVIDER_TABLE_IDS, PriceBook, PriceOverrides
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel import semconv as sc
from genai_otel.fake_provider import FakeProvider

from .helpers import assert_priced_exactly, enrich_exported, enrich_one, instrumented, make_pipeline

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS


def chat_span(
    provider: str, model: str, input_tokens: int = 1000, output_tokens: int = 100
) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model,
        IN: input_tokens,
        OUT: output_tokens,
    }


@pytest.mark.parametrize("provider", sorted({provider for _, provider in sc.OPENAI_COMPATIBLE_HOSTS}))
def test_every_provider_of_the_host_table_has_a_price_table_or_is_self_hosted(provider: str) -> None:
    book = PriceBook()
    if provider in sc.SELF_HOSTED_PROVIDERS:
        assert provider not in PROVIDER_TABLE_IDS
    else:
        assert PROVIDER_TABLE_IDS[provider] in set(book.providers())


@pytest.mark.parametrize("provider", ["self_hosted", "ollama", "vllm"])
def test_a_self_hosted_endpoint_is_unpriced_even_for_a_model_a_table_knows(provider: str) -> None:
    pipeline = make_pipeline()
    enriched = enrich_one(chat_span(provider, "gpt-4o"), pipeline)

    assert enriched[sc.GENAI_OTEL_COST_UNPRICED_REASON] == "self_hosted"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in enriched
    assert list(pipeline.registry.unpriced) == [(provider, "gpt-4o", "self_hosted")]


def test_the_overrides_file_prices_a_self_hosted_endpoint(tmp_path: Path) -> None:
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        "custom_models:\n"
        "  - provider: self_hosted\n    model: llama-3.3-70b*\n    prices:\n"
        "      - {input_mtok: 0.2, output_mtok: 0.4}\n"
        "  - provider: ollama\n    model: '*'\n    prices:\n"
        "      - {input_mtok: 0.0}\n"
    )
    pipeline = make_pipeline(PriceOverrides.load(overrides))

    vllm = enrich_one(chat_span("self_hosted", "llama-3.3-70b-instruct"), pipeline)
    ollama = enrich_one(chat_span("ollama", "qwen3:8b"), pipeline)
    unlisted = enrich_one(chat_span("self_hosted", "mistral-7b"), pipeline)

    # 1000 * 0.2 + 100 * 0.4 per million
    assert_priced_exactly(vllm, (0.0002, 0.00004, 0.0, 0.0, 0.0), 0.00024)
    assert vllm[sc.GENAI_OTEL_COST_PRICE_TABLE].startswith("overrides ")
    assert_priced_exactly(ollama, (0.0, 0.0, 0.0, 0.0, 0.0), 0.0)
    assert unlisted[sc.GENAI_OTEL_COST_UNPRICED_REASON] == "self_hosted"


@pytest.mark.parametrize(
    ("provider", "model", "total"),
    [
        ("groq", "llama-3.3-70b-versatile", (1000 * 0.59 + 100 * 0.79) / 1e6),
        ("openai", "gpt-4o", (1000 * 2.5 + 100 * 10) / 1e6),
    ],
)
def test_a_mapped_provider_is_priced_from_its_own_table(provider: str, model: str, total: float) -> None:
    enriched = enrich_one(chat_span(provider, model))
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(total, abs=1e-9)
    assert enriched[sc.GENAI_OTEL_COST_PRICE_TABLE].startswith("genai-prices ")


# --------------------------------------------------------------------------------------
# The real openai SDK over HTTP, the host mapped by the environment, priced by the pipeline
# --------------------------------------------------------------------------------------
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(sc.ENV_OPENAI_PROVIDER, raising=False)
    monkeypatch.delenv(sc.ENV_PROVIDER_HOSTS, raising=False)
    return monkeypatch


@pytest.fixture
def groq_exporter(clean_env: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    clean_env.setenv(sc.ENV_PROVIDER_HOSTS, "127.0.0.1=groq")
    with instrumented(OpenAIInstrumentor) as spans:
        yield spans


@pytest.fixture
def unmapped_exporter(clean_env: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    with instrumented(OpenAIInstrumentor) as spans:
        yield spans


def _chat(model: str) -> Any:
    with FakeProvider() as provider:
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="k", max_retries=0)
        completion = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Price me"}],
            extra_headers={"x-fake-output-tokens": "300"},
        )
        client.close()
    return completion


def test_a_groq_call_through_the_openai_sdk_is_priced_from_groqs_table(
    groq_exporter: InMemorySpanExporter,
) -> None:
    completion = _chat("llama-3.3-70b-versatile")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 300

    enriched = enrich_exported(groq_exporter)

    assert enriched[sc.GEN_AI_PROVIDER_NAME] == "groq"
    input_cost = usage.prompt_tokens * 0.59 / 1e6
    output_cost = 300 * 0.79 / 1e6
    assert_priced_exactly(enriched, (input_cost, output_cost, 0.0, 0.0, 0.0), input_cost + output_cost)


def test_an_unmapped_host_serving_an_openai_model_is_not_priced_as_openai(
    unmapped_exporter: InMemorySpanExporter,
) -> None:
    _chat("gpt-4o")

    enriched = enrich_exported(unmapped_exporter)

    assert enriched[sc.GEN_AI_PROVIDER_NAME] == "self_hosted"
    assert enriched[sc.GENAI_OTEL_COST_UNPRICED_REASON] == "self_hosted"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in enriched
