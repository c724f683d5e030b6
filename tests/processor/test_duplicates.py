"""One provider response, one bill: the second span of one call is marked, not counted (issue 14).

Each case runs on both paths (the C lane and the pure-Python walk). The rule is in
processors/duplicates.py; `Recent` (C) and `RecentCalls` (Python) are held to the same answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.duplicates import RecentCalls, call_ident
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from genai_otel import semconv as sc

from .helpers import (
    BROKEN_SERVICE,
    T_2025_07_01,
    attributes_of,
    break_service,
    framed,
    make_pipeline,
    make_span,
    run,
    spans_of,
)

ACCELERATED = scan_module.accelerated_available()
PATHS = [
    pytest.param(True, id="c", marks=pytest.mark.skipif(not ACCELERATED, reason="no _wirescan")),
    pytest.param(False, id="python"),
]
TRACE = bytes(range(1, 17))
OTHER_TRACE = bytes(range(17, 33))
ANTHROPIC = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "anthropic",
    sc.GEN_AI_REQUEST_MODEL: "claude-haiku-4-5",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 100,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
}
PEER_SCOPE = "opentelemetry.instrumentation.anthropic"


def span(
    attributes: dict[str, Any],
    span_id: int,
    *,
    parent: int = 0,
    trace: bytes = TRACE,
    start_ms: int = 0,
    duration_ms: int = 1000,
    error: bool = False,
) -> Span:
    made = make_span(
        attributes,
        trace_id=trace,
        start_ns=T_2025_07_01 + start_ms * 10**6,
        duration_s=duration_ms / 1000,
        error=error,
    )
    made.span_id = span_id.to_bytes(8, "big")
    if parent:
        made.parent_span_id = parent.to_bytes(8, "big")
    return made


def request(*scoped: tuple[str, list[Span]], service: str = "checkout") -> bytes:
    """One resource, one ScopeSpans per (scope name, spans), in this order."""
    out = ExportTraceServiceRequest()
    resource_spans = out.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    for scope, spans in scoped:
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = scope
        scope_spans.spans.extend(spans)
    return out.SerializeToString()


def pipeline_for(accelerated: bool, **options: Any) -> Pipeline:
    return Pipeline(make_pipeline().registry, PriceBook(), accelerated=accelerated, **options)


def requests_total(pipeline: Pipeline) -> int:
    registry = pipeline.registry
    registry.settle()
    return sum(n for stats in registry.series.values() for n in stats.requests.values())


def duplicate_of(payload: bytes) -> list[str | None]:
    return [attributes_of(s).get(sc.GENAI_OTEL_COST_DUPLICATE_OF) for s in spans_of(payload)]


def cost_amounts(payload: bytes) -> list[float | None]:
    return [attributes_of(s).get(sc.GEN_AI_USAGE_COST_AMOUNT) for s in spans_of(payload)]


def warmed(accelerated: bool) -> Pipeline:
    """A pipeline whose lane has seen both scopes' span kinds (unrelated calls, other traces)."""
    pipeline = pipeline_for(accelerated)
    for n, trace in enumerate((bytes([9] * 16), bytes([8] * 16))):
        run(
            pipeline,
            request(
                (PEER_SCOPE, [span(ANTHROPIC, 90 + n, trace=trace, start_ms=-10_000 * (n + 1))]),
                (sc.ANTHROPIC_SDK_SCOPE, [span(ANTHROPIC, 80 + n, trace=trace, start_ms=-5_000 * (n + 1))]),
            ),
        )
    return pipeline


def fast(pipeline: Pipeline) -> int:
    return pipeline.lane.stats["fast"] if pipeline.lane is not None else 0


