"""The C request walk (`_wirescan`) and the pure-Python one give identical results.

Both paths run on the same bytes: the extracted span data (attributes, facts, evaluation flag),
the forwarded bytes and every recorded metric must be equal, on realistic requests, on
hypothesis-generated spans and on malformed or unusual encodings.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.config import ENV_PREFIX, load_config
from genai_otel.processors.normalise import SCANNED_KEYS
from genai_otel.processors.pipeline import EVALUATION_EVENT, Pipeline
from genai_otel.processors.pricing import PriceBook
from genai_otel.processors.scan import PURE_PYTHON_ENV, RequestScanner
from genai_otel.processors.wire import UNSUPPORTED, WireError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_otel import semconv as sc

from .helpers import (
    GENAI,
    attributes_of,
    framed,
    make_pipeline,
    make_request,
    make_span,
    renewed,
    request_of_span_bytes,
    resolved_scan,
    run,
    samples,
    spans_of,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not scan_module.accelerated_available(), reason="the _wirescan extension is not built"
)


def _scanners() -> tuple[RequestScanner, RequestScanner]:
    return (
        RequestScanner(SCANNED_KEYS, EVALUATION_EVENT, accelerated=True),
        RequestScanner(SCANNED_KEYS, EVALUATION_EVENT, accelerated=False),
    )


def assert_same_scan(data: bytes) -> None:
    fast, slow = _scanners()
    try:
        expected = slow.split(data)
    except WireError:
        with pytest.raises(WireError):
            fast.split(data)
        return
    # repr: a NaN attribute value must compare equal to itself
    assert repr(resolved_scan(fast.split(data), data)) == repr(resolved_scan(expected, data))


def _registry_state(pipeline: Pipeline) -> dict[str, Any]:
    r = pipeline.registry
    return {
        # everything but the line saying which walk is in use
        "exposition": [
            line for line in r.expose(openmetrics=True).splitlines() if sc.PROM_PROCESSOR_INFO not in line
        ],
        "received": dict(r.received),
        "invalid": dict(r.invalid),
    }


def assert_same_processing(
    data: bytes, passes: int = 2, max_tokens: int = 100_000_000, **label_options: Any
) -> bytes:
    """Each pass's forwarded bytes and span count, and the metrics after every pass, are equal.

    The second pass runs through the C lane's learned entries (the first teaches it).
    label_options: as make_pipeline's (label caps, top users and features)."""
    # each pass the same calls exported anew (sending the same bytes again would be a retry,
    # which counts nothing); a request the renewal cannot re-encode as it was is sent as is
    payloads = [data]
    for _ in range(passes - 1):
        try:
            payloads.append(renewed(data))
        except ValueError:
            payloads.append(data)
    results = []
    for accelerated in (True, False):
        registry = make_pipeline(**label_options).registry
        pipeline = Pipeline(registry, PriceBook(), max_tokens=max_tokens, accelerated=accelerated)
        outcome = []
        for payload in payloads:
            scanned, count = pipeline.split(payload)
            outcome.append((pipeline.process(payload, scanned), count, _registry_state(pipeline)))
        results.append(outcome)
    assert results[0] == results[1]
    return results[0][0][0]


def _bench_requests() -> list[bytes]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_processor import build_request  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    rng = random.Random(3)
    return [build_request(rng, 64) for _ in range(3)]


def test_benchmark_requests_scan_and_process_identically() -> None:
    for data in _bench_requests():
        assert_same_scan(data)
        forwarded = assert_same_processing(data)
        assert forwarded != data  # GenAI spans were enriched


_NEEDLE = EVALUATION_EVENT.decode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(
        st.sampled_from(["", _NEEDLE, _NEEDLE[:-1], _NEEDLE[1:], _NEEDLE[:10], _NEEDLE[-10:], "t", "lt", "x"])
        | st.text(alphabet=sorted(set(_NEEDLE)), max_size=30),
        max_size=8,
    )
)
def test_the_evaluation_event_search_finds_what_bytes_find_finds(pieces: list[str]) -> None:
    # The C walk searches each span for the event's name (memmem); any text (partial names,
    # overlaps, the name at either end of a value) must read as the Python walk's bytes.find.
    value = "".join(pieces)
    for attributes in ({"http.route": value}, {"http.route": value, "gen_ai.request.model": "gpt-4o"}):
        data = make_request([make_span(attributes)])
        assert_same_scan(data)
        assert_same_processing(data)


