"""The scale-out topology with the real binaries: a gateway collector, 2 processors, 2 sampling
collectors, Jaeger and Prometheus (`genai-otel stack up --processors 2 --samplers 2`).

Every sampler keeps every trace here (TAIL_SAMPLING_PERCENT_*=100), so Jaeger must end up with
every span the application had acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from genai_otel.stack.query import jaeger_trace, prometheus_scalar, span_tags, wait_for
from genai_otel.stack.runner import PROCESSOR_ENDPOINTS_FILE, LocalStack, free_ports
from tests.e2e.apps import KEEP_EVERYTHING
from tests.e2e.crashload import EXPORT, Load, sample_value, scrape

RECEIVED_GENAI = ("genai_otel_processor_spans_received_total", 'kind="genai"')
# a batch the gateway retries whole (one processor refused its part, e.g. while the gateway's
# connection to it was still coming up) reaches the other processor again: copies it counts nothing for
REDELIVERED_GENAI = ("genai_otel_processor_spans_redelivered_total", 'kind="genai"')


@pytest.fixture
def scaled_stack(
    tmp_path: Path, require_binaries: Callable[..., None], require_processor: None
) -> Iterator[LocalStack]:
    require_binaries("collector", "jaeger", "prometheus")
    # ports picked below the ephemeral range (free_ports): no other process's connection can
    # take one between picking and binding
    stack = LocalStack(
        tmp_path / "run",
        ports=free_ports(),
        scrape_interval="1s",
        build_missing=False,
        services=("jaeger", "collector", "processor", "prometheus"),
        collector_env=KEEP_EVERYTHING,
        processors=2,
        samplers=2,
    )
    stack.start(timeout=60)  # stops what it started if it fails
    try:
        yield stack
    finally:
        stack.stop()


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _traces_request(first_trace: int, traces: int) -> ExportTraceServiceRequest:
    """Traces of 4 spans: an HTTP root, two chat calls under it, a database span."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", "scale-app"))
    scope = resource.scope_spans.add()
    now = time.time_ns()
    for number in range(first_trace, first_trace + traces):
        trace_id = struct.pack(">QQ", 0x5CA1E, number)
        root = struct.pack(">Q", number * 10 + 1)
        for child in range(4):
            span = scope.spans.add(
                trace_id=trace_id,
                span_id=struct.pack(">Q", number * 10 + 1 + child),
                parent_span_id=b"" if child == 0 else root,
                start_time_unix_nano=now - 2_000_000_000,
                end_time_unix_nano=now - (0 if child == 0 else 500_000_000),
            )
            if child in (1, 2):
                model = ("gpt-4o-mini", "gpt-4o")[child - 1]
                span.name = f"chat {model}"
                span.kind = Span.SPAN_KIND_CLIENT
                span.attributes.extend(
                    _kv(k, v)
                    for k, v in (
                        ("gen_ai.operation.name", "chat"),
                        ("gen_ai.provider.name", "openai"),
                        ("gen_ai.request.model", model),
                        ("gen_ai.usage.input_tokens", 1000 + number),
                        ("gen_ai.usage.output_tokens", 200 + child),
                    )
                )
            else:
                span.name = "GET /orders" if child == 0 else "SELECT orders"
                span.attributes.append(_kv("http.request.method" if child == 0 else "db.system", "x"))
    return request


def _send(stack: LocalStack, request: ExportTraceServiceRequest) -> None:
    with grpc.insecure_channel(stack.endpoints()["otlp_grpc_endpoint"].removeprefix("http://")) as channel:
        channel.unary_unary(EXPORT)(request.SerializeToString(), timeout=10)


def _complete(stack: LocalStack, trace_id: bytes, spans: int) -> dict[str, dict[str, object]] | None:
    """The trace's spans (span id -> tags) once Jaeger has all `spans` of them."""
    found = jaeger_trace(stack.endpoints()["jaeger_url"], trace_id.hex())
    if not found:
        return None
    by_id = {span["spanID"]: span_tags(span) for span in found["spans"]}
    return by_id if len(by_id) == spans else None