@pytest.mark.parametrize("accelerated", PATHS)
@pytest.mark.parametrize("child_first", [True, False], ids=["child-first", "parent-first"])
def test_a_child_span_of_another_instrumentation_is_the_same_call(
    accelerated: bool, child_first: bool
) -> None:
    """The official instrumentation and OpenLIT: the SDK's span is a child of theirs. Whichever
    comes first is counted; the other is marked with its id and priced nowhere."""
    pipeline = warmed(accelerated)
    before, fast_before = requests_total(pipeline), fast(pipeline)
    parent = span(ANTHROPIC, 1, start_ms=0, duration_ms=1000)
    child = span(ANTHROPIC, 2, parent=1, start_ms=10, duration_ms=900)
    scoped = [(sc.ANTHROPIC_SDK_SCOPE, [child]), (PEER_SCOPE, [parent])]
    if not child_first:
        scoped.reverse()
    out = run(pipeline, request(*scoped))
    counted, marked = scoped[0][0], scoped[1][0]
    assert duplicate_of(out) == [None, "0000000000000002" if child_first else "0000000000000001"]
    amounts = cost_amounts(out)
    assert amounts[0] is not None and amounts[0] > 0 and amounts[1] is None  # one bill on the trace
    assert requests_total(pipeline) == before + 1
    assert pipeline.registry.duplicates == {(counted, marked): 1}
    assert pipeline.registry.received == {"genai": 6, "other": 0}
    if pipeline.lane is not None:
        assert fast(pipeline) == fast_before + 2  # both spans were decided in C


@pytest.mark.parametrize("accelerated", PATHS)
def test_one_response_id_in_unrelated_traces_is_one_call(accelerated: bool) -> None:
    """OpenLLMetry: its span and the SDK's are in unrelated traces, with the same response id."""
    pipeline = warmed(accelerated)
    before = requests_total(pipeline)
    rid = {**ANTHROPIC, sc.GEN_AI_RESPONSE_ID: "msg_123"}
    out = run(
        pipeline,
        request(
            (sc.ANTHROPIC_SDK_SCOPE, [span(rid, 1, trace=TRACE, start_ms=5, duration_ms=990)]),
            (PEER_SCOPE, [span(rid, 2, trace=OTHER_TRACE, start_ms=0, duration_ms=1000)]),
        ),
    )
    assert duplicate_of(out) == [None, "0000000000000001"]
    assert requests_total(pipeline) == before + 1


