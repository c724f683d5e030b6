"""The security options with the real binaries: the collector's overlays (collector-config/
security*.yaml, added by the stack when their variables are set) and Prometheus scraping a /metrics
behind TLS and a bearer token. Certificates are generated per test."""

from __future__ import annotations

import itertools
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from genai_otel.stack.query import prometheus_query, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.certs import Authority, Pair, authority
from tests.e2e.tap import OtlpTap

PROCESSOR_TOKEN = "collector-to-processor-token-1"
ENRICHED_TOKEN = "processor-to-enriched-token-1"


def _request(*names: str, trace: int = 1) -> trace_service_pb2.ExportTraceServiceRequest:
    spans = [
        trace_pb2.Span(
            trace_id=trace.to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            name=name,
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_000_100_000_000,
            # a GenAI span: only those go from the collector to the processor
            attributes=[
                common_pb2.KeyValue(
                    key="gen_ai.operation.name", value=common_pb2.AnyValue(string_value="chat")
                )
            ],
        )
        for i, name in enumerate(names)
    ]
    service = common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="security-e2e"))
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=[service]),
                scope_spans=[trace_pb2.ScopeSpans(spans=spans)],
            )
        ]
    )


class TlsProcessorStandIn(trace_service_pb2_grpc.TraceServiceServicer):
    """The processor's side of the hop, as the collector's exporter must meet it: TLS only, and
    UNAUTHENTICATED for a request without the token."""

    def __init__(self, pair: Pair, token: str) -> None:
        self._expected = f"Bearer {token}"
        self._lock = threading.Lock()
        self.accepted: list[str] = []
        self.refused = 0
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        credentials = grpc.ssl_server_credentials([(pair.key_file.read_bytes(), pair.cert_file.read_bytes())])
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization") != self._expected:
            with self._lock:
                self.refused += 1
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
        with self._lock:
            self.accepted += [
                span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
            ]
        return trace_service_pb2.ExportTraceServiceResponse()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self.accepted)

    def start(self) -> TlsProcessorStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait()


def _export(channel: grpc.Channel, request: Any, token: str | None) -> grpc.StatusCode:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token is not None else None
    try:
        stub.Export(request, metadata=metadata, timeout=5)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _secured_collector_env(
    processor_token: Path, enriched_token: Path, ca: Authority, receiver: Pair, **sampling: str
) -> dict[str, str]:
    """Both overlays on (TLS and the token towards the processor; the enriched receiver's token and
    TLS), and tail sampling that keeps every trace of the stratum `sampling` names and decides fast:
    what reaches the Jaeger tap is what was accepted."""
    return {
        "PROCESSOR_BEARER_TOKEN_FILE": str(processor_token),
        "PROCESSOR_TLS_CA_FILE": str(ca.cert_file),
        "ENRICHED_BEARER_TOKEN_FILE": str(enriched_token),
        "ENRICHED_TLS_CERT_FILE": str(receiver.cert_file),
        "ENRICHED_TLS_KEY_FILE": str(receiver.key_file),
        "TAIL_SAMPLING_DECISION_WAIT": "1s",
        "TAIL_SAMPLING_DECISION_WAIT_AFTER_ROOT": "200ms",
        **sampling,
    }


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return authority(tmp_path / "pki")


@pytest.fixture
def secured_collector(
    tmp_path: Path, ca: Authority, require_binaries: Callable[..., None]
) -> Iterator[tuple[LocalStack, TlsProcessorStandIn, OtlpTap, Path]]:
    """The real collector with both overlays on, between a TLS processor stand-in and a Jaeger tap."""
    require_binaries("collector")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    processor_token, enriched_token = secrets / "processor.token", secrets / "enriched.token"
    processor_token.write_text(PROCESSOR_TOKEN + "\n")
    enriched_token.write_text(ENRICHED_TOKEN + "\n")
    receiver = ca.issue(tmp_path / "pki", "collector-enriched")
    processor = TlsProcessorStandIn(ca.issue(tmp_path / "pki", "processor"), PROCESSOR_TOKEN).start()
    jaeger = OtlpTap(forward_to=None).start()
    ports = {**free_ports(), "PROCESSOR_OTLP_PORT": processor.port, "JAEGER_OTLP_GRPC_PORT": jaeger.port}
    stack = LocalStack(
        tmp_path / "run",
        ports=ports,
        build_missing=False,
        services=("collector",),
        collector_env=_secured_collector_env(
            processor_token, enriched_token, ca, receiver, TAIL_SAMPLING_PERCENT_OTHER="100"
        ),
    )
    try:
        stack.start(timeout=60)
        yield stack, processor, jaeger, enriched_token
    finally:
        stack.stop()
        processor.stop()
        jaeger.stop()