def test_without_the_lane_the_per_span_c_path_processes_identically() -> None:
    # A token cap at or over 2**53 turns the lane off (it sums in 64-bit integers): the C walk,
    # per-span C calls and C re-assembly then serve, and must match the Python path too.
    for data in _bench_requests():
        forwarded = assert_same_processing(data, max_tokens=2**53)
        assert forwarded != data
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), max_tokens=2**53, accelerated=True)
    assert pipeline.lane is None and pipeline.scanner.accelerated


def test_service_names_come_from_each_resource_whatever_its_size_or_how_often_seen() -> None:
    # _service_of remembers Resources by their bytes (up to 4 KiB each); a large Resource is
    # decoded every time. Both must name the same series, request after request.
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    attributes = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 1}  # fmt: skip
    request = ExportTraceServiceRequest()
    for service, padding in (("small-svc", ""), ("large-svc", "x" * 5000)):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = service
        resource_spans.resource.attributes.add(key="host.description").value.string_value = padding
        resource_spans.scope_spans.add().spans.append(make_span(attributes))
    data = request.SerializeToString()
    assert_same_processing(data, passes=3)
    pipeline = make_pipeline()
    for _ in range(3):
        run(pipeline, renewed(data))
    requests = samples(pipeline.registry.expose(openmetrics=True), sc.PROM_LLM_REQUESTS)
    assert {key.split(",")[0]: value for key, value in requests.items()} == {
        '{service="large-svc"': "3",
        '{service="small-svc"': "3",
    }


def test_sums_the_lane_holds_across_requests_reach_the_exposition() -> None:
    # The lane adds its sums to the registry only when it is read (or before a Python-path span):
    # many requests, read once at the end, must read as the Python path's.
    requests = _bench_requests() * 3
    states = []
    for accelerated in (True, False):
        pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
        forwarded = [pipeline.process(data, pipeline.split(data)[0]) for data in requests]
        states.append((forwarded, _registry_state(pipeline)))
    assert states[0] == states[1]


def test_evaluation_events_status_messages_and_legacy_names_process_identically() -> None:
    spans = [
        make_span(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 10},
            error=True,
        ),
        make_span(
            {"http.route": "/x"},
            events=[
                (
                    sc.EVENT_EVALUATION_RESULT,
                    {"gen_ai.evaluation.name": "rel", "gen_ai.evaluation.score.value": 8.0},
                )
            ],
        ),
        make_span({"gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": [1, 2]}),
        make_span({"gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": ["stop", "length"]}),
    ]
    spans[0].status.message = "rate limited: retry in 2 s"
    spans[3].flags = 0x301
    data = make_request(spans, scope="com.anthropic.sdk.python")
    assert_same_scan(data)
    assert_same_processing(data)


def _kv(key: bytes, value: bytes) -> bytes:
    body = b"\x0a" + bytes((len(key),)) + key + b"\x12" + bytes((len(value),)) + value
    return b"\x4a" + bytes((len(body),)) + body


