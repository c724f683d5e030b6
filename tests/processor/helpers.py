"""Building OTLP requests, a controllable OTLP sink, and reading enriched spans back."""

from __future__ import annotations

import asyncio
import itertools
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import grpc
import pytest
from genai_otel.processors.call_log import CallLog
from genai_otel.processors.config import load_config
from genai_otel.processors.metrics import ALL_LABELS, Registry
from genai_otel.processors.normalise import SCANNED_KEYS
from genai_otel.processors.pipeline import EVALUATION_EVENT, Pipeline
from genai_otel.processors.pricing import PRICE_TABLE_VERSION, PriceBook, PriceOverrides
from genai_otel.processors.scan import RequestScanner
from genai_otel.processors.wire import encode_varint, span_facts
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genai_otel import semconv as sc

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# one priced gpt-4o chat call: 0.0035 USD
GENAI = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
}

# 2025-07-01T12:00:00Z, after o3's 2025-06-10 price cut
T_2025_07_01 = 1_751_371_200 * 10**9
T_2025_01_01 = 1_735_732_800 * 10**9  # 2025-01-01T12:00:00Z
# 2026-11-01T12:00:00Z: the table's service-tier prices start on 2026-10-12
T_2026_11_01 = 1_793_534_400 * 10**9


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=value)


# every span its own id, as an instrumentation gives it: the processor counts a copy of a span it
# has seen (the same trace and span id: a sender's retry) nothing again
_SPAN_IDS = itertools.count(1)


def make_span(
    attributes: dict[str, Any],
    *,
    name: str = "chat gpt-4o",
    start_ns: int = T_2025_07_01,
    duration_s: float = 1.5,
    error: bool = False,
    trace_id: bytes = bytes(range(1, 17)),
    span_id: bytes | None = None,
    events: Iterable[tuple[str, dict[str, Any]]] = (),
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id if span_id is not None else next(_SPAN_IDS).to_bytes(8, "big"),
        name=name,
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + int(duration_s * 1e9),
    )
    span.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    for event_name, event_attributes in events:
        event = span.events.add(name=event_name, time_unix_nano=start_ns)
        event.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in event_attributes.items())
    span.status.code = Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET
    return span


def make_request(spans: Iterable[Span], service: str = "checkout", scope: str = "test.scope") -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request.SerializeToString()