@pytest.mark.parametrize("accelerated", PATHS)
def test_a_failed_call_under_a_peer_in_another_trace_is_one_call(accelerated: bool) -> None:
    """OpenLLMetry's failed call: unrelated traces and no response id; the SDK's span lies within
    the peer's, in the same service: one call. The same spans one after the other are two."""
    pipeline = warmed(accelerated)
    before = requests_total(pipeline)
    failed = {**ANTHROPIC, sc.ERROR_TYPE: "overloaded_error"}
    del failed[sc.GEN_AI_USAGE_INPUT_TOKENS], failed[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    out = run(
        pipeline,
        request(
            (sc.ANTHROPIC_SDK_SCOPE, [span(failed, 1, start_ms=5, duration_ms=990, error=True)]),
            (PEER_SCOPE, [span(failed, 2, trace=OTHER_TRACE, start_ms=0, duration_ms=1000, error=True)]),
            (sc.ANTHROPIC_SDK_SCOPE, [span(failed, 3, start_ms=2000, duration_ms=990, error=True)]),
            (PEER_SCOPE, [span(failed, 4, trace=OTHER_TRACE, start_ms=3000, duration_ms=1000, error=True)]),
        ),
    )
    assert duplicate_of(out) == [None, "0000000000000001", None, None]
    assert requests_total(pipeline) == before + 3


@pytest.mark.parametrize("accelerated", PATHS)
def test_calls_that_only_look_alike_are_all_counted(accelerated: bool) -> None:
    """Never merged: one instrumentation's concurrent calls with the same response id (a server
    that answers every call alike), another model, times that do not overlap, another trace's
    span with the same span id."""
    pipeline = warmed(accelerated)
    before = requests_total(pipeline)
    rid = {**ANTHROPIC, sc.GEN_AI_RESPONSE_ID: "same-for-all"}
    other_model = {**rid, sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5"}
    out = run(
        pipeline,
        request(
            (
                PEER_SCOPE,
                [span(rid, 1, start_ms=0), span(rid, 2, start_ms=10), span(ANTHROPIC, 3, start_ms=0)],
            ),
            (
                "another.instrumentation",
                [
                    span(other_model, 4, trace=OTHER_TRACE, start_ms=20, duration_ms=500),
                    span(rid, 5, trace=OTHER_TRACE, start_ms=5000),
                    span(ANTHROPIC, 6, parent=3, trace=OTHER_TRACE, start_ms=100, duration_ms=10),
                ],
            ),
        ),
    )
    assert duplicate_of(out) == [None] * 6
    assert requests_total(pipeline) == before + 6
    assert pipeline.registry.duplicates == {}


@pytest.mark.parametrize("accelerated", PATHS)
def test_a_refused_request_leaves_nothing_to_pair_with(accelerated: bool) -> None:
    """All or nothing: the spans of a request that failed were never counted, so a later span of
    the same call is counted, not marked."""
    pipeline = warmed(accelerated)
    rid = {**ANTHROPIC, sc.GEN_AI_RESPONSE_ID: "msg_1"}
    break_service(pipeline)
    failing = request((PEER_SCOPE, [span(rid, 1)])) + request(
        (PEER_SCOPE, [span(ANTHROPIC, 2)]), service=BROKEN_SERVICE
    )
    with pytest.raises(RuntimeError):
        run(pipeline, failing)
    out = run(pipeline, request((sc.ANTHROPIC_SDK_SCOPE, [span(rid, 3, trace=OTHER_TRACE, start_ms=5)])))
    assert duplicate_of(out) == [None]
    assert pipeline.registry.duplicates == {}


def test_off_when_the_memory_is_sized_zero() -> None:
    pipeline = pipeline_for(False, duplicates_capacity=0)
    parent, child = span(ANTHROPIC, 1), span(ANTHROPIC, 2, parent=1, start_ms=10, duration_ms=900)
    out = run(pipeline, request((sc.ANTHROPIC_SDK_SCOPE, [child]), (PEER_SCOPE, [parent])))
    assert duplicate_of(out) == [None, None]
    assert requests_total(pipeline) == 2


def _memories(capacity: int, window: float) -> list[Any]:
    memories: list[Any] = [RecentCalls(capacity, window)]
    if ACCELERATED:
        memories.append(scan_module._accelerator.Recent(capacity, window))
    return memories


def test_a_span_is_trusted_for_the_window_and_forgotten_beyond_capacity() -> None:
    ident = call_ident("anthropic", "m")

    def see(memory: Any, now: float, scope: str, span_id: int, response_id: str) -> Any:
        memory.begin(now)
        found = memory.see(scope, 0, "s", ident, TRACE, span_id.to_bytes(8, "big"), b"", 0, 10, response_id)
        memory.settle(True)
        return found

    for memory in _memories(capacity=2, window=60.0):
        assert see(memory, 0.0, "a", 1, "r1") is None
        assert see(memory, 61.0, "b", 2, "r1") is None  # past the window: another call
        assert see(memory, 62.0, "c", 3, "r1") == ((2).to_bytes(8, "big"), "b")  # within it
    for memory in _memories(capacity=2, window=60.0):
        assert see(memory, 0.0, "a", 1, "r1") is None
        assert see(memory, 1.0, "a", 2, "r2") is None
        assert see(memory, 2.0, "a", 3, "r3") is None  # the ring holds two spans: the first goes
        assert see(memory, 3.0, "b", 4, "r1") is None
        assert see(memory, 4.0, "b", 5, "r3") == ((3).to_bytes(8, "big"), "a")


_IDS = st.sampled_from([bytes([i]) * 8 for i in range(1, 5)] + [b""])
_SEE = st.tuples(
    st.sampled_from(["a", "b", "com.anthropic.sdk.python"]),
    st.sampled_from([0, 1, 2]),
    st.sampled_from(["s1", "s2"]),
    st.sampled_from([1, 2]),
    st.sampled_from([TRACE, OTHER_TRACE, b""]),
    _IDS,
    _IDS,
    st.integers(0, 20),
    st.integers(0, 20),
    st.one_of(st.none(), st.sampled_from(["r1", "r2", ""])),
)
# a model call's span, or another span that records something (again(trace_id, span_id))
_STEP = st.one_of(_SEE, st.tuples(st.just("again"), st.sampled_from([TRACE, OTHER_TRACE, b""]), _IDS))


@pytest.mark.skipif(not ACCELERATED, reason="no _wirescan")
@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 12),
    requests=st.lists(st.tuples(st.lists(_STEP, max_size=6), st.booleans(), st.floats(0, 5)), max_size=8),
)
def test_the_c_memory_and_the_python_one_give_the_same_answers(
    capacity: int, requests: list[tuple[list[tuple[Any, ...]], bool, float]]
) -> None:
    c, python = scan_module._accelerator.Recent(capacity, 3.0), RecentCalls(capacity, 3.0)
    now = 0.0
    for sees, ok, step in requests:
        now += step
        for memory in (c, python):
            memory.begin(now)
        for see in sees:
            if see[0] == "again":
                assert c.again(*see[1:]) == python.again(*see[1:])
                continue
            start, end = sorted(see[7:9])
            args = (*see[:7], start, end, see[9])
            assert c.see(*args) == python.see(*args)
        c.settle(ok)
        python.settle(ok)
        assert c.duplicates == python.duplicates