@pytest.mark.parametrize(
    "span",
    [
        # no end time: the exact walk decides
        b"\x0a\x02ab" + _kv(b"gen_ai.request.model", b"\x0a\x02m1"),
        # attributes before the header: a non-canonical producer
        _kv(b"gen_ai.request.model", b"\x0a\x02m1") + b"\x39" + bytes(8) + b"\x41" + struct.pack("<Q", 5),
        # a truncated interior: the span is counted malformed either way
        _kv(b"gen_ai.request.model", b"\x0a\x02m1") + b"\x39\x01",
        # a key framed inside a string value
        b"\x2a\x20" + _kv(b"gen_ai.system", b"\x0a\x02xy") + b"\x00" * 15,
        # a varint wider than 64 bits as an int value
        _kv(b"gen_ai.usage.input_tokens", b"\x18" + b"\xff" * 9 + b"\x7f"),
        # a double cut short, an empty value, a bytes value
        _kv(b"gen_ai.usage.cost.amount", b"\x21\x00\x00")
        + _kv(b"error.type", b"")
        + _kv(b"user.id", b"\x3a\x01z"),
        # 'z' bytes near the tail that are not a status
        _kv(b"gen_ai.request.model", b"\x0a\x05zzzzz") + b"\x41" + bytes(8),
    ],
)
def test_unusual_span_encodings_process_identically(span: bytes) -> None:
    data = request_of_span_bytes(span)
    assert_same_scan(data)
    assert_same_processing(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\xff\xff\x03garbage",
        b"\x0a\x05\x12\x03\x12\x05a",
        b"\x0a\x04\x12\x02\x0a\x05",
        b"\x0a\x03\x00\x01\x02",
        b"\x08" + b"\xff" * 11,
        b"\x0a\x02\x12\x00\x0b",
        b"\x0a\x0b\x12\x09\x0a\x07\x0a\x05\x0a\x03abc",
    ],
)
def test_malformed_requests_fail_identically(data: bytes) -> None:
    assert_same_scan(data)


values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)
keys = st.sampled_from([*SCANNED_KEYS, "http.route", "gen_ai.response.id", sc.SERVICE_NAME])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spans=st.lists(
        st.tuples(
            st.dictionaries(keys, values, max_size=8),
            st.booleans(),
            st.text(max_size=20),
            st.integers(0, 2**64 - 1),
        ),
        min_size=1,
        max_size=5,
    ),
    scope=st.sampled_from(["test.scope", "openlit.otel.tracing", "com.anthropic.sdk.python"]),
)
def test_generated_spans_scan_and_process_identically(
    spans: list[tuple[dict[str, Any], bool, str, int]], scope: str
) -> None:
    built = []
    for attributes, error, message, flags in spans:
        span = make_span(attributes, error=error)
        if message:
            span.status.message = message
        span.flags = flags & 0xFFFFFFFF
        built.append(span)
    data = make_request(built, scope=scope)
    assert_same_scan(data)
    assert_same_processing(data)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=80))
def test_arbitrary_bytes_scan_identically(data: bytes) -> None:
    assert_same_scan(data)
    assert_same_scan(request_of_span_bytes(data))


def test_environment_forces_the_pure_python_walk() -> None:
    code = "from genai_otel.processors.scan import use_accelerated; print(use_accelerated())"
    env = {**os.environ, PURE_PYTHON_ENV: "1"}
    forced = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    env.pop(PURE_PYTHON_ENV)
    default = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    assert (forced.stdout.strip(), default.stdout.strip()) == ("False", "True")
    # outside the processor's config namespace: a processor starts with it set
    assert not PURE_PYTHON_ENV.startswith(ENV_PREFIX)
    assert load_config(environ={PURE_PYTHON_ENV: "1"}).listen == load_config(environ={}).listen


def test_metrics_say_which_walk_is_in_use() -> None:
    from .helpers import samples

    for accelerated in (True, False):
        pipeline = make_pipeline()
        registry = pipeline.registry
        Pipeline(registry, pipeline.prices, accelerated=accelerated)
        text = registry.expose(openmetrics=False)
        expected = "true" if accelerated else "false"
        assert samples(text, sc.PROM_PROCESSOR_INFO) == {f'{{accelerated="{expected}"}}': "1"}


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["gen_ai.usage.input_tokens", "k", "x" * 140]),
    value=st.integers(-(2**63), 2**64 - 1),
)
def test_cached_int_framing_encodes_like_the_plain_encoder(key: str, value: int) -> None:
    from genai_otel.processors.wire import IntAttributeEncoder, encode_int_attribute

    assert IntAttributeEncoder(key)(value) == encode_int_attribute(key, value)


