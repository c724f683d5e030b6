"""A real Prometheus (the pinned version) scraping the processor ingests its `_created` samples.

With `--enable-feature=created-timestamp-zero-ingestion`, Prometheus stores a zero at each new
series' created time, so `increase()` and `rate()` count a series' first increment: a model's
first error is visible, not lost as the series' first sample.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from genai_otel import semconv as sc
from genai_otel.stack.runner import free_port

from .helpers import Sink, make_request, make_span, samples, scrape
from .test_service import processor_config


def _version() -> str:
    env = Path(__file__).parents[2] / ".env"
    for line in env.read_text().splitlines():
        if line.startswith("PROMETHEUS_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("PROMETHEUS_VERSION missing from .env")


PROMETHEUS = Path.home() / ".cache" / "genai-otel" / "bin" / f"prometheus-{_version()}"
FIRST_ERROR = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    sc.ERROR_TYPE: "openai.RateLimitError",
}
SELECTOR = 'llm_requests_total{model="gpt-4o-mini",error_type="rate_limit"}'


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def _until(probe, within: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        try:
            result = await asyncio.to_thread(probe)
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("Prometheus never showed the expected data")
        await asyncio.sleep(0.2)


@pytest.mark.skipif(not PROMETHEUS.exists(), reason=f"{PROMETHEUS} not built (scripts build it)")
async def test_prometheus_ingests_created_as_a_zero_so_a_first_error_counts(tmp_path: Path) -> None:
    sink = await Sink().start()
    processor = processor_config(sink.port)
    await processor.start()
    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: processor\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{processor.metrics_port}']}}]\n"
    )
    prometheus = await asyncio.create_subprocess_exec(
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{web_port}",
        "--enable-feature=created-timestamp-zero-ingestion",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "GOMAXPROCS": "1"},
    )
    try:
        # the processor is scraped before the series exists ...
        await _until(lambda: _query(web_port, 'up{job="processor"} == 1'))
        # ... then the model's first (and only) error creates it
        request = make_request([make_span(FIRST_ERROR, error=True)])
        blocks, _ = processor.pipeline.split(request)
        processor.pipeline.process(request, blocks)
        _, exposition = await asyncio.to_thread(scrape, processor.metrics_port, True)
        (created,) = samples(exposition, "llm_requests_created").values()
        stored = await _until(lambda: _query(web_port, SELECTOR + "[1m]"))
        (series,) = stored
        # [timestamp, value]: the zero at the created time, then the first scraped sample
        first, *rest = series["values"]
        assert first == [float(created), "0"]
        assert rest and all(value == "1" for _, value in rest)
        (increase,) = _query(web_port, f"increase({SELECTOR}[1m])")
        assert float(increase["value"][1]) > 0
    finally:
        prometheus.terminate()
        await asyncio.wait_for(prometheus.wait(), 10)
        await processor.stop()
        await sink.stop()