@pytest.mark.skipif(not ACCELERATED, reason="no _wirescan")
def test_both_paths_read_a_span_id_where_the_header_has_it() -> None:
    """A second span_id field between the attributes and the status (found by fuzzing): the C walk
    reads the ids from the header, where the canonical order puts them, and so must the Python
    path, or a child naming the late id pairs on one path and not on the other."""
    head = span(ANTHROPIC, 5).SerializeToString()  # no status: the status goes last, by hand
    parent = head + framed(0x12, (7).to_bytes(8, "big")) + b"\x7a\x00"
    child = span(ANTHROPIC, 2, parent=7, start_ms=10, duration_ms=900).SerializeToString()

    def scope(name: str, span_bytes: bytes) -> bytes:
        return framed(0x12, framed(0x0A, framed(0x0A, name.encode())) + framed(0x12, span_bytes))

    resource = framed(0x0A, framed(0x0A, b"service.name") + framed(0x12, framed(0x0A, b"checkout")))
    scopes = scope(PEER_SCOPE, parent) + scope("another.instrumentation", child)
    data = framed(0x0A, framed(0x0A, resource) + scopes)
    outputs = [duplicate_of(run(warmed(accelerated), data)) for accelerated in (True, False)]
    assert outputs[0] == outputs[1] == [None, None]  # the header says span 5: not the child's parent


@pytest.mark.skipif(not ACCELERATED, reason="no _wirescan")
def test_times_beyond_int64_are_handled_alike_on_both_paths() -> None:
    """Found by fuzzing: a span's fixed64 times past 2**63 made the C memory raise where the
    Python one did not (the span then counted as malformed on one path only)."""
    late = make_span(ANTHROPIC, start_ns=2**64 - 2 * 10**9, duration_s=1.0)
    data = request((PEER_SCOPE, [late]))
    outputs = []
    for accelerated in (True, False):
        pipeline = pipeline_for(accelerated)
        run(pipeline, data)
        pipeline.registry.settle()
        outputs.append((dict(pipeline.registry.invalid), requests_total(pipeline)))
    assert outputs[0] == outputs[1] == ({}, 1)
