"""The collector's sampling pipeline, fed with priced spans as the processor forwards them.

Real collector and Jaeger: spans go into the collector's enriched-spans receiver and the test
reads back from Jaeger's HTTP API which traces tail sampling kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from genai_otel.stack.query import jaeger_trace, span_tags, wait_for
from genai_otel.stack.runner import LocalStack, free_ports

SERVICE = "tail-sampling-e2e"


def start_stack(run_dir: Path, **kwargs: object) -> LocalStack:
    stack = LocalStack(run_dir, ports=free_ports(), build_missing=False, **kwargs)  # type: ignore[arg-type]
    stack.start(timeout=60)
    return stack


@pytest.fixture(scope="module")
def sampling_stack(
    tmp_path_factory: pytest.TempPathFactory, require_binaries: Callable[..., None]
) -> Iterator[LocalStack]:
    require_binaries("collector", "jaeger")
    # no processor here: the test plays its part and sends priced spans to the enriched receiver
    stack = start_stack(
        tmp_path_factory.mktemp("tail-sampling") / "run",
        services=("jaeger", "collector"),
        collector_env={
            "TAIL_SAMPLING_DECISION_WAIT": "2s",
            "TAIL_SAMPLING_DECISION_WAIT_AFTER_ROOT": "1s",
            "TAIL_SAMPLING_SLOW_MS": "1500",
            "TAIL_SAMPLING_EXPENSIVE_USD": "0.5",
            "TAIL_SAMPLING_PERCENT_GPT_4O": "100",
            "TAIL_SAMPLING_PERCENT_GPT_4O_MINI": "0",
            "TAIL_SAMPLING_PERCENT_O3_MINI": "0",
            "TAIL_SAMPLING_PERCENT_CLAUDE_SONNET": "0",
            "TAIL_SAMPLING_PERCENT_CLAUDE_HAIKU": "0",
            "TAIL_SAMPLING_PERCENT_OTHER": "0",
        },
    )
    try:
        yield stack
    finally:
        stack.stop()


def _send(stack: LocalStack, build: dict[str, dict[str, object]]) -> dict[str, str]:
    """One trace per entry: an app span with one priced GenAI child. Returns name -> trace id."""
    endpoint = f"127.0.0.1:{stack.ports['COLLECTOR_ENRICHED_OTLP_PORT']}"
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("e2e")
    trace_ids: dict[str, str] = {}
    for name, spec in build.items():
        with tracer.start_as_current_span(f"handle {name}") as parent:
            start = time.time_ns()
            child = tracer.start_span(f"chat {spec['model']}", kind=SpanKind.CLIENT, start_time=start)
            child.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": str(spec["model"]),
                    "gen_ai.usage.cost.amount": float(spec.get("cost", 0.0001)),  # type: ignore[arg-type]
                }
            )
            if spec.get("unpriced"):
                child.set_attribute("genai_otel.cost.unpriced_reason", "unknown_model")
            if spec.get("error"):
                child.set_attribute("error.type", "rate_limit")
                child.set_status(Status(StatusCode.ERROR))
            duration_ms = int(spec.get("duration_ms", 20))  # type: ignore[call-overload]
            child.end(end_time=start + duration_ms * 1_000_000)
            trace_ids[name] = format(parent.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_ids


def test_tail_sampling_keeps_errors_slow_expensive_unpriced_and_the_configured_share(
    sampling_stack: LocalStack,
) -> None:
    sent = _send(
        sampling_stack,
        {
            "cheap-mini": {"model": "gpt-4o-mini"},
            "cheap-other": {"model": "mistral-small"},
            "error-mini": {"model": "gpt-4o-mini", "error": True, "cost": 0.0},
            "slow-mini": {"model": "gpt-4o-mini", "duration_ms": 2000},
            "expensive-mini": {"model": "gpt-4o-mini", "cost": 0.75},
            "unpriced-other": {"model": "my-finetune", "unpriced": True},
            "share-gpt-4o": {"model": "gpt-4o"},
        },
    )
    jaeger = sampling_stack.endpoints()["jaeger_url"]
    kept = {"error-mini", "slow-mini", "expensive-mini", "unpriced-other", "share-gpt-4o"}
    for name in sorted(kept):
        trace = wait_for(lambda name=name: jaeger_trace(jaeger, sent[name]), what=f"{name} in Jaeger")  # type: ignore[misc]
        assert len(trace["spans"]) == 2, name
    # the decision for every trace was taken together with the kept ones; give stragglers a moment
    time.sleep(3)
    for name in sorted(set(sent) - kept):
        assert jaeger_trace(jaeger, sent[name]) is None, f"{name} should have been sampled out"


def test_kept_trace_keeps_its_parent_child_structure_and_attributes(sampling_stack: LocalStack) -> None:
    sent = _send(sampling_stack, {"structure": {"model": "gpt-4o", "cost": 0.0123}})
    jaeger = sampling_stack.endpoints()["jaeger_url"]
    trace = wait_for(lambda: jaeger_trace(jaeger, sent["structure"]), what="trace in Jaeger")
    by_name = {span["operationName"]: span for span in trace["spans"]}
    parent, child = by_name["handle structure"], by_name["chat gpt-4o"]
    assert child["references"] == [
        {"refType": "CHILD_OF", "traceID": parent["traceID"], "spanID": parent["spanID"]}
    ]
    tags = span_tags(child)
    assert tags["gen_ai.usage.cost.amount"] == 0.0123
    assert tags["gen_ai.request.model"] == "gpt-4o"
    assert trace["processes"][child["processID"]]["serviceName"] == SERVICE


def test_every_service_process_is_gone_after_stop(
    tmp_path: Path, require_binaries: Callable[..., None]
) -> None:
    require_binaries("collector", "jaeger")
    stack = start_stack(tmp_path / "run", services=("jaeger", "collector"))
    pids = stack.running_pids()
    assert set(pids) == {"jaeger", "collector"}
    assert stack.status()["running"] is True
    stopped = stack.stop()
    assert sorted(stopped) == ["collector", "jaeger"]
    assert stack.running_pids() == {}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_late_span_of_a_kept_trace_follows_the_trace_into_jaeger(sampling_stack: LocalStack) -> None:
    sent = _send(sampling_stack, {"late": {"model": "gpt-4o"}})
    jaeger = sampling_stack.endpoints()["jaeger_url"]
    first = wait_for(lambda: jaeger_trace(jaeger, sent["late"]), what="kept trace in Jaeger")
    (root,) = [s for s in first["spans"] if s["operationName"] == "handle late"]

    endpoint = f"127.0.0.1:{sampling_stack.ports['COLLECTOR_ENRICHED_OTLP_PORT']}"
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    parent = SpanContext(int(sent["late"], 16), int(root["spanID"], 16), True, TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    provider.get_tracer("e2e").start_span("late follow-up", context=context).end()
    provider.shutdown()

    def has_late_span() -> dict[str, object] | None:
        current = jaeger_trace(jaeger, sent["late"])
        names = {s["operationName"] for s in current["spans"]} if current else set()
        return current if "late follow-up" in names else None

    assert len(wait_for(has_late_span, what="late span in Jaeger")["spans"]) == 3  # type: ignore[arg-type]
