"""The whole pipeline with the real binaries: app -> collector -> processor -> collector -> Jaeger,
processor -> Prometheus.

An application under `opentelemetry-instrument` (environment variables only) calls the fake provider
through the real openai and anthropic SDKs. A tee between the processor and the collector records
every priced span, so the test knows the cost of spans tail sampling keeps out of Jaeger too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from genai_otel.demo.run import app_environment, instrumented_command
from genai_otel.fake_provider import FakeProvider
from genai_otel.stack.query import jaeger_trace, prometheus_query, prometheus_scalar, span_tags, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.tap import OtlpTap

SERVICE = "e2e-pipeline"
APP = Path(__file__).with_name("traffic_app.py")
COST = "gen_ai.usage.cost.amount"


@dataclass
class PipelineRun:
    stack: LocalStack
    tap: OtlpTap
    records: list[dict[str, Any]]

    @property
    def jaeger(self) -> str:
        return self.stack.endpoints()["jaeger_url"]

    def genai_spans(self) -> list[tuple[dict[str, Any], Any]]:
        return [
            (attributes, span)
            for service, attributes, span in self.tap.spans()
            if service == SERVICE and "gen_ai.operation.name" in attributes
        ]

    def by_trace(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        traces: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for attributes, span in self.genai_spans():
            traces.setdefault(span.trace_id.hex(), []).append((attributes, span))
        return traces


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory,
    require_binaries: Callable[..., None],
    require_processor: None,
) -> Iterator[PipelineRun]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp = tmp_path_factory.mktemp("pipeline")
    ports = free_ports()
    tap = OtlpTap(forward_to=f"127.0.0.1:{ports['COLLECTOR_ENRICHED_OTLP_PORT']}").start()
    stack = LocalStack(
        tmp / "run",
        ports=ports,
        build_missing=False,
        scrape_interval="1s",
        processor_forward_endpoint=f"127.0.0.1:{tap.port}",
        collector_env={
            "TAIL_SAMPLING_DECISION_WAIT": "4s",
            "TAIL_SAMPLING_DECISION_WAIT_AFTER_ROOT": "1s",
            "TAIL_SAMPLING_SLOW_MS": "60000",
            "TAIL_SAMPLING_EXPENSIVE_USD": "1000",
            "TAIL_SAMPLING_PERCENT_GPT_4O": "100",
            "TAIL_SAMPLING_PERCENT_GPT_4O_MINI": "0",
            "TAIL_SAMPLING_PERCENT_O3_MINI": "0",
            "TAIL_SAMPLING_PERCENT_CLAUDE_SONNET": "0",
            "TAIL_SAMPLING_PERCENT_CLAUDE_HAIKU": "0",
            "TAIL_SAMPLING_PERCENT_OTHER": "0",
        },
    )
    try:
        endpoints = stack.start(timeout=60)
        output = tmp / "requests.json"
        with FakeProvider() as provider:
            env = app_environment(endpoints, provider.base_url, service=SERVICE)
            result = subprocess.run(
                instrumented_command(str(APP), str(output)),
                env={**_base_env(), **env},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert result.returncode == 0, result.stderr[-3000:]
        yield PipelineRun(stack, tap, json.loads(output.read_text()))
    finally:
        stack.stop()
        tap.stop()


def _base_env() -> dict[str, str]:
    """This process's environment minus OTEL_* settings: the app gets exactly the stack's."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "PYTEST_"))}


def _prometheus_cost(run: PipelineRun) -> float | None:
    return prometheus_scalar(
        run.stack.endpoints()["prometheus_url"], f'sum(llm_cost_usd_total{{service="{SERVICE}"}})'
    )