@settings(max_examples=200, deadline=None)
@given(quanta=st.lists(st.integers(0, 2**60), min_size=5, max_size=5), table=st.text(max_size=150))
def test_packed_cost_attributes_encode_like_one_by_one(quanta: list[int], table: str) -> None:
    from genai_otel.processors import pipeline as p
    from genai_otel.processors.pricing import to_usd
    from genai_otel.processors.wire import encode_string_attribute

    packer, *fixed = p._cost_packer(table)
    usd = 1.0 / (1 << 32)
    inp, out, read, write, savings = quanta
    packed = packer.pack(
        fixed[0], (inp + out + read + write) * usd, fixed[1], inp * usd, fixed[2], out * usd,
        fixed[3], read * usd, fixed[4], write * usd, fixed[5], savings * usd,
    )  # fmt: skip
    one_by_one = b"".join(
        (
            p._COST_AMOUNT(to_usd(inp + out + read + write)),
            p._CURRENCY,
            p._SOURCE_LOCAL,
            encode_string_attribute(sc.GENAI_OTEL_COST_PRICE_TABLE, table),
            p._COST_INPUT(to_usd(inp)),
            p._COST_OUTPUT(to_usd(out)),
            p._COST_CACHE_READ(to_usd(read)),
            p._COST_CACHE_WRITE(to_usd(write)),
            p._COST_SAVINGS(to_usd(savings)),
        )
    )
    assert packed == one_by_one


@settings(max_examples=200, deadline=None)
@given(
    observations=st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**6)),
            st.sampled_from([b"", b"\x01" * 16]),
        ),
        max_size=20,
    ),
    exemplars=st.booleans(),
)
def test_c_histogram_observes_like_the_python_histogram(
    observations: list[tuple[float, bytes]], exemplars: bool
) -> None:
    from genai_otel.processors.metrics import Histogram

    bounds = (*sc.DURATION_BUCKETS, 100.0, 2.0**60)
    python = Histogram(bounds, exemplars)
    c = scan_module._accelerator.Histogram(bounds, exemplars)
    for value, trace_id in observations:
        python.observe(value, trace_id, 12.5)
        c.observe(value, trace_id, 12.5)
    assert repr((c.counts, c.sum, c.count, c.exemplars)) == repr(
        (python.counts, python.sum, python.count, python.exemplars)
    )


def _reversed(data: bytes, start: int, end: int, path: tuple[int, ...]) -> bytes:
    """data[start:end] re-encoded with every message's fields in reverse order, as the collector
    writes them (request > ResourceSpans > Resource/ScopeSpans > KeyValue/Span > KeyValue)."""
    from genai_otel.processors.wire import iter_fields

    nested = {
        (): {1},
        (1,): {1, 2},
        (1, 1): {1},
        (1, 2): {2},
        (1, 2, 2): {9},
        (1, 1, 1): set(),
        (1, 2, 2, 9): set(),
    }
    parts = []
    for number, wire_type, fstart, fend in iter_fields(data, start, end):
        if wire_type == 2 and number in nested.get(path, set()):
            payload = _reversed(data, fstart, fend, (*path, number))
            parts.append(framed((number << 3) | 2, payload))
        elif wire_type == 2:
            parts.append(framed((number << 3) | 2, data[fstart:fend]))
        else:
            tag = (number << 3) | wire_type
            parts.append(bytes((tag,)) if tag < 0x80 else bytes((tag & 0x7F | 0x80, tag >> 7)))
            parts[-1] += data[fstart:fend]
    return b"".join(reversed(parts))


def test_collector_field_order_is_recognised_and_processed_like_field_number_order() -> None:
    spans = [
        make_span(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
                "user.id": "u1",
            },
        ),
        make_span({"http.route": "/orders"}),
    ]
    canonical = make_request(spans, service="checkout")
    reversed_order = _reversed(canonical, 0, len(canonical), ())
    assert reversed_order != canonical and len(reversed_order) == len(canonical)
    expositions = []
    for data in (canonical, reversed_order):
        assert_same_scan(data)
        assert_same_processing(data)
        pipeline = make_pipeline()
        scanned, _ = pipeline.split(data)
        forwarded = pipeline.process(data, scanned)
        (priced,) = [s for s in spans_of(forwarded) if "gen_ai.request.model" in attributes_of(s)]
        assert attributes_of(priced)["gen_ai.usage.cost.source"] == "local"
        expositions.append(pipeline.registry.expose(openmetrics=True))
    assert expositions[0] == expositions[1]
    assert 'service="checkout"' in expositions[1]


