"""Cost cases per provider, checked against figures computed by hand from the table's prices.

Prices quoted in the comments are genai-prices 0.2.3's (USD per million tokens). Every
expected figure is exact; the processor rounds to 2**-32 USD, far below a micro-dollar.
"""

from __future__ import annotations

from typing import Any

import pytest

from genai_otel import semconv as sc

from .helpers import T_2025_01_01, T_2025_07_01, T_2026_11_01, enrich_one

IN, OUT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS
CR, CW = sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS


def chat(provider: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        **extra,
    }


CASES = [
    pytest.param(
        # gpt-4o: input 2.5, cache read 1.25, output 10
        chat("openai", "gpt-4o", **{IN: 1000, CR: 200, OUT: 500}),
        {},
        (0.002, 0.005, 0.00025, 0.0, 0.00025),
        0.00725,
        id="openai-cached-input",
    ),
    pytest.param(
        # claude-3-5-sonnet (dated alias): input 3, cache read 0.3, cache write 3.75, output 15
        chat("anthropic", "claude-3-5-sonnet-20241022", **{IN: 1000, CR: 100, CW: 300, OUT: 200}),
        {},
        (0.0018, 0.003, 0.00003, 0.001125, 0.00027),
        0.005955,
        id="anthropic-cache-write-dated-model",
    ),
    pytest.param(
        # claude-sonnet-4-5 above 200k input: every token at the long-context tier (6 / 22.5)
        chat("anthropic", "claude-sonnet-4-5", **{IN: 250_000, OUT: 1000}),
        {},
        (1.5, 0.0225, 0.0, 0.0, 0.0),
        1.5225,
        id="anthropic-long-context",
    ),
    pytest.param(
        # ... and at exactly 200k input, still the base tier (3 / 15)
        chat("anthropic", "claude-sonnet-4-5", **{IN: 200_000, OUT: 1000}),
        {},
        (0.6, 0.015, 0.0, 0.0, 0.0),
        0.615,
        id="anthropic-long-context-threshold",
    ),
    pytest.param(
        # gemini-2.5-pro above 200k: input 2.5, cache read 0.25, output 15
        chat("gcp.gemini", "gemini-2.5-pro", **{IN: 300_000, CR: 100_000, OUT: 2000}),
        {},
        (0.5, 0.03, 0.025, 0.0, 0.225),
        0.555,
        id="gemini-long-context-cached",
    ),
    pytest.param(
        # o3 after the 2025-06-10 cut: input 2, output 8; reasoning is part of output
        chat("openai", "o3", **{IN: 1000, OUT: 3000, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 2500}),
        {},
        (0.002, 0.024, 0.0, 0.0, 0.0),
        0.026,
        id="openai-reasoning",
    ),
    pytest.param(
        # o3 before 2025-06-10: input 10, output 40
        chat("openai", "o3", **{IN: 1000, OUT: 3000, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 2500}),
        {"start_ns": T_2025_01_01},
        (0.01, 0.12, 0.0, 0.0, 0.0),
        0.13,
        id="openai-historical-price",
    ),
    pytest.param(
        # gpt-5 flex tier (priced from 2026-10-12 on): input 0.625, output 5
        chat("openai", "gpt-5", **{IN: 10_000, OUT: 1000, sc.OPENAI_RESPONSE_SERVICE_TIER: "flex"}),
        {"start_ns": T_2026_11_01},
        (0.00625, 0.005, 0.0, 0.0, 0.0),
        0.01125,
        id="openai-service-tier-flex",
    ),
    pytest.param(
        # gpt-5 priority tier: input 2.5, output 20
        chat("openai", "gpt-5", **{IN: 10_000, OUT: 1000, sc.OPENAI_RESPONSE_SERVICE_TIER: "priority"}),
        {"start_ns": T_2026_11_01},
        (0.025, 0.02, 0.0, 0.0, 0.0),
        0.045,
        id="openai-service-tier-priority",
    ),
    pytest.param(
        # older conventions: gen_ai.system + prompt/completion tokens; gpt-4o-mini 0.15 / 0.6
        {
            sc.LEGACY_GEN_AI_SYSTEM: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            sc.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 500,
        },
        {},
        (0.00015, 0.0003, 0.0, 0.0, 0.0),
        0.00045,
        id="legacy-attribute-names",
    ),
    pytest.param(
        # an unknown dated response model falls back to the request model (gpt-4o)
        chat("openai", "gpt-4o", **{sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2099-01-01", IN: 1000, OUT: 100}),
        {},
        (0.0025, 0.001, 0.0, 0.0, 0.0),
        0.0035,
        id="unknown-dated-response-model",
    ),
    pytest.param(
        # Bedrock's model id for claude-3-5-sonnet: 3 / 15
        chat("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", **{IN: 2000, OUT: 100}),
        {},
        (0.006, 0.0015, 0.0, 0.0, 0.0),
        0.0075,
        id="aws-bedrock",
    ),
    pytest.param(
        # Azure OpenAI serves OpenAI's models at OpenAI's table prices
        chat("azure.ai.openai", "gpt-4o", **{IN: 1000, OUT: 100}),
        {},
        (0.0025, 0.001, 0.0, 0.0, 0.0),
        0.0035,
        id="azure-openai",
    ),
    pytest.param(
        # grok-3: input 3, cache read 0.75, output 15
        chat("x_ai", "grok-3", **{IN: 1000, CR: 400, OUT: 100}),
        {},
        (0.0018, 0.0015, 0.0003, 0.0, 0.0009),
        0.0036,
        id="x-ai-cached",
    ),
    pytest.param(
        # mistral-large: input 2, output 6
        chat("mistral_ai", "mistral-large-latest", **{IN: 1000, OUT: 1000}),
        {},
        (0.002, 0.006, 0.0, 0.0, 0.0),
        0.008,
        id="mistral",
    ),
    pytest.param(
        # the Anthropic SDK's own span: input includes the 600 cache-read tokens; haiku 0.8 / 0.08 / 4
        {
            sc.GEN_AI_PROVIDER_NAME: "anthropic",
            sc.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku-latest",
            IN: 1000,
            CR: 600,
            OUT: 100,
        },
        {"scope": sc.ANTHROPIC_SDK_SCOPE, "name": sc.ANTHROPIC_SDK_SPAN_NAME},
        (0.00032, 0.0004, 0.000048, 0.0, 0.000432),
        0.000768,
        id="anthropic-sdk-native-span",
    ),
]


@pytest.mark.parametrize(("attributes", "span_options", "breakdown", "total"), CASES)
def test_cost_matches_hand_computed_figure(
    attributes: dict[str, Any],
    span_options: dict[str, Any],
    breakdown: tuple[float, float, float, float, float],
    total: float,
) -> None:
    enriched = enrich_one(attributes, **span_options)

    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(total, abs=1e-9)
    assert round(enriched[sc.GEN_AI_USAGE_COST_AMOUNT], 6) == round(total, 6)
    got = tuple(
        enriched[key]
        for key in (
            sc.GENAI_OTEL_COST_INPUT,
            sc.GENAI_OTEL_COST_OUTPUT,
            sc.GENAI_OTEL_COST_CACHE_READ,
            sc.GENAI_OTEL_COST_CACHE_WRITE,
            sc.GENAI_OTEL_COST_CACHE_SAVINGS,
        )
    )
    assert got == pytest.approx(breakdown, abs=1e-9)
    # the parts add up to the total exactly, to the last bit
    assert sum(got[:4]) == enriched[sc.GEN_AI_USAGE_COST_AMOUNT]
    assert enriched[sc.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert enriched[sc.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert enriched[sc.GENAI_OTEL_COST_PRICE_TABLE] == "genai-prices 0.2.3"
    assert sc.GENAI_OTEL_COST_UNPRICED_REASON not in enriched


def test_service_tier_before_the_table_has_tier_prices_is_the_standard_price() -> None:
    attributes = chat("openai", "gpt-5", **{IN: 10_000, OUT: 1000, sc.OPENAI_RESPONSE_SERVICE_TIER: "flex"})
    enriched = enrich_one(attributes, start_ns=T_2025_07_01)
    # input 1.25, output 10: the flex variant only applies from 2026-10-12
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(0.0225, abs=1e-9)