def test_costs_add_up_across_processors_and_every_kept_trace_is_complete(scaled_stack: LocalStack) -> None:
    traces = 40
    _send(scaled_stack, _traces_request(1, traces))
    span_costs = 0.0
    for number in range(1, traces + 1):
        trace_id = struct.pack(">QQ", 0x5CA1E, number)
        spans = wait_for(
            lambda t=trace_id: _complete(scaled_stack, t, 4), 60, what=f"trace {number} complete"
        )
        costs = [
            float(tags["gen_ai.usage.cost.amount"])
            for tags in spans.values()
            if "gen_ai.usage.cost.amount" in tags
        ]
        assert len(costs) == 2, spans  # both chat spans priced, whichever processor priced them
        span_costs += sum(costs)

    urls = scaled_stack.instance_urls()["processor_metrics_urls"]
    expositions = [scrape(url) for url in urls]
    per_processor = [
        sample_value(text, *RECEIVED_GENAI) - sample_value(text, *REDELIVERED_GENAI) for text in expositions
    ]
    assert sum(per_processor) == 2 * traces and all(n > 0 for n in per_processor), per_processor
    prometheus = scaled_stack.endpoints()["prometheus_url"]
    scraped = wait_for(
        lambda: prometheus_scalar(prometheus, "sum(llm_requests_total)") == 2 * traces or None,
        30,
        what="Prometheus scraped both processors",
    )
    assert scraped
    total = prometheus_scalar(prometheus, "sum(llm_cost_usd_total)")
    assert total == pytest.approx(span_costs, rel=1e-9)
    for job, instances in (("genai-otel-processor", 2), ("otel-collector", 3)):  # gateway, 2 samplers
        query = f'count(up{{job="{job}"}} == 1)'
        wait_for(  # each target's first scrape comes within one scrape interval of its start
            lambda q=query, n=instances: prometheus_scalar(prometheus, q) == n or None,
            30,
            what=f"Prometheus scraping {instances} {job} instances",
        )


def test_kill_9_of_one_processor_under_load_loses_no_span_and_the_other_takes_over(
    scaled_stack: LocalStack,
) -> None:
    """400 spans/s (half GenAI) for 20 s; processor-2 is SIGKILLed at 6 s and stays down."""
    endpoint = scaled_stack.endpoints()["otlp_grpc_endpoint"].removeprefix("http://")
    survivor, victim = scaled_stack.instance_urls()["processor_metrics_urls"]
    started = time.monotonic()
    load = Load(endpoint, rate=400).start()
    try:
        time.sleep(6)
        os.kill(scaled_stack.running_pids()["processor-2"], signal.SIGKILL)
        at_kill = sample_value(scrape(survivor), *RECEIVED_GENAI)
        time.sleep(max(0.0, started + 20 - time.monotonic()))
    finally:
        load.stop()
    listed = wait_for(
        lambda: (
            found
            if len(found := yaml.safe_load((scaled_stack.run_dir / PROCESSOR_ENDPOINTS_FILE).read_text()))
            == 1
            else None
        ),
        10,
        what="the gateway's list without the killed processor",
    )
    assert listed == [scaled_stack.processor_otlp_endpoints()[0]]

    # every acknowledged span reaches Jaeger, GenAI ones priced by whichever processor was up
    traces = (load.sent + 9) // 10
    missing: list[int] = []
    deadline = time.monotonic() + 90
    for number in range(1, traces + 1):
        trace_id = struct.pack(">QQ", 0xC0FFEE, number)
        expected = len([n for n in range((number - 1) * 10, number * 10) if n < load.sent])
        while _complete(scaled_stack, trace_id, expected) is None:
            if time.monotonic() > deadline:
                missing.append(number)
                break
            time.sleep(0.2)
    after = sample_value(scrape(survivor), *RECEIVED_GENAI)
    figures = {
        "spans_sent": load.sent,
        "genai_sent": load.sent_genai,
        "survivor_genai_at_kill": at_kill,
        "survivor_genai_final": after,
        "incomplete_traces": len(missing),
        "app_refusals": dict(load.refusals),
    }
    print("\nscale-out kill -9 figures: " + json.dumps(figures))
    assert not missing, figures
    # the survivor took over the killed processor's share of the traces
    assert after - at_kill > (load.sent_genai - at_kill) / 2, figures
    with pytest.raises(OSError):
        scrape(victim)


def test_a_sampler_restart_loses_no_decided_trace(scaled_stack: LocalStack) -> None:
    """Traces decided before a sampler's restart are in Jaeger; traces sent after it are complete."""
    _send(scaled_stack, _traces_request(1000, 30))
    time.sleep(5)  # past TAIL_SAMPLING_DECISION_WAIT: every trace is decided
    scaled_stack.restart("sampler-1")
    _send(scaled_stack, _traces_request(2000, 30))
    for number in (*range(1000, 1030), *range(2000, 2030)):
        trace_id = struct.pack(">QQ", 0x5CA1E, number)
        wait_for(lambda t=trace_id: _complete(scaled_stack, t, 4), 60, what=f"trace {number} complete")
