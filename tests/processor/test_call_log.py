"""The call log: one JSON line per counted model call, the same from the C lane and the Python
path, adding up to the metrics, written only for requests that were recorded, bounded on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from genai_otel.processors import scan as scan_module
from genai_otel.processors.call_log import FLUSH_SECONDS, CallLog
from genai_otel.processors.config import load_config
from genai_otel.processors.pricing import QUANTA_PER_USD, PriceBook, compute_cost
from genai_otel.processors.service import Processor

from genai_otel import semconv as sc

from .helpers import (
    BROKEN_SERVICE,
    EXPORT,
    T_2025_07_01,
    Sink,
    break_service,
    make_pipeline,
    make_request,
    make_span,
    run,
    samples,
    scrape,
)

PRICED = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
    sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25,
    sc.USER_ID: "user-7",
    sc.GENAI_OTEL_FEATURE: "search",
}
UNPRICED = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "acme",
    sc.GEN_AI_REQUEST_MODEL: "acme-large",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
}
FAILED = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.ERROR_TYPE: "RateLimitError",
}
REPORTED = {  # a gateway's own figure: trusted, so the Python path
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 100,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
    sc.GEN_AI_USAGE_COST_AMOUNT: 0.0125,
    sc.GEN_AI_USAGE_COST_SOURCE: "provider",
}


def _request(export: int = 0) -> bytes:
    """The same five calls, the `export`th time (span ids of their own: a repeat is no retry)."""
    ids = [bytes([export, k, 3, 4, 5, 6, 7, 8]) for k in range(5)]
    spans = [
        make_span(PRICED, trace_id=b"\x11" * 16, span_id=ids[0]),
        make_span(UNPRICED, trace_id=b"\x22" * 16, duration_s=0.5, span_id=ids[1]),
        make_span(FAILED, trace_id=b"\x33" * 16, error=True, duration_s=2.0, span_id=ids[2]),
        make_span(REPORTED, trace_id=b"\x44" * 16, span_id=ids[3]),
        make_span({"http.route": "/orders"}, name="GET /orders", trace_id=b"\x55" * 16, span_id=ids[4]),
    ]
    return make_request(spans)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(tmp_path: Path, accelerated: bool, passes: int = 3) -> tuple[list[dict[str, Any]], str, Any]:
    log = CallLog(str(tmp_path / f"calls-{accelerated}.jsonl"), 10**7, 2, user=str)
    pipeline = make_pipeline(accelerated=accelerated, call_log=log)
    for export in range(passes):
        run(pipeline, _request(export))
    log.close()
    return _lines(Path(log.path)), pipeline.registry.expose(openmetrics=False), pipeline


def test_one_line_per_counted_call_with_what_the_metrics_say(tmp_path: Path) -> None:
    lines, _, _ = _run(tmp_path, accelerated=False, passes=1)
    assert len(lines) == 4  # the HTTP span is not a model call
    rates = PriceBook().rates("openai", "gpt-4o", "gpt-4o-2024-08-06", T_2025_07_01, "")
    assert not isinstance(rates, str)
    quanta = compute_cost(rates, 1200, 300, 1000, 0).total
    assert lines[0] == {
        "service": "checkout",
        "provider": "openai",
        "operation": "chat",
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "status": "ok",
        "error_category": None,
        "cost_source": "local",
        "unpriced_reason": None,
        "time": T_2025_07_01 / 1e9 + 1.5,
        "trace_id": "11" * 16,
        "span_id": "0000030405060708",
        "tokens": {"input": 1200, "output": 300, "cache_read": 1000, "cache_write": 0, "reasoning": 0},
        "cost_usd": quanta / QUANTA_PER_USD,
        "duration_s": 1.5,
        "time_to_first_chunk_s": 0.25,
        "user": "user-7",
        "feature": "search",
    }
    unpriced, failed, reported = lines[1:]
    assert (unpriced["provider"], unpriced["cost_usd"], unpriced["unpriced_reason"]) == (
        "acme",
        None,
        "unknown_provider",
    )
    assert unpriced["tokens"]["input"] == 10
    assert (failed["status"], failed["error_category"], failed["tokens"], failed["cost_usd"]) == (
        "error",
        "rate_limit",
        None,
        None,
    )
    assert (reported["cost_source"], reported["cost_usd"]) == (
        "provider",
        int(0.0125 * QUANTA_PER_USD + 0.5) / QUANTA_PER_USD,
    )
    assert not any("prompt" in key or "completion" in key for line in lines for key in line)


@pytest.mark.skipif(scan_module._accelerator is None, reason="the C extension is not built")
def test_the_lane_writes_the_lines_the_python_path_writes(tmp_path: Path) -> None:
    c_lines, c_metrics, pipeline = _run(tmp_path, accelerated=True)
    python_lines, python_metrics, _ = _run(tmp_path, accelerated=False)
    assert pipeline.lane is not None and pipeline.lane.stats["fast"] >= 6  # passes 2 and 3: in C
    assert c_lines == python_lines
    info = sc.PROM_PROCESSOR_INFO + "{"  # accelerated="true" or "false": the one line that differs
    assert [line for line in c_metrics.splitlines() if not line.startswith(info)] == [
        line for line in python_metrics.splitlines() if not line.startswith(info)
    ]


def test_the_lines_add_up_to_the_metrics(tmp_path: Path) -> None:
    lines, exposition, _ = _run(tmp_path, accelerated=bool(scan_module._accelerator))
    requests = sum(float(v) for v in samples(exposition, sc.PROM_LLM_REQUESTS).values())
    assert len(lines) == requests == 12
    cost = sum(float(v) for v in samples(exposition, sc.PROM_LLM_COST).values())
    assert sum(line["cost_usd"] or 0.0 for line in lines) == pytest.approx(cost, rel=1e-12)
    tokens = samples(exposition, sc.PROM_LLM_TOKENS)
    for token_type in ("input", "output", "cache_read"):
        counted = sum(float(v) for k, v in tokens.items() if f'token_type="{token_type}"' in k)
        assert sum((line["tokens"] or {}).get(token_type, 0) for line in lines) == counted


def test_a_refused_request_writes_no_line(tmp_path: Path) -> None:
    log = CallLog(str(tmp_path / "calls.jsonl"), 10**6, 1, user=str)
    pipeline = make_pipeline(call_log=log)
    break_service(pipeline)
    good = make_request([make_span(PRICED)], service="fine")
    bad = make_request([make_span(PRICED)], service=BROKEN_SERVICE)
    with pytest.raises(RuntimeError):
        run(pipeline, bad)
    run(pipeline, good)
    log.close()
    assert [line["service"] for line in _lines(Path(log.path))] == ["fine"]


def test_users_are_written_as_the_user_label_is(tmp_path: Path) -> None:
    for user, expected in ((str, "user-7"), (lambda raw: raw[::-1], "7-resu"), (None, None)):
        log = CallLog(str(tmp_path / f"calls-{expected}.jsonl"), 10**6, 1, user=user)
        run(make_pipeline(call_log=log), make_request([make_span(PRICED)]))
        log.close()
        assert _lines(Path(log.path))[0]["user"] == expected


def test_the_file_is_rotated_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    log = CallLog(str(path), 4096, 2, user=str)
    pipeline = make_pipeline(call_log=log)
    for export in range(40):  # 160 lines of about 500 bytes: far more than three files of 4 KiB hold
        run(pipeline, _request(export))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["calls.jsonl", "calls.jsonl.1", "calls.jsonl.2"]
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 4096
        assert all(
            json.loads(line)["service"] == "checkout" for line in (tmp_path / name).read_text().splitlines()
        )
    assert log.lines == 160


def test_a_failed_write_loses_that_line_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "calls.jsonl"
    log = CallLog(str(path), 10**6, 1, user=str)
    pipeline = make_pipeline(call_log=log)
    run(pipeline, make_request([make_span(PRICED)]))
    log.close()
    path.unlink()
    path.mkdir()  # where the file was, a folder: opening it for the next line fails
    run(pipeline, make_request([make_span(PRICED)]))  # the request is still recorded
    assert log.dropped == 1
    assert "call log: lines could not be written" in caplog.text and "user-7" not in caplog.text
    counted = samples(pipeline.registry.expose(openmetrics=False), sc.PROM_LLM_REQUESTS)
    assert sum(float(v) for v in counted.values()) == 2


async def test_the_service_writes_the_log_it_is_configured_with_hashing_users(tmp_path: Path) -> None:
    key_file = tmp_path / "user.key"
    key_file.write_bytes(b"a-test-key-of-32-bytes-0123456789\n")
    path = tmp_path / "log" / "calls.jsonl"
    sink = await Sink().start()
    config = load_config(
        {
            "listen": "127.0.0.1:0",
            "metrics_listen": "127.0.0.1:0",
            "forward": {"endpoint": f"127.0.0.1:{sink.port}"},
            "labels": {"user_id": "hmac", "user_id_hmac_key_file": str(key_file)},
        },
        environ={"GENAI_OTEL_PROCESSOR_CALL_LOG__PATH": str(path)},
    )
    processor = Processor(config)
    await processor.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor.port}") as channel:
            await channel.unary_unary(EXPORT)(_request())
        _, body = await asyncio.to_thread(scrape, processor.metrics_port)
        await asyncio.sleep(FLUSH_SECONDS + 0.5)  # flushed within a second, without a stop
        lines = _lines(path)
    finally:
        await processor.stop()
        await sink.stop()
    assert len(lines) == sum(float(v) for v in samples(body, sc.PROM_LLM_REQUESTS).values()) == 4
    users = {line["user"] for line in lines} - {None}
    assert len(users) == 1 and users != {"user-7"}  # written as the label is: its keyed hash
    assert f'user="{users.pop()}"' in body