def test_prometheus_cost_equals_the_cost_on_every_span_sent_including_sampled_out(
    pipeline: PipelineRun,
) -> None:
    calls = sum(2 if record["name"] == "gpt-4o-tools" else 1 for record in pipeline.records)

    def settled() -> tuple[float, float] | None:
        spans = pipeline.genai_spans()
        if len(spans) < calls:
            return None
        on_spans = math.fsum(attributes.get(COST, 0.0) for attributes, _ in spans)
        in_prometheus = _prometheus_cost(pipeline)
        if in_prometheus is None or abs(in_prometheus - on_spans) > 1e-9:
            return None
        return on_spans, in_prometheus

    try:
        on_spans, in_prometheus = wait_for(settled, timeout=45, what="prometheus cost equal to span costs")
    except TimeoutError:
        spans = pipeline.genai_spans()
        priced = [attributes for attributes, _ in spans if COST in attributes]
        assert priced, (
            f"none of the {len(spans)} GenAI spans the processor forwarded carries {COST}; does it read "
            "the collector's encoding (protobuf fields may come in any order)?"
        )
        pytest.fail(
            f"{len(spans)} GenAI spans (expected {calls}), span cost sum "
            f"{math.fsum(a.get(COST, 0.0) for a, _ in spans)!r}, prometheus {_prometheus_cost(pipeline)!r}"
        )
    assert on_spans > 0
    assert in_prometheus == pytest.approx(on_spans, abs=1e-9, rel=0)

    # part of that cost belongs to traces tail sampling dropped: gpt-4o-mini successes (0% share)
    dropped = [r for r in pipeline.records if r["model"] == "gpt-4o-mini" and not r["failed"]]
    assert len(dropped) == 6
    traces = pipeline.by_trace()
    dropped_cost = math.fsum(a[COST] for r in dropped for a, _ in traces[r["trace_id"]])
    assert dropped_cost > 0
    for record in dropped:
        assert jaeger_trace(pipeline.jaeger, record["trace_id"]) is None, record["name"]


def test_kept_traces_carry_genai_and_cost_attributes_under_their_parent(pipeline: PipelineRun) -> None:
    kept = [r for r in pipeline.records if r["model"] == "gpt-4o"]
    assert len(kept) == 5
    sent = pipeline.by_trace()
    for record in kept:
        trace = wait_for(lambda r=record: jaeger_trace(pipeline.jaeger, r["trace_id"]), what=record["name"])  # type: ignore[misc]
        spans = {span["spanID"]: span for span in trace["spans"]}
        (root,) = [s for s in spans.values() if s["operationName"] == f"e2e {record['name']}"]
        genai = [s for s in spans.values() if "gen_ai.operation.name" in span_tags(s)]
        assert len(genai) == len(sent[record["trace_id"]]) == (2 if record["name"] == "gpt-4o-tools" else 1)
        sent_cost = {span.span_id.hex(): attributes[COST] for attributes, span in sent[record["trace_id"]]}
        for span in genai:
            tags = span_tags(span)
            assert span["references"] == [
                {"refType": "CHILD_OF", "traceID": root["traceID"], "spanID": root["spanID"]}
            ]
            assert tags["gen_ai.request.model"] == "gpt-4o"
            assert tags["gen_ai.provider.name"] == "openai"
            assert tags["gen_ai.usage.input_tokens"] > 0
            assert tags["gen_ai.usage.output_tokens"] > 0
            assert tags[COST] == sent_cost[span["spanID"]] > 0
            assert tags["gen_ai.usage.cost.currency"] == "USD"
            assert trace["processes"][span["processID"]]["serviceName"] == SERVICE


def test_every_error_trace_is_in_jaeger(pipeline: PipelineRun) -> None:
    failed = [r for r in pipeline.records if r["failed"]]
    assert {r["name"] for r in failed} == {
        "error-rate_limit",
        "error-server_error",
        "error-content_filter",
        "error-overloaded",
    }
    for record in failed:
        trace = wait_for(lambda r=record: jaeger_trace(pipeline.jaeger, r["trace_id"]), what=record["name"])  # type: ignore[misc]
        genai = [s for s in trace["spans"] if "gen_ai.operation.name" in span_tags(s)]
        assert genai, record["name"]
        assert all("error.type" in span_tags(s) for s in genai), record["name"]


def test_application_sdk_metrics_reach_prometheus_through_the_collector(pipeline: PipelineRun) -> None:
    calls = sum(2 if record["name"] == "gpt-4o-tools" else 1 for record in pipeline.records)
    prometheus = pipeline.stack.endpoints()["prometheus_url"]

    def operations() -> float | None:
        series = prometheus_query(prometheus, "gen_ai_client_operation_duration_seconds_count")
        ours = [s for s in series if SERVICE in s["metric"].values()]
        total = sum(float(s["value"][1]) for s in ours)
        return total if total >= calls else None

    # one duration point per GenAI call, failed calls included (the SDK's gen_ai.client metrics)
    assert wait_for(operations, timeout=30, what="app SDK metrics in Prometheus") == calls
