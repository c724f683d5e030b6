"""`genai-otel generate`: Prometheus rules and Grafana dashboards from their sources.

See `genai_otel.observability.generate`; `--check` fails when a committed output is stale.
"""

from __future__ import annotations

from genai_otel.observability.generate import main

__all__ = ["main"]