def test_a_request_encoded_by_the_real_collector_is_priced() -> None:
    """Bytes captured from otelcol 0.159.0's OTLP exporter (fields in reverse order)."""
    data = (Path(__file__).parent / "data" / "collector-0.159.0-reversed-fields.bin").read_bytes()
    assert_same_scan(data)
    assert_same_processing(data)
    pipeline = make_pipeline()
    scanned, _ = pipeline.split(data)
    (span,) = spans_of(pipeline.process(data, scanned))
    attributes = attributes_of(span)
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.usage.cost.source"] == "local"
    assert attributes["gen_ai.usage.cost.currency"] == "USD"
    # gpt-4o: $2.50 per million input tokens, $10 per million output tokens; costs are held on
    # a 2**-32 USD grid (so sums stay exact in floating point), hence the tolerance.
    assert abs(attributes["gen_ai.usage.cost.amount"] - (100 * 2.5 + 20 * 10) / 1e6) < 2**-32
    assert 'service="dbg"' in pipeline.registry.expose(openmetrics=True)


_RATE = st.floats(0, 1e-3, allow_nan=False)
_RATES = st.tuples(_RATE, _RATE, _RATE, _RATE, st.floats(0, 0.1, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(
    tokens=st.lists(st.integers(0, 2 * 10**7), min_size=5, max_size=5),  # within max_tokens
    base=_RATES,
    tier=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), _RATES)),
    multiplier=st.floats(0.01, 2.0, allow_nan=False),
    user=st.sampled_from(["", "u1"]),
    error=st.booleans(),
)
def test_the_lane_prices_like_compute_cost(  # noqa: PLR0917
    tokens: list[int],
    base: tuple[float, float, float, float, float],
    tier: tuple[int, tuple[float, float, float, float, float]] | None,
    multiplier: float,
    user: str,
    error: bool,
) -> None:
    """The lane's arithmetic (cost_quanta) = compute_cost: the same cost attributes and metrics.

    Two spans of one kind: the Python path prices the first and teaches the lane, which prices
    the second, whatever its token counts, in C."""
    from genai_otel.processors.pricing import Rates

    inp, out, cache_read, cache_write, reasoning = tokens
    attributes = {
        **GENAI,
        sc.GEN_AI_USAGE_INPUT_TOKENS: inp + cache_read + cache_write,  # input includes cache tokens
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: out,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: cache_write,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning,
        sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.5,
        **({"user.id": user} if user else {}),
        **({sc.ERROR_TYPE: "RateLimitError"} if error else {}),
    }
    first = {**attributes, sc.GEN_AI_USAGE_INPUT_TOKENS: 7, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 3}
    for key in (
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    ):
        first[key] = 0
    data = make_request([make_span(first, error=error), make_span(attributes, error=error)])
    rates = Rates(base, (tier,) if tier else (), "table t", multiplier)
    results = []
    for accelerated in (True, False):
        pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated)
        pipeline.prices.rates = lambda *_: rates  # type: ignore[method-assign]
        pipeline.prices.window = lambda *_: (-(2**63), 2**63 - 1)  # type: ignore[method-assign]
        scanned, _ = pipeline.split(data)
        forwarded = pipeline.process(data, scanned)
        if accelerated:
            assert pipeline.lane is not None and pipeline.lane.stats["fast"] == 1
        exposition = pipeline.registry.expose(openmetrics=True).splitlines()
        results.append((forwarded, [line for line in exposition if "processor_info{" not in line]))
    assert results[0] == results[1]


def test_a_stale_build_of_the_extension_is_not_used(caplog: pytest.LogCaptureFixture) -> None:
    class Build:
        SOURCE_DIGEST = "0123456789abcdef"

    current = scan_module.source_digest()
    assert current is not None and len(current) == 16
    assert scan_module._matching_build(Build, "0123456789abcdef") is Build
    assert scan_module._matching_build(Build, None) is Build  # source not shipped: trust the build
    with caplog.at_level("WARNING", logger=scan_module.__name__):
        assert scan_module._matching_build(Build, current) is None
    assert "stale" in caplog.text and "reinstall genai-otel" in caplog.text