def test_the_collector_sends_the_token_over_tls_and_its_enriched_receiver_refuses_strangers(
    secured_collector: tuple[LocalStack, TlsProcessorStandIn, OtlpTap, Path], ca: Authority
) -> None:
    stack, processor, jaeger, enriched_token = secured_collector
    argv = Path(f"/proc/{stack.running_pids()['collector']}/cmdline").read_bytes().split(b"\0")
    configs = [Path(os.fsdecode(arg)).name for flag, arg in itertools.pairwise(argv) if flag == b"--config"]
    assert configs == ["collector.yaml", "security.yaml", "security-enriched-tls.yaml"]

    # app -> collector (plaintext on loopback, as documented) -> processor: TLS + the token
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports['OTLP_GRPC_PORT']}") as app:
        assert _export(app, _request("app span a", "app span b"), token=None) == grpc.StatusCode.OK
    assert wait_for(lambda: processor.names() or None, timeout=30, what="spans at the processor") == [
        "app span a",
        "app span b",
    ]
    assert processor.refused == 0

    # processor -> enriched receiver: TLS, and only with the token
    enriched = f"127.0.0.1:{stack.ports['COLLECTOR_ENRICHED_OTLP_PORT']}"
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
    with grpc.secure_channel(enriched, credentials) as channel:
        assert _export(channel, _request("no token", trace=2), None) == grpc.StatusCode.UNAUTHENTICATED
        assert _export(channel, _request("wrong", trace=3), ENRICHED_TOKEN + "x") == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        assert _export(channel, _request("with token", trace=4), ENRICHED_TOKEN) == grpc.StatusCode.OK
    with grpc.insecure_channel(enriched) as plaintext:
        assert (
            _export(plaintext, _request("plaintext", trace=5), ENRICHED_TOKEN) == grpc.StatusCode.UNAVAILABLE
        )
    delivered = wait_for(
        lambda: sorted(span.name for _, _, span in jaeger.spans()) or None, timeout=30, what="spans at Jaeger"
    )
    assert delivered == ["with token"]

    # rotation without restart: the extension watches the file
    enriched_token.write_text("processor-to-enriched-token-2\n")
    with grpc.secure_channel(enriched, credentials) as channel:
        wait_for(
            lambda: (
                _export(channel, _request("rotated", trace=6), "processor-to-enriched-token-2")
                == grpc.StatusCode.OK
                or None
            ),
            timeout=20,
            what="the rotated token accepted",
        )
        assert _export(channel, _request("old", trace=7), ENRICHED_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
    assert ENRICHED_TOKEN not in (stack.run_dir / "logs" / "collector.log").read_text()
    assert PROCESSOR_TOKEN not in (stack.run_dir / "logs" / "collector.log").read_text()


def test_prometheus_scrapes_metrics_behind_tls_and_a_bearer_token(
    tmp_path: Path,
    ca: Authority,
    monkeypatch: pytest.MonkeyPatch,
    require_binaries: Callable[..., None],
    require_processor: None,
) -> None:
    require_binaries("prometheus")
    pair = ca.issue(tmp_path / "pki", "processor-metrics")
    token = tmp_path / "metrics.token"
    token.write_text("scrape-token-0123456789\n")
    # the processor's side (metrics.*) and Prometheus's side (the rendered scrape job)
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_METRICS__TLS__CERT_FILE", str(pair.cert_file))
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_METRICS__TLS__KEY_FILE", str(pair.key_file))
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_METRICS__AUTH__BEARER_TOKEN_FILE", str(token))
    monkeypatch.setenv("PROCESSOR_METRICS_CA_FILE", str(ca.cert_file))
    monkeypatch.setenv("PROCESSOR_METRICS_BEARER_TOKEN_FILE", str(token))
    stack = LocalStack(
        tmp_path / "run",
        ports=free_ports(),
        build_missing=False,
        services=("processor", "prometheus"),
        scrape_interval="1s",
    )
    endpoints = stack.start(timeout=60)
    try:
        assert endpoints["processor_metrics_url"].startswith("https://127.0.0.1:")
        up = wait_for(
            lambda: (
                prometheus_query(endpoints["prometheus_url"], 'up{job="genai-otel-processor"} == 1') or None
            ),
            timeout=30,
            what="a successful scrape of the processor",
        )
        assert len(up) == 1
        series = prometheus_query(endpoints["prometheus_url"], "genai_otel_processor_info")
        assert [s["metric"]["job"] for s in series] == ["genai-otel-processor"]

        trusted = ssl.create_default_context(cafile=str(ca.cert_file))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(endpoints["processor_metrics_url"], timeout=5, context=trusted)
        assert refused.value.code == 401
        assert "scrape-token" not in (stack.run_dir / "logs" / "processor.log").read_text()
    finally:
        stack.stop()
    assert not os.path.exists(stack.run_dir / "stack.json")


GENAI_CALL = {  # one gpt-4o chat call: 0.0035 USD
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}


def _genai_request(count: int, trace: int) -> trace_service_pb2.ExportTraceServiceRequest:
    request = _request(*(f"chat gpt-4o #{i}" for i in range(count)), trace=trace)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.start_time_unix_nano = 1_751_371_200 * 10**9  # 2025-07-01, when gpt-4o's price holds
        span.end_time_unix_nano = span.start_time_unix_nano + 10**9
        for key, value in GENAI_CALL.items():
            any_value = (
                common_pb2.AnyValue(int_value=value)
                if isinstance(value, int)
                else common_pb2.AnyValue(string_value=value)
            )
            span.attributes.append(common_pb2.KeyValue(key=key, value=any_value))
    return request


def test_tls_and_tokens_on_both_processor_hops_with_the_real_collector_and_processor(
    tmp_path: Path,
    ca: Authority,
    monkeypatch: pytest.MonkeyPatch,
    require_binaries: Callable[..., None],
    require_processor: None,
) -> None:
    """collector --TLS + token--> processor --TLS + token--> collector's enriched receiver: spans
    flow, are priced, and the processor's cost series equals the costs on the spans; a sender
    without the processor's token, or without TLS, is refused at the processor."""
    require_binaries("collector")
    pki, secrets = tmp_path / "pki", tmp_path / "secrets"
    secrets.mkdir()
    processor_token, enriched_token = secrets / "processor.token", secrets / "enriched.token"
    processor_token.write_text(PROCESSOR_TOKEN + "\n")
    enriched_token.write_text(ENRICHED_TOKEN + "\n")
    processor_pair, receiver = ca.issue(pki, "processor"), ca.issue(pki, "collector-enriched")
    for name, value in {
        "TLS__CERT_FILE": processor_pair.cert_file,
        "TLS__KEY_FILE": processor_pair.key_file,
        "AUTH__BEARER_TOKEN_FILE": processor_token,
        "FORWARD__TLS__CA_FILE": ca.cert_file,
        "FORWARD__AUTH__BEARER_TOKEN_FILE": enriched_token,
    }.items():
        monkeypatch.setenv(f"GENAI_OTEL_PROCESSOR_{name}", str(value))
    jaeger = OtlpTap(forward_to=None).start()
    stack = LocalStack(
        tmp_path / "run",
        ports={**free_ports(), "JAEGER_OTLP_GRPC_PORT": jaeger.port},
        build_missing=False,
        services=("collector", "processor"),
        collector_env=_secured_collector_env(
            processor_token, enriched_token, ca, receiver, TAIL_SAMPLING_PERCENT_GPT_4O="100"
        ),
    )
    try:
        endpoints = stack.start(timeout=60)
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports['OTLP_GRPC_PORT']}") as app:
            assert _export(app, _genai_request(3, trace=11), token=None) == grpc.StatusCode.OK
        priced = wait_for(
            lambda: [attrs for _, attrs, _ in jaeger.spans()] if len(jaeger.spans()) == 3 else None,
            timeout=60,
            what="3 priced spans at Jaeger",
        )
        costs = [attrs["gen_ai.usage.cost.amount"] for attrs in priced]
        assert costs == pytest.approx([0.0035] * 3, abs=1e-9)
        assert {attrs["gen_ai.usage.cost.source"] for attrs in priced} == {"local"}

        # the processor's listener: TLS only, and only with its token
        processor = f"127.0.0.1:{stack.ports['PROCESSOR_OTLP_PORT']}"
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_file.read_bytes())
        with grpc.secure_channel(processor, credentials) as channel:
            assert _export(channel, _genai_request(1, trace=12), None) == grpc.StatusCode.UNAUTHENTICATED
            assert _export(channel, _genai_request(1, trace=13), "x" + PROCESSOR_TOKEN) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
        with grpc.insecure_channel(processor) as plaintext:
            assert _export(plaintext, _genai_request(1, trace=14), PROCESSOR_TOKEN) == (
                grpc.StatusCode.UNAVAILABLE
            )

        with urllib.request.urlopen(endpoints["processor_metrics_url"], timeout=5) as response:
            exposition = response.read().decode()
        cost_lines = [line for line in exposition.splitlines() if line.startswith("llm_cost_usd_total{")]
        assert len(cost_lines) == 1 and float(cost_lines[0].split()[-1]) == pytest.approx(
            sum(costs), abs=1e-9
        )
        assert 'genai_otel_processor_requests_rejected_total{reason="unauthenticated"} 2' in exposition
        logs = (stack.run_dir / "logs" / "processor.log").read_text()
        logs += (stack.run_dir / "logs" / "collector.log").read_text()
        assert PROCESSOR_TOKEN not in logs and ENRICHED_TOKEN not in logs
    finally:
        stack.stop()
        jaeger.stop()
