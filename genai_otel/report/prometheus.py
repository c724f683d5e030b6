"""Prometheus's query and query_range APIs with clear errors: the one client of the report and the
stack's checks (`genai_otel.stack.query`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

Labels = dict[str, str]
Sample = tuple[Labels, float]
Series = tuple[Labels, list[tuple[float, float]]]


class PrometheusError(RuntimeError):
    """Prometheus cannot be reached or refused a query; the message is meant for the user."""


@dataclass(frozen=True)
class PrometheusClient:
    url: str
    timeout: float = 15.0

    def _get(self, path: str, params: dict[str, str]) -> Any:
        address = f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            try:
                detail = json.load(error).get("error") or error.reason
            except ValueError:
                detail = error.reason
            raise PrometheusError(
                f"Prometheus at {self.url} refused {params.get('query')!r}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise PrometheusError(f"{self.url} did not answer with Prometheus API JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus at {self.url} failed {params.get('query')!r}: {detail}")
        return body["data"]

    def vector(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result items as the API gives them (`metric`, `value`); now by default."""
        params = {"query": expr} if at is None else {"query": expr, "time": repr(at)}
        return list(self._get("/api/v1/query", params).get("result", []))

    def query(self, expr: str, at: float) -> list[Sample]:
        return [(dict(item["metric"]), float(item["value"][1])) for item in self.vector(expr, at)]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
        data = self._get("/api/v1/query_range", params)
        return [
            (dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
            for item in data.get("result", [])
        ]