def test_the_installed_extension_was_built_from_the_shipped_source() -> None:
    if not scan_module.accelerated_available():
        if os.environ.get("CI") == "true":  # CI machines have a compiler: the build must work
            pytest.fail("the _wirescan extension is not built (or is stale) in CI")
        pytest.skip("the _wirescan extension is not built here")
    from genai_otel.processors import _wirescan

    assert scan_module.source_digest() == _wirescan.SOURCE_DIGEST


# -- the C lane: whole requests, spans it learned from the Python path ------------------------
_TOKENS = st.one_of(
    st.integers(0, 5_000),
    st.sampled_from([0, 100_000_000, 100_000_001, -1, 2**53]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
_TEXT = st.one_of(st.text(max_size=12), st.just("u" * 300), st.integers(0, 9), st.booleans())


@st.composite
def _lane_spans(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few span kinds (categorical attributes), each repeated with varying numbers and texts."""
    kinds = draw(
        st.lists(
            st.fixed_dictionaries(
                {"model": st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "llama-internal", "o3", ""])},
                optional={
                    "gen_ai.provider.name": st.sampled_from(["openai", "anthropic", "acme", "gcp.gemini"]),
                    "gen_ai.system": st.sampled_from(["openai", "Anthropic", "vertex_ai"]),
                    "gen_ai.operation.name": st.sampled_from(["chat", "embeddings", "execute_tool", ""]),
                    "llm.request.type": st.sampled_from(["chat", "completion"]),
                    "openai.response.service_tier": st.sampled_from(["default", "flex", "priority"]),
                    "legacy": st.booleans(),
                },
            ),
            min_size=1,
            max_size=3,
        )
    )
    spans = []
    for _ in range(draw(st.integers(2, 8))):
        kind = dict(draw(st.sampled_from(kinds)))
        model, legacy = kind.pop("model"), kind.pop("legacy", False)
        attributes: dict[str, Any] = {**kind}
        if model:
            attributes["gen_ai.request.model"] = model
        usage = {
            ("gen_ai.usage.prompt_tokens" if legacy else "gen_ai.usage.input_tokens"): draw(_TOKENS),
            ("gen_ai.usage.completion_tokens" if legacy else "gen_ai.usage.output_tokens"): draw(_TOKENS),
            "gen_ai.usage.cache_read.input_tokens": draw(_TOKENS),
            "gen_ai.usage.cache_creation.input_tokens": draw(_TOKENS),
            "gen_ai.usage.reasoning.output_tokens": draw(_TOKENS),
            "gen_ai.response.time_to_first_chunk": draw(st.one_of(st.floats(), st.integers(-1, 3))),
            "user.id": draw(_TEXT),
            "genai_otel.feature": draw(_TEXT),
        }
        keep = draw(st.lists(st.sampled_from(sorted(usage)), unique=True, min_size=1))
        attributes |= {key: usage[key] for key in keep}
        spans.append(attributes)
    return spans


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spans=_lane_spans(),
    scope=st.sampled_from(["test.scope", "openlit.otel.tracing", "com.anthropic.sdk.python"]),
    error=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_the_lane_processes_repeated_span_kinds_like_the_python_path(
    spans: list[dict[str, Any]], scope: str, error: list[bool]
) -> None:
    built = [make_span(a, error=e and i % 3 == 0) for i, (a, e) in enumerate(zip(spans, error, strict=False))]
    data = make_request(built, scope=scope)
    assert_same_scan(data)
    assert_same_processing(data, passes=3)


def test_the_lane_handles_learned_spans_itself() -> None:
    data = _bench_requests()[0]
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=True)
    assert pipeline.lane is not None
    pipeline.process(data, pipeline.split(data)[0])
    first = pipeline.lane.stats
    genai = pipeline.registry.received["genai"]
    pipeline.process(data, pipeline.split(data)[0])
    second = pipeline.lane.stats
    # once learned, every GenAI span of the request (errors included) stays in C
    assert second["fast"] - first["fast"] == genai
    assert second["slow"] == first["slow"]
    assert second["entries"] == first["entries"] > 0
    assert Pipeline(make_pipeline().registry, PriceBook(), accelerated=False).lane is None


def test_users_and_features_over_their_top_n_count_one_overflow_per_span_in_the_lane() -> None:
    # Each sighting of an over-cap value is one overflow, whether the lane or Python sees it
    # (the lane caches the limiter's verdict after the first sighting instead of asking again).
    attributes = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}  # fmt: skip
    spans = [
        make_span(attributes | {"user.id": f"user-{i % 5}", "genai_otel.feature": f"feature-{i % 4}"})
        for i in range(20)
    ]
    data = make_request(spans)
    assert_same_processing(data, passes=3, top_users=2, top_features=3)
    pipeline = make_pipeline(top_users=2, top_features=3)
    for _ in range(3):
        forwarded = run(pipeline, renewed(data))
    span_cost = attributes_of(spans_of(forwarded)[0])[sc.GEN_AI_USAGE_COST_AMOUNT]
    assert span_cost == pytest.approx(0.0035, abs=1e-9)  # gpt-4o: $2.50 in, $10 out per million
    assert pipeline.lane is not None and pipeline.lane.stats["fast"] == 59  # all but the first span in C
    exposition = pipeline.registry.expose(openmetrics=True)
    # users 2..4 are 12 of 20 spans per pass, feature 3 is 5 of 20: over three passes
    assert samples(exposition, "genai_otel_processor_label_overflow_total") == {
        '{label="user"}': "36",
        '{label="feature"}': "15",
    }
    per_user = samples(exposition, sc.PROM_LLM_USER_COST)
    assert set(per_user) == {'{service="checkout",user="user-0"}', '{service="checkout",user="user-1"}',
                             '{service="checkout",user="other"}'}  # fmt: skip
    assert float(per_user['{service="checkout",user="other"}']) == 36 * span_cost  # 36 of the 60 spans


def test_the_lane_relearns_when_a_span_falls_outside_its_price_window() -> None:
    from .helpers import T_2025_01_01, T_2025_07_01, T_2026_11_01

    attributes = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                  "openai.response.service_tier": "flex",
                  "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 80}  # fmt: skip
    starts = [T_2026_11_01, T_2026_11_01 + 10**9, T_2025_01_01, T_2025_07_01, T_2026_11_01, T_2025_01_01]
    data = make_request([make_span(attributes, start_ns=start) for start in starts])
    assert_same_processing(data, passes=2)
    pipeline = Pipeline(make_pipeline().registry, PriceBook(), accelerated=True)
    pipeline.process(data, pipeline.split(data)[0])
    # the second span shares the first one's day; every change of day is a miss that relearns
    assert pipeline.lane.stats == {"fast": 1, "slow": 5, "entries": 1}


def test_a_failed_call_without_usage_keeps_its_cache_token_count_in_the_lane() -> None:
    # found by hypothesis: the lane wrote the restated cache-write count as 0
    first = make_span(
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.cache_creation.input_tokens": 1}, error=True
    )
    again = make_span(
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.cache_creation.input_tokens": 7}, error=True
    )
    forwarded = assert_same_processing(make_request([first, again]), passes=2)
    restated = [attributes_of(span)["gen_ai.usage.cache_write.input_tokens"] for span in spans_of(forwarded)]
    assert restated == [1, 7]


# Found by the fuzz target (tests/fuzz): malformed spans (span_facts raises WireError) whose
# scanned keys hold no marker key: genai_otel.error.category + gen_ai.usage.input_tokens, and
# error.type alone. Python and the C path without the lane count them GenAI +
# invalid{malformed_span}; the lane counts them `other`. Issue 9 finding 6 in a wider form than
# user.id alone: its fix must cover these too.
_MALFORMED_WITHOUT_MARKER = [
    bytes.fromhex(
        "0a8c021289021286020a100102030405060708090a0b0c0d0e0f10120801020304050607082a0b63686174206770"
        "742d346f3003390080d9c5d31e4e184100af411fd41e4e184a230a1467656e5f61692eff70726f76696465722e6e"
        "616d65120b0a09616e7468726f7069634a2b0a001467656e5f61692e726571756573742e6d6f64656c12130a1163"
        "6c617564652d736f6e6e65742d342d354a260a1967656e61695f6f74656c2e6572726f722e63617465676f727912"
        "090a0774696d656f75744a05120318b0094a200a1967656e5f61692e75736167652e696e7075745f746f6b656e73"
        "120318b0094a200a1a67656c6c6d2e726571756573742e74797065745f746f6b656e73120218507a02"
    ),
    bytes.fromhex(
        "0acc0112c90112c6010a1001020304050000000000000000000000000000000000000000000000000000000000000000"
        "00060708080a0b0c0d0e0f102a0b63686174206770742d346f00000000000000071e4e184100af411fd41e4e184a2a"
        "0a1467656e5f61692e70726f76696465722e6e616d650a08646565707365656b12080a066f70656e61694a2012080a"
        "066770742d346f0a1467656e5f616934726571756573742e6d6f64656c4a1e0a0a6572726f722e7479706512100a0e"
        "526174654c696d69744572726f727a021802"
    ),
]


@pytest.mark.parametrize("data", _MALFORMED_WITHOUT_MARKER, ids=["error-category-and-tokens", "error-type"])
def test_a_malformed_span_without_a_marker_key_is_counted_alike_by_the_lane(data: bytes) -> None:
    assert_same_scan(data)
    assert_same_processing(data)


def test_a_string_running_past_its_any_value_is_malformed_on_both_paths() -> None:
    """Found by fuzzing: a model string whose length runs past its AnyValue frame was read into
    the bytes that follow (the next span's) by both decoders, while the lane's signature saw the
    frame: two spans with different models shared one learned entry on the C path. Such a string
    is not a string on any path now."""
    model_key = framed(0x0A, sc.GEN_AI_REQUEST_MODEL.encode())
    usage = {sc.GEN_AI_USAGE_INPUT_TOKENS: 100, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10}
    bad = make_span({sc.GEN_AI_PROVIDER_NAME: "openai", **usage}).SerializeToString() + framed(
        0x4A,
        model_key + framed(0x12, b"\x0a\x67gen_ai."),  # a 103-byte string in 8 bytes
    )
    good = make_span({sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gen_ai.", **usage})
    data = framed(0x0A, framed(0x12, framed(0x12, bad) + framed(0x12, good.SerializeToString())))
    assert_same_scan(data)
    assert_same_processing(data)
    _, slow = _scanners()
    ((_, _, _, _, ((_, _, _, _, spans),)),), _ = slow.split(data)
    assert [span[3][sc.GEN_AI_REQUEST_MODEL] for span in spans] == [UNSUPPORTED, "gen_ai."]


def test_the_migrations_cache_write_rename_is_priced_the_same_under_either_spelling() -> None:
    # semantic-conventions-genai's migration guide renames gen_ai.usage.cache_creation.input_tokens
    # (v1.41.0) to gen_ai.usage.cache_write.input_tokens: a span in either spelling is the same
    # call, on the C path and the Python one, and is forwarded in the current spelling.
    usage = {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.output_tokens": 150,
             "gen_ai.usage.cache_read.input_tokens": 500}  # fmt: skip
    outcomes = []
    for spelling in (
        sc.LEGACY_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    ):
        data = make_request([make_span({**usage, spelling: 1000}) for _ in range(3)])
        forwarded = assert_same_processing(data, passes=2)  # C (lane included) == Python
        pipeline = make_pipeline()
        run(pipeline, data)
        (span, *_) = spans_of(forwarded)
        attributes = attributes_of(span)
        outcomes.append(
            (
                attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS],
                attributes[sc.GEN_AI_USAGE_COST_AMOUNT],
                attributes[sc.GENAI_OTEL_COST_CACHE_WRITE],
                samples(pipeline.registry.expose(openmetrics=True), sc.PROM_LLM_TOKENS),
            )
        )
    assert outcomes[0] == outcomes[1]
    written, cost, cache_write_cost, tokens = outcomes[0]
    assert written == 1000 and cache_write_cost > 0 and cost > cache_write_cost
    assert [value for key, value in tokens.items() if 'token_type="cache_write"' in key] == ["3000"]
