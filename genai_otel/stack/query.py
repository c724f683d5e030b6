"""Read a running stack back: Jaeger's and Prometheus's HTTP APIs, and polling until data arrives.

Used by the end-to-end tests and by anything that checks a live stack (dashboards, alerts).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from genai_otel.report.prometheus import PrometheusClient

T = TypeVar("T")


def get_json(url: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.5, what: str = ""
) -> T:
    """Poll `probe` until it returns something other than None; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout:.0f}s")
        time.sleep(interval)


def jaeger_trace(jaeger_url: str, trace_id: str) -> dict[str, Any] | None:
    """One trace (Jaeger's /api/traces/{id} format), or None while Jaeger does not have it."""
    try:
        body = get_json(f"{jaeger_url}/api/traces/{trace_id}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    traces = body.get("data") or []
    return traces[0] if traces else None


def jaeger_traces(jaeger_url: str, service: str, limit: int = 1000) -> list[dict[str, Any]]:
    body = get_json(f"{jaeger_url}/api/traces", {"service": service, "limit": str(limit), "lookback": "1h"})
    return list(body.get("data") or [])


def span_tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def prometheus_query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector, now; raises PrometheusError if Prometheus reports an error."""
    return PrometheusClient(prometheus_url, timeout=10.0).vector(expr)


def prometheus_scalar(prometheus_url: str, expr: str) -> float | None:
    """The single value of an instant query, or None when the result is empty."""
    result = prometheus_query(prometheus_url, expr)
    if not result:
        return None
    (sample,) = result
    return float(sample["value"][1])
