"""`labels.user_id: hmac` from span to /metrics to Prometheus to `genai-otel report`, with the real
collector, processor and Prometheus: per-user cost is reported under the keyed hash, and no raw
user id reaches the processor's exposition, Prometheus or the report."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from genai_otel.cli import main as cli_main
from genai_otel.stack.query import get_json, prometheus_query, wait_for
from genai_otel.stack.runner import LocalStack, free_ports

pytestmark = pytest.mark.e2e

KEY = b"live-test-user-key-0123456789abcdef"
USERS = {"alice@example.com": 3, "bob@example.com": 1}  # calls per user per batch


def _label(user: str) -> str:
    return hmac.new(KEY, user.encode(), hashlib.sha256).hexdigest()[:16]


def _attribute(key: str, value: str | int) -> common_pb2.KeyValue:
    any_value = (
        common_pb2.AnyValue(int_value=value)
        if isinstance(value, int)
        else common_pb2.AnyValue(string_value=value)
    )
    return common_pb2.KeyValue(key=key, value=any_value)


def _calls(batch: int) -> trace_service_pb2.ExportTraceServiceRequest:
    now = time.time_ns()
    spans = []
    for user, count in USERS.items():
        for i in range(count):
            spans.append(
                trace_pb2.Span(
                    trace_id=(batch * 1000 + len(spans) + 1).to_bytes(16, "big"),
                    span_id=(len(spans) + 1).to_bytes(8, "big"),
                    name="chat gpt-4o",
                    kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=now - 10**9,
                    end_time_unix_nano=now,
                    attributes=[
                        _attribute("gen_ai.operation.name", "chat"),
                        _attribute("gen_ai.provider.name", "openai"),
                        _attribute("gen_ai.request.model", "gpt-4o"),
                        _attribute("gen_ai.usage.input_tokens", 1000),
                        _attribute("gen_ai.usage.output_tokens", 100 + i),
                        _attribute("user.id", user),
                    ],
                )
            )
    service = _attribute("service.name", "shop")
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[service]),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    )


def test_hmac_user_labels_from_span_to_report(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    require_binaries: Callable[..., None],
    require_processor: None,
) -> None:
    require_binaries("collector", "prometheus")
    key_file = tmp_path / "user.key"
    key_file.write_bytes(KEY + b"\n")
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_LABELS__USER_ID", "hmac")
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_LABELS__USER_ID_HMAC_KEY_FILE", str(key_file))
    stack = LocalStack(
        tmp_path / "run",
        ports=free_ports(),
        build_missing=False,
        services=("collector", "processor", "prometheus"),
        scrape_interval="1s",
    )
    endpoints = stack.start(timeout=60)
    try:
        prometheus = endpoints["prometheus_url"]
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['OTLP_GRPC_PORT']}") as channel:
            export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
            export(_calls(1), timeout=10)
            # a first sample of every user series, then more cost: increase() over the range sees it
            wait_for(
                lambda: len(prometheus_query(prometheus, "llm_user_cost_usd_total")) == 2 or None,
                timeout=30,
                what="both user series in Prometheus",
            )
            time.sleep(2)
            export(_calls(2), timeout=10)
        expected = {_label(user) for user in USERS}
        wait_for(
            lambda: (
                {
                    s["metric"]["user"]
                    for s in prometheus_query(prometheus, "increase(llm_user_cost_usd_total[5m]) > 0")
                }
                == expected
                or None
            ),
            timeout=30,
            what="the second batch's cost in Prometheus",
        )
        with urllib.request.urlopen(endpoints["processor_metrics_url"], timeout=5) as response:
            exposition = response.read().decode()
        stored = get_json(f"{prometheus}/api/v1/label/user/values", {})["data"]

        assert cli_main(["report", "--prometheus", prometheus, "--range", "5m", "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert cli_main(["report", "--prometheus", prometheus, "--range", "5m", "--format", "text"]) == 0
        text = capsys.readouterr().out
    finally:
        stack.stop()

    assert sorted(stored) == sorted(expected)
    reported = {row["key"][1]: row["usd"] for row in report["cost_by_user"]}
    assert set(reported) == expected
    # alice made three times bob's calls: her hashed label carries three times his cost
    assert reported[_label("alice@example.com")] == pytest.approx(
        3 * reported[_label("bob@example.com")], rel=0.05
    )
    for raw in USERS:
        assert raw not in exposition and raw not in text and raw.split("@")[0] not in json.dumps(report)
    assert _label("alice@example.com") in text
