"""Property tests of the normalisation and pricing invariants."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from genai_otel.processors.normalise import Normaliser
from genai_otel.processors.pricing import PriceBook, compute_cost, to_usd
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_otel import semconv as sc

from .helpers import attributes_of, make_pipeline, make_request, make_span, run, spans_of

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = [
    ("openai", "gpt-4o", "openai"),
    ("openai", "o3", "openai"),
    ("anthropic", "claude-sonnet-4-5", "anthropic"),
    ("anthropic", "claude-3-5-haiku-latest", "anthropic"),
    ("gcp.gemini", "gemini-2.5-pro", "google"),
    ("x_ai", "grok-3", "x-ai"),
    ("deepseek", "deepseek-chat", "deepseek"),
]
# Any instant from 2024 to 2026 (covers start-date changes and DeepSeek's off-peak hours).
instants = st.integers(min_value=1_704_067_200, max_value=1_798_000_000).map(lambda s: s * 10**9)


@st.composite
def usages(draw: st.DrawFn) -> tuple[int, int, int, int]:
    cache_read = draw(st.integers(0, 300_000))
    cache_write = draw(st.integers(0, 300_000))
    uncached = draw(st.integers(0, 300_000))
    output = draw(st.integers(0, 100_000))
    return uncached + cache_read + cache_write, output, cache_read, cache_write


@SETTINGS
@given(model=st.sampled_from(MODELS), usage=usages(), start_ns=instants)
def test_compiled_price_equals_genai_prices(model: tuple[str, str, str], usage: tuple, start_ns: int) -> None:
    provider, name, table_id = model
    book = PriceBook()
    rates = book.rates(provider, name, "", start_ns, "")
    assert not isinstance(rates, str)
    cost = compute_cost(rates, *usage)
    expected = calc_price(
        Usage(
            input_tokens=usage[0],
            output_tokens=usage[1],
            cache_read_tokens=usage[2],
            cache_write_tokens=usage[3],
        ),
        name,
        provider_id=table_id,
        genai_request_timestamp=datetime.fromtimestamp(start_ns / 1e9, tz=UTC),
    )
    assert abs(to_usd(cost.total) - float(expected.total_price)) <= 1e-9 + 1e-12 * float(expected.total_price)


@SETTINGS
@given(model=st.sampled_from(MODELS), usage=usages(), extra=st.integers(1, 50_000), which=st.integers(0, 3))
def test_cost_is_non_negative_and_monotone_in_tokens(
    model: tuple, usage: tuple, extra: int, which: int
) -> None:
    rates = PriceBook().rates(model[0], model[1], "", 1_751_371_200 * 10**9, "")
    assert not isinstance(rates, str)
    before = compute_cost(rates, *usage)
    more = list(usage)
    more[which] += extra
    if which in (2, 3):
        more[0] += extra  # cache tokens are part of input
    after = compute_cost(rates, *more)
    assert min(before.input, before.output, before.cache_read, before.cache_write, before.savings) >= 0
    assert after.total >= before.total


token_values = st.one_of(st.none(), st.integers(0, 10**7))


@SETTINGS
@given(inp=token_values, out=token_values, read=token_values, write=token_values, reasoning=token_values)
def test_normalised_input_includes_cache_and_output_includes_reasoning(
    inp: int | None, out: int | None, read: int | None, write: int | None, reasoning: int | None
) -> None:
    attributes: dict[str, object] = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    for key, value in (
        (sc.GEN_AI_USAGE_INPUT_TOKENS, inp),
        (sc.GEN_AI_USAGE_OUTPUT_TOKENS, out),
        (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, read),
        (sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, write),
        (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ):
        if value is not None:
            attributes[key] = value
    call = Normaliser(max_tokens=10**9, max_value_length=256).normalise(attributes, "scope", False)
    assert call is not None
    assert call.input_tokens >= call.cache_read_tokens + call.cache_write_tokens
    assert call.output_tokens >= call.reasoning_tokens
    cache = (read or 0) + (write or 0)
    # never counted twice: a consistent report is taken as is
    if cache <= (inp or 0):
        assert call.input_tokens == (inp or 0)
    else:
        assert call.input_tokens == (inp or 0) + cache


attribute_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)
attribute_keys = st.one_of(
    st.sampled_from(
        [
            sc.GEN_AI_OPERATION_NAME,
            sc.GEN_AI_PROVIDER_NAME,
            sc.LEGACY_GEN_AI_SYSTEM,
            sc.GEN_AI_REQUEST_MODEL,
            sc.GEN_AI_RESPONSE_MODEL,
            sc.GEN_AI_USAGE_INPUT_TOKENS,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS,
            sc.USER_ID,
            sc.ERROR_TYPE,
            sc.OPENLIT_USAGE_COST,
            sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        ]
    ),
    st.text(min_size=1, max_size=30),
)
spans_attributes = st.dictionaries(attribute_keys, attribute_values, max_size=12)
plausible = st.fixed_dictionaries(
    {
        sc.GEN_AI_PROVIDER_NAME: st.sampled_from(["openai", "anthropic", "gcp.gemini", "acme"]),
        sc.GEN_AI_REQUEST_MODEL: st.sampled_from(
            ["gpt-4o", "claude-3-5-haiku-latest", "gemini-2.5-pro", "x"]
        ),
        sc.GEN_AI_USAGE_INPUT_TOKENS: st.integers(0, 10**6),
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: st.integers(0, 10**5),
    }
)


@SETTINGS
@given(attributes=st.one_of(spans_attributes, plausible), error=st.booleans())
def test_any_span_is_forwarded_with_its_attributes_and_enrichment_is_idempotent(
    attributes: dict[str, Any], error: bool
) -> None:
    payload = make_request([make_span(attributes, error=error), make_span({"k": "v"}, name="other")])
    once = run(make_pipeline(), payload)
    (first, second) = spans_of(once)
    original = attributes_of(make_span(attributes))
    forwarded = attributes_of(first)
    for key, value in original.items():  # everything the source sent is still there, unchanged
        assert repr(forwarded[key]) == repr(value)
    assert attributes_of(second) == {"k": "v"}
    assert run(make_pipeline(), once) == once
