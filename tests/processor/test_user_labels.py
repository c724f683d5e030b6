"""`labels.user_id`: raw ids, a short keyed hash (hmac) or no user label (drop), on every path."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.config import ConfigError, load_config
from genai_otel.processors.metrics import ALL_LABELS, Registry, hmac_label
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PRICE_TABLE_VERSION, PriceBook
from genai_otel.processors.service import Processor

from genai_otel import semconv as sc

from .helpers import EXPORT, GENAI, Sink, StepClock, make_request, make_span, run, samples, scrape

KEY = b"a-test-key-of-32-bytes-0123456789"
USERS = ("alice@example.com", "bob@example.com", "carol@example.com")


def hashed(user: str) -> str:
    return hmac.new(KEY, user.encode(), hashlib.sha256).hexdigest()[:16]


def request() -> bytes:
    """Each user twice (alice four times), priced gpt-4o calls of 0.0035 USD each."""
    users = [*USERS, *USERS, USERS[0], USERS[0]]
    return make_request([make_span({**GENAI, sc.USER_ID: user}) for user in users], service="shop")


def exposition(accelerated: bool, top_users: int, user_label: Any = None, allowed: Any = ALL_LABELS) -> str:
    config = load_config(environ={})
    registry = Registry(
        label_limits=config.labels.max_values,
        allowed_labels=allowed,
        top_users=top_users,
        top_features=config.labels.top_features,
        exemplars=True,
        price_table=PRICE_TABLE_VERSION,
        user_label=user_label,
        clock=StepClock(),
    )
    pipeline = Pipeline(registry, PriceBook(), accelerated=accelerated)
    for _ in range(3):  # the second and third passes run through what the C lane learned
        run(pipeline, request())
    return "\n".join(
        line for line in registry.expose(openmetrics=True).splitlines() if sc.PROM_PROCESSOR_INFO not in line
    )


PATHS = [False, True] if scan_module.accelerated_available() else [False]


@pytest.mark.parametrize("accelerated", PATHS, ids=lambda a: "C lane" if a else "Python")
def test_hmac_labels_users_by_a_keyed_hash_and_caps_them_as_raw_ids_are(accelerated: bool) -> None:
    text = exposition(accelerated, top_users=2, user_label=hmac_label(KEY))
    costs = samples(text, sc.PROM_LLM_USER_COST)
    # alice and bob admitted under their hashes, carol over the cap of 2: `other`
    alice, bob = (f'{{service="shop",user="{hashed(user)}"}}' for user in USERS[:2])
    assert set(costs) == {alice, bob, '{service="shop",user="other"}'}
    assert float(costs[alice]) == pytest.approx(12 * 0.0035, rel=1e-6)
    assert float(costs[bob]) == pytest.approx(6 * 0.0035, rel=1e-6)
    assert float(costs['{service="shop",user="other"}']) == pytest.approx(6 * 0.0035, rel=1e-6)
    # one overflow per call of carol's, as with raw ids
    assert samples(text, "genai_otel_processor_label_overflow_total") == {'{label="user"}': "6"}
    assert not any(user in text for user in USERS) and "alice" not in text


def test_the_c_lane_and_python_write_the_same_exposition_in_every_mode() -> None:
    if not scan_module.accelerated_available():
        pytest.skip("the _wirescan extension is not built")
    for options in (
        {"top_users": 2, "user_label": hmac_label(KEY)},
        {"top_users": 100, "user_label": hmac_label(KEY)},
        {"top_users": 2, "allowed": [label for label in ALL_LABELS if label != sc.LABEL_USER]},
        {"top_users": 2},
    ):
        assert exposition(True, **options) == exposition(False, **options)


def test_drop_keeps_user_cost_per_service_only(tmp_path: Path) -> None:
    text = exposition(
        bool(scan_module.accelerated_available()),
        top_users=2,
        allowed=[label for label in ALL_LABELS if label != sc.LABEL_USER],
    )
    costs = samples(text, sc.PROM_LLM_USER_COST)
    assert list(costs) == ['{service="shop"}']
    assert float(costs['{service="shop"}']) == pytest.approx(24 * 0.0035, rel=1e-6)
    assert "alice" not in text


def test_hmac_needs_a_readable_key_of_16_bytes_or_more(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"tiny-secret")
    with pytest.raises(ConfigError) as caught:
        load_config({"labels": {"user_id": "hmac"}}, environ={})
    assert "user_id=hmac needs user_id_hmac_key_file" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_config({"labels": {"user_id": "hmac", "user_id_hmac_key_file": str(short)}}, environ={})
    assert "at least 16 bytes" in str(caught.value) and "tiny-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(
            {"labels": {"user_id": "hmac", "user_id_hmac_key_file": str(tmp_path / "missing")}}, environ={}
        )
    with pytest.raises(ConfigError, match="user_id"):
        load_config({"labels": {"user_id": "sha1"}}, environ={})


async def test_the_service_exposes_hashed_users_and_never_logs_a_raw_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "user.key"
    key_file.write_bytes(KEY + b"\n")
    sink = await Sink().start()
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "log_level": "DEBUG",
            "forward": {"endpoint": f"127.0.0.1:{sink.port}"},
            "labels": {"user_id": "hmac", "user_id_hmac_key_file": str(key_file)},
        },
        environ={},
    )
    processor = Processor(config)
    await processor.start()
    try:
        with caplog.at_level(logging.DEBUG):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
                await channel.unary_unary(EXPORT)(request())
            _, body = await asyncio.to_thread(scrape, processor.metrics_port)
    finally:
        await processor.stop()
        await sink.stop()
    costs = samples(body, sc.PROM_LLM_USER_COST)
    assert set(costs) == {f'{{service="shop",user="{hashed(user)}"}}' for user in USERS}
    assert not any(user in body or user in caplog.text for user in USERS)
    assert KEY.decode() not in caplog.text
