"""The /metrics listener over raw sockets: status lines, headers and bodies exactly as a scraper or
a probe sees them, HEAD without a body, and clients that misbehave (silent, slow, huge headers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from genai_otel.processors import service
from genai_otel.processors.config import load_config
from genai_otel.processors.metrics import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE
from genai_otel.processors.service import Processor

from tests.certs import authority

from .helpers import Sink

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"


def _config(forward_port: int, **metrics: object) -> Processor:
    return Processor(
        load_config(
            {
                "listen": "127.0.0.1:0",
                "metrics_listen": "127.0.0.1:0",
                "shutdown_grace_seconds": 2,
                "forward": {"endpoint": f"127.0.0.1:{forward_port}"},
                "metrics": metrics,
            },
            environ={},
        )
    )


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.stop()


@pytest.fixture
async def processor(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Processor]:
    monkeypatch.setattr(service, "HTTP_IDLE_SECONDS", 1.0)
    processor = _config(sink.port)
    await processor.start()
    yield processor
    await processor.stop()


async def _exchange(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as is and read the answer until the server closes: (status line, headers
    with lower-case names, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


def _get(path: str, method: str = "GET", accept: str = "") -> bytes:
    extra = f"Accept: {accept}\r\n" if accept else ""
    return f"{method} {path} HTTP/1.1\r\nHost: metrics\r\n{extra}\r\n".encode()


async def test_status_lines_content_types_and_bodies(processor: Processor) -> None:
    port = processor.metrics_port
    for path in ("/healthz", "/", "/healthz?probe=1"):
        status, headers, body = await _exchange(port, _get(path))
        assert (status, headers["content-type"], headers["content-length"], body) == (
            "HTTP/1.1 200 OK",
            "text/plain",
            "3",
            b"ok\n",
        ), path
        assert headers["connection"] == "close"
    status, headers, body = await _exchange(port, _get("/nowhere"))
    assert (status, headers["content-type"], headers["content-length"], body) == (
        "HTTP/1.1 404 Not Found",
        "text/plain",
        "10",
        b"not found\n",
    )
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, body = await _exchange(port, _get("/metrics", method))
        assert (status, headers["content-type"], body) == (
            "HTTP/1.1 405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
        ), method

    status, headers, text = await _exchange(port, _get("/metrics"))
    assert (status, headers["content-type"]) == ("HTTP/1.1 200 OK", TEXT_CONTENT_TYPE)
    assert int(headers["content-length"]) == len(text)
    assert headers["server"] == "genai-otel"  # no library or Python version told to a scraper
    assert b"# TYPE genai_otel_processor_info gauge" in text
    assert not text.endswith(b"# EOF\n")
    status, headers, om = await _exchange(port, _get("/metrics?x=1", accept=OPENMETRICS))
    assert (status, headers["content-type"]) == ("HTTP/1.1 200 OK", OPENMETRICS_CONTENT_TYPE)
    assert om.endswith(b"# EOF\n")

    processor.draining = True
    status, headers, body = await _exchange(port, _get("/healthz"))
    assert (status, headers["content-type"], body) == (
        "HTTP/1.1 503 Service Unavailable",
        "text/plain",
        b"draining\n",
    )


async def test_head_answers_the_get_headers_without_a_body(processor: Processor) -> None:
    port = processor.metrics_port
    _, get_headers, get_body = await _exchange(port, _get("/metrics", accept=OPENMETRICS))
    status, headers, body = await _exchange(port, _get("/metrics", "HEAD", accept=OPENMETRICS))
    assert (status, headers["content-type"], body) == ("HTTP/1.1 200 OK", OPENMETRICS_CONTENT_TYPE, b"")
    # the same exposition, give or take the counters a scrape moves: the length is the GET's, near enough
    assert abs(int(headers["content-length"]) - len(get_body)) < 200
    assert get_headers["content-type"] == OPENMETRICS_CONTENT_TYPE
    status, headers, body = await _exchange(port, _get("/healthz", "HEAD"))
    assert (status, headers["content-length"], body) == ("HTTP/1.1 200 OK", "3", b"")


async def test_a_silent_or_slow_client_does_not_hold_up_a_scrape_and_is_closed(processor: Processor) -> None:
    port = processor.metrics_port
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_writer.write(b"GET /metrics HTTP/1.1\r\nHost: met")  # and never the rest
    started = time.monotonic()
    try:
        status, _, body = await _exchange(port, _get("/metrics"))
        assert status == "HTTP/1.1 200 OK" and b"genai_otel_processor_info" in body
        assert time.monotonic() - started < 0.9  # answered before the idle clients were closed
        # both are closed once HTTP_IDLE_SECONDS (1 s here) pass without a whole request
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""
        assert await asyncio.wait_for(slow_reader.read(), 5) == b""
        assert time.monotonic() - started >= 0.9
    finally:
        silent_writer.close()
        slow_writer.close()


async def test_a_huge_header_gets_400_without_being_read_whole(
    processor: Processor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = processor.metrics_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nX-Padding: ")
        status_line = b""
        with pytest.raises(ConnectionError):  # refused long before 64 MiB are sent
            for _ in range(1024):
                writer.write(b"a" * 65536)
                await writer.drain()
                if not status_line:
                    with contextlib.suppress(TimeoutError):
                        status_line = await asyncio.wait_for(reader.readline(), 0.01)
            raise AssertionError("64 MiB of one header were accepted")
        if not status_line:
            status_line = await asyncio.wait_for(reader.readline(), 5)
        assert re.match(rb"HTTP/1\.[01] 400 ", status_line), status_line
    finally:
        writer.close()
    assert (await _exchange(port, _get("/metrics")))[0] == "HTTP/1.1 200 OK"  # still serving
    many = "".join(f"X-H{i}: v\r\n" for i in range(10_000))
    status, _, _ = await _exchange(port, f"GET /metrics HTTP/1.1\r\nHost: m\r\n{many}\r\n".encode())
    assert re.match(r"HTTP/1\.[01] 400 ", status), status
    assert caplog.records == []  # the client's fault: not an error of ours, and never quoted


async def test_tls_handshake_not_started_is_closed_after_the_idle_time(
    sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = authority(tmp_path, "ca").issue(tmp_path, "processor")
    monkeypatch.setattr(service, "HTTP_IDLE_SECONDS", 1.0)
    processor = _config(sink.port, tls={"cert_file": str(pair.cert_file), "key_file": str(pair.key_file)})
    await processor.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", processor.metrics_port)
        started = time.monotonic()
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # no handshake: closed
        except ConnectionError:
            pass
        finally:
            writer.close()
        assert 0.9 <= time.monotonic() - started < 5
    finally:
        await processor.stop()
