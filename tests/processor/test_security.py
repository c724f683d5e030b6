"""TLS and bearer tokens on the processor's two hops, with a real Processor, real gRPC clients and
certificates made here (the `cryptography` package)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from genai_otel.processors import service
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.service import Processor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genai_otel import semconv as sc
from tests.certs import Issued, issue

from .helpers import EXPORT, GENAI, Sink, attributes_of, make_request, make_span, samples, scrape

TOKEN = "sender-token-1f3a9c"
OTHER_TOKEN = "sender-token-77b2e0"
HOP_TOKEN = "next-hop-token-5d8e41"
REQUEST = make_request([make_span(GENAI)])


# --------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------
@dataclass
class Pki:
    folder: Path
    server_ca: Issued = field(init=False)
    client_ca: Issued = field(init=False)
    server: Issued = field(init=False)

    def __post_init__(self) -> None:
        self.server_ca = issue("test server CA", ca=True)
        self.client_ca = issue("test client CA", ca=True)
        self.write("server_ca.pem", self.server_ca.cert)
        self.write("client_ca.pem", self.client_ca.cert)
        self.install_server(issue("processor", self.server_ca, serial=1001))

    def path(self, name: str) -> Path:
        return self.folder / name

    def write(self, name: str, data: bytes) -> Path:
        """Replace a file the way rotations do: a new file renamed over the old one."""
        target = self.path(name)
        staged = self.folder / (name + ".new")
        staged.write_bytes(data)
        os.replace(staged, target)
        return target

    def install_server(self, server: Issued) -> None:
        self.server = server
        self.write("server.pem", server.cert)
        self.write("server.key", server.key)

    @property
    def listen_tls(self) -> dict[str, str]:
        return {"cert_file": str(self.path("server.pem")), "key_file": str(self.path("server.key"))}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def token_file(folder: Path, name: str, *tokens: str) -> Path:
    path = folder / name
    staged = folder / (name + ".new")
    staged.write_text("".join(token + "\n" for token in tokens))
    os.replace(staged, path)
    return path


# --------------------------------------------------------------------------------------
# The processor, clients and a next hop that wants TLS and a token
# --------------------------------------------------------------------------------------
def make_processor(forward_port: int, environ: dict[str, str] | None = None, **settings: Any) -> Processor:
    forward = {"endpoint": f"127.0.0.1:{forward_port}", **settings.pop("forward", {})}
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 5,
            "forward": forward,
            **settings,
        },
        environ=environ or {},
    )
    return Processor(config)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def tls_channel(port: int, pki: Pki, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.server_ca.cert,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def export(channel: grpc.aio.Channel, metadata: Any = None, request: bytes = REQUEST) -> None:
    await channel.unary_unary(EXPORT)(request, metadata=metadata, timeout=5)


async def refused(channel: grpc.aio.Channel, metadata: Any = None) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await export(channel, metadata)
    return caught.value.code()


async def healthy(channel: grpc.aio.Channel) -> bool:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


def nothing_counted(processor: Processor) -> None:
    registry = processor.registry
    assert registry.received == {"genai": 0, "other": 0}
    assert registry.forwarded == 0
    assert registry.dropped == {}
    assert registry.export_failures == {}
    assert registry.series == {}


def costed(sink: Sink) -> list[float]:
    return [attributes_of(span)[sc.GEN_AI_USAGE_COST_AMOUNT] for span in sink.spans()]


@dataclass
class SecureSink(Sink):
    """The next hop over TLS, refusing exports without `authorization: Bearer <token>`."""

    credentials: grpc.ServerCredentials | None = None
    token: str = HOP_TOKEN
    refused_calls: int = 0

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if dict(context.invocation_metadata() or ()).get("authorization") != f"Bearer {self.token}":
            self.refused_calls += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        return await super()._export(request, context)

    async def start(self, port: int = 0) -> Self:
        assert self.credentials is not None
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(self._export)},
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_secure_port(f"127.0.0.1:{port}", self.credentials)
        await server.start()
        self._server = server
        return self


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.stop()


def served_certificate(port: int, pki: Pki) -> x509.Certificate:
    """The certificate a new TLS connection to `port` is shown."""
    context = ssl.create_default_context(cadata=pki.server_ca.cert.decode())
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


# --------------------------------------------------------------------------------------
# Bearer token on the listener
# --------------------------------------------------------------------------------------
async def test_listener_refuses_missing_or_wrong_token_and_counts_only_that(
    sink: Sink, tmp_path: Path
) -> None:
    processor = make_processor(sink.port, auth={"bearer_token_file": str(token_file(tmp_path, "t", TOKEN))})
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            assert await refused(channel) == grpc.StatusCode.UNAUTHENTICATED
            assert await refused(channel, bearer(OTHER_TOKEN)) == grpc.StatusCode.UNAUTHENTICATED
            assert await refused(channel, bearer(TOKEN + "x")) == grpc.StatusCode.UNAUTHENTICATED
            assert await refused(channel, (("authorization", f"Basic {TOKEN}"),)) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            assert processor.registry.rejected == {"unauthenticated": 4}
            nothing_counted(processor)
            _, body = await asyncio.to_thread(scrape, processor.metrics_port)
            assert samples(body, sc.PROM_PROCESSOR_REQUESTS_REJECTED) == {'{reason="unauthenticated"}': "4"}
            assert samples(body, sc.PROM_LLM_REQUESTS) == {}
            assert samples(body, sc.PROM_PROCESSOR_SPANS_FORWARDED) == {"": "0"}
            assert await healthy(channel)  # probes need no token

            await export(channel, bearer(TOKEN))
            await export(channel, (("authorization", f"bearer {TOKEN}"),))  # the scheme's case is free
        await wait_for(lambda: len(sink.spans()) == 2 and processor.registry.forwarded == 2)
        assert costed(sink) == [pytest.approx(0.0035, abs=1e-9)] * 2
        assert processor.registry.rejected == {"unauthenticated": 4}
    finally:
        await processor.stop()


async def test_listener_token_from_the_environment(sink: Sink) -> None:
    processor = make_processor(sink.port, environ={"GENAI_OTEL_PROCESSOR_AUTH__BEARER_TOKEN": TOKEN})
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            assert await refused(channel, bearer(OTHER_TOKEN)) == grpc.StatusCode.UNAUTHENTICATED
            await export(channel, bearer(TOKEN))
        await wait_for(lambda: processor.registry.forwarded == 1)
        assert processor.registry.rejected == {"unauthenticated": 1}
    finally:
        await processor.stop()


async def test_rotated_token_file_is_used_without_restart(sink: Sink, tmp_path: Path) -> None:
    path = token_file(tmp_path, "token", TOKEN)
    processor = make_processor(sink.port, auth={"bearer_token_file": str(path)})
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await export(channel, bearer(TOKEN))
            token_file(tmp_path, "token", OTHER_TOKEN)
            deadline = time.monotonic() + 5  # the file is looked at once a second
            while True:
                try:
                    await export(channel, bearer(OTHER_TOKEN))
                    break
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
                    assert time.monotonic() < deadline, "the rotated token was never accepted"
                    await asyncio.sleep(0.1)
            assert await refused(channel, bearer(TOKEN)) == grpc.StatusCode.UNAUTHENTICATED

            # Two tokens, one per line: both accepted while senders move from one to the other.
            token_file(tmp_path, "token", OTHER_TOKEN, TOKEN)
            await asyncio.sleep(1.1)
            await export(channel, bearer(TOKEN))
            await export(channel, bearer(OTHER_TOKEN))
        await wait_for(lambda: processor.registry.forwarded == 4)
    finally:
        await processor.stop()


# --------------------------------------------------------------------------------------
# TLS on the listener
# --------------------------------------------------------------------------------------
async def test_tls_listener_refuses_plaintext_and_serves_tls(sink: Sink, pki: Pki) -> None:
    processor = make_processor(sink.port, tls=pki.listen_tls)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as plaintext:
            assert await refused(plaintext) == grpc.StatusCode.UNAVAILABLE
        assert processor.registry.rejected == {}
        nothing_counted(processor)
        async with tls_channel(processor.port, pki) as channel:
            assert await healthy(channel)
            await export(channel)
        await wait_for(lambda: processor.registry.forwarded == 1)
        assert costed(sink) == [pytest.approx(0.0035, abs=1e-9)]
    finally:
        await processor.stop()


async def test_mutual_tls_refuses_a_client_without_a_certificate_signed_by_the_client_ca(
    sink: Sink, pki: Pki
) -> None:
    processor = make_processor(
        sink.port, tls={**pki.listen_tls, "client_ca_file": str(pki.path("client_ca.pem"))}
    )
    await processor.start()
    try:
        async with tls_channel(processor.port, pki) as anonymous:
            assert await refused(anonymous) == grpc.StatusCode.UNAVAILABLE
        stranger = issue("stranger", issue("another CA", ca=True))
        async with tls_channel(processor.port, pki, stranger) as channel:
            assert await refused(channel) == grpc.StatusCode.UNAVAILABLE
        nothing_counted(processor)
        async with tls_channel(processor.port, pki, issue("collector", pki.client_ca)) as channel:
            await export(channel)
        await wait_for(lambda: processor.registry.forwarded == 1)
        assert processor.registry.rejected == {}
    finally:
        await processor.stop()


async def test_rotated_server_certificate_is_served_to_new_connections(sink: Sink, pki: Pki) -> None:
    processor = make_processor(sink.port, tls=pki.listen_tls)
    await processor.start()
    try:
        first = await asyncio.to_thread(served_certificate, processor.port, pki)
        assert first.serial_number == 1001
        # Half-way through a rotation (the new certificate, still the old key): the old pair
        # stays in force, logged once, and the next file change is looked at again.
        rotated = issue("processor-rotated", pki.server_ca, serial=2002)
        pki.write("server.pem", rotated.cert)
        for _ in range(2):
            halfway = await asyncio.to_thread(served_certificate, processor.port, pki)
            assert halfway.serial_number == 1001
        pki.install_server(rotated)
        second = await asyncio.to_thread(served_certificate, processor.port, pki)
        assert second.serial_number == 2002
        assert second.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "processor-rotated"
        async with tls_channel(processor.port, pki) as channel:
            await export(channel)
        await wait_for(lambda: processor.registry.forwarded == 1)
    finally:
        await processor.stop()


# --------------------------------------------------------------------------------------
# The forward client
# --------------------------------------------------------------------------------------
def hop_credentials(pki: Pki) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(pki.server.key, pki.server.cert)])


async def test_forward_over_tls_with_token_reaches_the_next_hop(pki: Pki, tmp_path: Path) -> None:
    hop = await SecureSink(credentials=hop_credentials(pki)).start()
    processor = make_processor(
        hop.port,
        forward={
            "tls": {"ca_file": str(pki.path("server_ca.pem"))},
            "auth": {"bearer_token_file": str(token_file(tmp_path, "hop", HOP_TOKEN))},
        },
    )
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await export(channel)
        await wait_for(lambda: processor.registry.forwarded == 1)
        assert costed(hop) == [pytest.approx(0.0035, abs=1e-9)]
        assert (hop.calls, hop.refused_calls) == (1, 0)
        assert processor.registry.export_failures == {}

        # The next hop's token rotates: the file is re-read, and the next export carries it.
        hop.token = OTHER_TOKEN
        token_file(tmp_path, "hop", OTHER_TOKEN)
        await asyncio.sleep(1.1)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await export(channel)
        await wait_for(lambda: processor.registry.forwarded == 2)
        assert (hop.calls, hop.refused_calls) == (2, 0)
    finally:
        await processor.stop()
        await hop.stop()


@pytest.mark.parametrize(
    ("forward", "failure", "dropped"),
    [
        (
            {"tls": {"ca_file": "server_ca.pem"}, "auth": {"bearer_token": OTHER_TOKEN}},
            "unauthenticated",
            "rejected_unauthenticated",
        ),
        ({"tls": {"ca_file": "server_ca.pem"}}, "unauthenticated", "rejected_unauthenticated"),
        ({"auth": {"bearer_token": HOP_TOKEN}}, "unavailable", "retries_exhausted"),
    ],
    ids=["wrong-token", "no-token", "no-tls"],
)
async def test_forward_without_the_right_token_or_tls_is_refused_and_counted(
    pki: Pki, forward: dict[str, Any], failure: str, dropped: str
) -> None:
    hop = await SecureSink(credentials=hop_credentials(pki)).start()
    if "tls" in forward:
        forward["tls"] = {"ca_file": str(pki.path(forward["tls"]["ca_file"]))}
    retry = {"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.1, "max_elapsed_seconds": 0.3}
    processor = make_processor(hop.port, forward={**forward, "retry": retry})
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await export(channel)
        await wait_for(lambda: processor.registry.queue_spans == 0)
        assert hop.received == []
        assert processor.registry.forwarded == 0
        assert processor.registry.dropped == {dropped: 1}
        assert set(processor.registry.export_failures) == {failure}
        if failure == "unauthenticated":
            assert processor.registry.export_failures == {"unauthenticated": 1}
            assert hop.refused_calls == 1
    finally:
        await processor.stop()
        await hop.stop()


# --------------------------------------------------------------------------------------
# Secrets stay secret
# --------------------------------------------------------------------------------------
async def test_no_token_is_ever_logged(pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hop = await SecureSink(credentials=hop_credentials(pki)).start()
    processor = make_processor(
        hop.port,
        auth={"bearer_token_file": str(token_file(tmp_path, "in", TOKEN))},
        forward={
            "tls": {"ca_file": str(pki.path("server_ca.pem"))},
            "auth": {"bearer_token": OTHER_TOKEN},  # not the hop's: refused there, logged as a drop
        },
        tls=pki.listen_tls,
    )
    await processor.start()
    try:
        async with tls_channel(processor.port, pki) as channel:
            assert await refused(channel, bearer("wrong-" + TOKEN)) == grpc.StatusCode.UNAUTHENTICATED
            await export(channel, bearer(TOKEN))
        await wait_for(lambda: processor.registry.dropped == {"rejected_unauthenticated": 1})
        token_file(tmp_path, "in", "not a token")  # an unusable rotation: logged, not shown
        await asyncio.sleep(1.1)
        async with tls_channel(processor.port, pki) as channel:
            await export(channel, bearer(TOKEN))  # the previous token stays in force
    finally:
        await processor.stop()
        await hop.stop()
    text = caplog.text
    assert "bearer token file changed but cannot be used" in text  # the logs were captured
    for secret in (TOKEN, OTHER_TOKEN, "not a token"):
        assert secret not in text
    assert OTHER_TOKEN not in repr(processor.config)


@pytest.mark.parametrize(
    "settings",
    [
        {"auth": {"bearer_token": "has a space " + TOKEN}},
        {"auth": {"bearer_token": TOKEN, "bearer_token_file": "/run/token"}},
        {"auth": {"bearer_tokn": TOKEN}},
        {"auth": TOKEN},
        {"forward": {"auth": {"bearer_token": TOKEN + "\n"}}},
        {"forward": {"auth": {"bearer_token": TOKEN, "bearer_token_file": "/run/token"}}},
    ],
    ids=["invalid", "two-sources", "misspelt-key", "not-a-section", "forward-invalid", "forward-two-sources"],
)
def test_config_errors_never_show_a_token(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(settings, environ={})
    message = str(caught.value)
    assert "auth" in message and "***" in message
    assert TOKEN not in message


def test_config_error_from_the_environment_and_the_command_line_never_shows_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_OTEL_PROCESSOR_FORWARD__AUTH__BEARER_TOKEN", "bad!" + OTHER_TOKEN)
    assert service.main(["--set", f"auth.bearer_token={TOKEN}!"]) == 2
    error = capsys.readouterr().err
    assert "auth.bearer_token='***' (from flag)" in error
    assert "forward.auth.bearer_token='***' (from env)" in error
    assert TOKEN not in error and OTHER_TOKEN not in error


def test_unreadable_token_file_fails_at_start_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=f"{empty}: no bearer token in the file"):
        make_processor(1, auth={"bearer_token_file": str(empty)})
    with pytest.raises(ValueError, match=f"{tmp_path / 'missing'}: cannot read"):
        make_processor(1, forward={"auth": {"bearer_token_file": str(tmp_path / "missing")}})