def attributes_of(span: Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def spans_of(payload: bytes) -> list[Span]:
    request = ExportTraceServiceRequest.FromString(payload)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


class StepClock:
    """A wall clock for `_created` samples that starts at `start` and moves `step` per reading."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.25) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make_pipeline(
    overrides: PriceOverrides | None = None,
    *,
    accelerated: bool | None = None,
    call_log: CallLog | None = None,
    **label_options: Any,
) -> Pipeline:
    """A pipeline on a fresh registry whose clock is a StepClock (label_options["clock"])."""
    config = load_config(environ={})
    registry = Registry(
        label_limits=label_options.get("label_limits", config.labels.max_values),
        allowed_labels=label_options.get("allowed", ALL_LABELS),
        top_users=label_options.get("top_users", config.labels.top_users),
        top_features=label_options.get("top_features", config.labels.top_features),
        exemplars=label_options.get("exemplars", True),
        price_table=PRICE_TABLE_VERSION,
        clock=label_options.get("clock") or StepClock(),
    )
    return Pipeline(registry, PriceBook(overrides), accelerated=accelerated, call_log=call_log)


BROKEN_SERVICE = "broken"


def break_service(pipeline: Pipeline) -> None:
    """A defect to reach from a request: reading the name of service BROKEN_SERVICE raises."""
    real = pipeline._service_of

    def service_of(data: bytes, start: int, stop: int) -> str:
        name = real(data, start, stop)
        if name == BROKEN_SERVICE:
            raise RuntimeError("simulated defect")
        return name

    pipeline._service_of = service_of  # type: ignore[method-assign]


def renewed(payload: bytes) -> bytes:
    """The same request with every span under a new span id (its children's parent ids follow):
    the next export of the same calls, where sending `payload` again would be a retry, which the
    processor recognises and counts nothing for. Kept byte for byte the same length."""
    try:
        request = ExportTraceServiceRequest.FromString(payload)
    except DecodeError as exc:
        raise ValueError("renewed: the request does not parse") from exc
    if request.SerializeToString() != payload:
        raise ValueError("renewed: the request is not in canonical encoding")
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    new_ids = {s.span_id: next(_SPAN_IDS).to_bytes(8, "big") for s in spans if len(s.span_id) == 8}
    for span in spans:
        span.span_id = new_ids.get(span.span_id, span.span_id)
        span.parent_span_id = new_ids.get(span.parent_span_id, span.parent_span_id)
    out = request.SerializeToString()
    assert len(out) == len(payload)
    return out


def run(pipeline: Pipeline, payload: bytes) -> bytes:
    blocks, _ = pipeline.split(payload)
    return pipeline.process(payload, blocks)


def enrich_one(
    attributes: dict[str, Any], pipeline: Pipeline | None = None, **span_options: Any
) -> dict[str, Any]:
    """Run one span through a pipeline; return the forwarded span's attributes."""
    pipeline = pipeline or make_pipeline()
    scope = span_options.pop("scope", "test.scope")
    (span,) = spans_of(run(pipeline, make_request([make_span(attributes, **span_options)], scope=scope)))
    return attributes_of(span)


# The cost breakdown attributes, in the order the pricing tests give their figures.
COST_BREAKDOWN = (
    sc.GENAI_OTEL_COST_INPUT,
    sc.GENAI_OTEL_COST_OUTPUT,
    sc.GENAI_OTEL_COST_CACHE_READ,
    sc.GENAI_OTEL_COST_CACHE_WRITE,
    sc.GENAI_OTEL_COST_CACHE_SAVINGS,
)


def assert_priced_exactly(enriched: dict[str, Any], breakdown: tuple[float, ...], total: float) -> None:
    """Priced locally at `total`, broken down as `breakdown` (input, output, cache read, cache
    write, savings), the first four summing to the total."""
    assert enriched[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(total, abs=1e-9)
    got = tuple(enriched[key] for key in COST_BREAKDOWN)
    assert got == pytest.approx(breakdown, abs=1e-9)
    assert sum(got[:4]) == enriched[sc.GEN_AI_USAGE_COST_AMOUNT]
    assert enriched[sc.GEN_AI_USAGE_COST_SOURCE] == "local"
    assert sc.GENAI_OTEL_COST_UNPRICED_REASON not in enriched


@contextmanager
def instrumented(instrumentor: Any) -> Iterator[InMemorySpanExporter]:
    """genai-otel's `instrumentor` on, its spans kept in memory; off again afterwards."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor().instrument(tracer_provider=tracer_provider)
    try:
        yield spans
    finally:
        instrumentor().uninstrument()


def enrich_exported(exporter: InMemorySpanExporter) -> dict[str, Any]:
    """The one span the instrumentation exported, run through a pipeline: its attributes."""
    (span,) = exporter.get_finished_spans()
    attributes = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
    }
    return enrich_one(attributes, name=span.name)


# --------------------------------------------------------------------------------------
# A tiny OTLP sink we control (the "next hop")
# --------------------------------------------------------------------------------------
@dataclass
class Sink:
    """OTLP trace receiver on 127.0.0.1: records requests; can be slow or fail on purpose."""

    delay_seconds: float = 0.0
    fail_with: grpc.StatusCode | None = None
    fail_times: int = 0  # fail this many calls, then succeed
    received: list[bytes] = field(default_factory=list)
    calls: int = 0
    port: int = 0
    _server: grpc.aio.Server | None = None

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls += 1
        if self.fail_with is not None and self.fail_times > 0:
            self.fail_times -= 1
            await context.abort(self.fail_with, "sink told to fail")
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        self.received.append(request)
        return ExportTraceServiceResponse().SerializeToString()

    def server_options(self) -> list[tuple[str, int]]:
        """grpc server options (a stricter sink sets a receive limit)."""
        return []

    async def start(self, port: int = 0) -> Self:
        server = grpc.aio.server(options=self.server_options())
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(self._export)},
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)

    def spans(self) -> list[Span]:
        return [span for payload in self.received for span in spans_of(payload)]


def scrape(port: int, openmetrics: bool = False) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if openmetrics:
        request.add_header("Accept", "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def samples(exposition: str, name: str) -> dict[str, str]:
    """Sample lines of one metric name: label text -> value (exemplars stripped)."""
    out = {}
    for line in exposition.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, _ = line.partition(" # ")
            labels, _, value = head.rpartition(" ")
            out[labels[len(name) :]] = value
    return out


# --------------------------------------------------------------------------------------
# Raw wire bytes, for requests the generated classes cannot or would not write
# --------------------------------------------------------------------------------------
def framed(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte, the payload's length, the payload."""
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def request_of_span_bytes(span: bytes) -> bytes:
    """An ExportTraceServiceRequest holding one span's bytes, with no Resource and no scope name."""
    return framed(0x0A, framed(0x12, framed(0x12, span)))


def resolved_scan(scanned: tuple[list[Any], int], data: bytes) -> tuple[list[Any], int]:
    """A request walk (either path's `RequestScanner.split`) with every part it left to the caller
    computed the Python way, so that the two walks compare equal."""
    scanner = RequestScanner(SCANNED_KEYS, EVALUATION_EVENT, accelerated=False).span_scanner
    resources, count = scanned
    out = []
    for rs_start, rs_payload, rs_end, resource, scopes in resources:
        out_scopes = []
        for field_start, payload_start, payload_end, name, spans in scopes:
            out_spans = []
            for span_start, start, end, found, given_facts, mentions_evaluation in spans:
                attrs, has_evaluation = found, mentions_evaluation
                if attrs is None:
                    attrs = scanner.scan(data, start, end)
                    has_evaluation = data.find(EVALUATION_EVENT, start, end) >= 0
                    if not attrs and not has_evaluation:
                        continue
                facts: object = given_facts
                if facts is None:
                    try:
                        facts = span_facts(data, start, end)
                    except Exception as exc:  # the same failure either way
                        facts = type(exc).__name__
                out_spans.append((span_start, start, end, attrs, facts, has_evaluation))
            if out_spans:
                out_scopes.append((field_start, payload_start, payload_end, name, out_spans))
        if out_scopes:
            out.append((rs_start, rs_payload, rs_end, resource, out_scopes))
    return out, count
