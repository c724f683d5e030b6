"""/metrics with TLS and bearer or basic auth (`metrics.*`): refused without the credentials,
served with them, rotated by replacing a file, and no secret in the log."""

from __future__ import annotations

import base64
import logging
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.service import Processor

from tests.certs import authority

from .helpers import Sink

TOKEN = "s3cret-token-0123456789"


async def _started(forward_port: int, metrics: dict[str, Any]) -> Processor:
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "shutdown_grace_seconds": 2,
            "forward": {"endpoint": f"127.0.0.1:{forward_port}"},
            "metrics": metrics,
        },
        environ={},
    )
    processor = Processor(config)
    await processor.start()
    return processor


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = await Sink().start()
    yield sink
    await sink.stop()


@pytest.fixture
async def running(sink: Sink) -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    started: list[Processor] = []

    async def start(metrics: dict[str, Any]) -> Processor:
        processor = await _started(sink.port, metrics)
        started.append(processor)
        return processor

    yield start
    for processor in started:
        await processor.stop()


def _get(
    url: str, authorization: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def _fetch(*args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    import asyncio

    return await asyncio.to_thread(_get, *args, **kwargs)


async def test_bearer_token_guards_metrics_but_not_healthz(
    tmp_path: Path, running: Callable[[dict[str, Any]], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    processor = await running({"auth": {"bearer_token_file": str(token_file)}})
    base = f"http://127.0.0.1:{processor.metrics_port}"

    status, headers, body = await _fetch(f"{base}/metrics")
    assert (status, headers["WWW-Authenticate"], body) == (401, 'Bearer realm="metrics"', b"unauthorized\n")
    for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        assert (await _fetch(f"{base}/metrics", wrong))[0] == 401, wrong
    status, _, body = await _fetch(f"{base}/metrics", f"Bearer {TOKEN}")
    assert status == 200
    assert b"genai_otel_processor_info{accelerated=" in body
    assert (await _fetch(f"{base}/healthz"))[:3:2] == (200, b"ok\n")

    # rotation: the new token is accepted at once, the old one no longer
    token_file.write_text("rotated-token-abcdef\n")
    os.utime(token_file, ns=(1, 1))  # a distinct mtime even within the filesystem's resolution
    assert (await _fetch(f"{base}/metrics", "Bearer rotated-token-abcdef"))[0] == 200
    assert (await _fetch(f"{base}/metrics", f"Bearer {TOKEN}"))[0] == 401
    assert TOKEN not in caplog.text
    assert "rotated-token" not in caplog.text


async def test_basic_auth_accepts_only_a_listed_user_and_password(
    tmp_path: Path, running: Callable[[dict[str, Any]], Any]
) -> None:
    users = tmp_path / "users"
    users.write_text("prometheus:pa55:word\nother:second\n")
    processor = await running({"auth": {"basic_users_file": str(users)}})
    url = f"http://127.0.0.1:{processor.metrics_port}/metrics"

    def basic(user_password: str) -> str:
        return "Basic " + base64.b64encode(user_password.encode()).decode()

    status, headers, _ = await _fetch(url)
    assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="metrics"')
    assert (await _fetch(url, basic("prometheus:pa55:word")))[0] == 200
    assert (await _fetch(url, basic("other:second")))[0] == 200
    for wrong in ("prometheus:pa55", "other:pa55:word", "prometheus:", ":", "nobody"):
        assert (await _fetch(url, basic(wrong)))[0] == 401, wrong
    assert (await _fetch(url, "Basic not-base64!"))[0] == 401


async def test_tls_serves_metrics_refuses_plaintext_and_picks_up_a_new_certificate(
    tmp_path: Path, running: Callable[[dict[str, Any]], Any]
) -> None:
    first_ca = authority(tmp_path / "first", "first-ca")
    pair = first_ca.issue(tmp_path / "first", "processor")
    cert, key = tmp_path / "metrics.crt", tmp_path / "metrics.key"
    cert.write_bytes(pair.cert_file.read_bytes())
    key.write_bytes(pair.key_file.read_bytes())
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    processor = await running(
        {
            "tls": {"cert_file": str(cert), "key_file": str(key)},
            "auth": {"bearer_token_file": str(token_file)},
        }
    )
    port = processor.metrics_port
    trusts_first = ssl.create_default_context(cafile=str(first_ca.cert_file))

    status, _, body = await _fetch(f"https://127.0.0.1:{port}/metrics", f"Bearer {TOKEN}", trusts_first)
    assert status == 200 and b"genai_otel_processor_info{accelerated=" in body
    assert (await _fetch(f"https://127.0.0.1:{port}/metrics", None, trusts_first))[0] == 401
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # no HTTP answer in clear text
        await _fetch(f"http://127.0.0.1:{port}/metrics", f"Bearer {TOKEN}")

    # rotation: the files are replaced by a pair from another CA; new connections get it
    second_ca = authority(tmp_path / "second", "second-ca")
    renewed = second_ca.issue(tmp_path / "second", "processor")
    cert.write_bytes(renewed.cert_file.read_bytes())
    key.write_bytes(renewed.key_file.read_bytes())
    trusts_second = ssl.create_default_context(cafile=str(second_ca.cert_file))
    status, _, _ = await _fetch(f"https://127.0.0.1:{port}/metrics", f"Bearer {TOKEN}", trusts_second)
    assert status == 200
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        await _fetch(f"https://127.0.0.1:{port}/metrics", f"Bearer {TOKEN}", trusts_first)


def test_metrics_security_settings_are_checked_at_start(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("x")
    with pytest.raises(ConfigError, match=r"metrics\.auth\.bearer_token_file=.*must be a readable file"):
        load_config({"metrics": {"auth": {"bearer_token_file": str(tmp_path / "absent")}}}, environ={})
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config({"metrics": {"tls": {"cert_file": str(present)}}}, environ={})
    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(
            {"metrics": {"auth": {"bearer_token_file": str(present), "basic_users_file": str(present)}}},
            environ={},
        )
    from_env = load_config(environ={"GENAI_OTEL_PROCESSOR_METRICS__AUTH__BEARER_TOKEN_FILE": str(present)})
    assert from_env.metrics.auth.bearer_token_file == present
