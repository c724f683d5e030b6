"""`genai-otel generate`: Prometheus rules and Grafana dashboards from their sources.

See `genai_otel.observability.generate`; `--check` fails when a committed output is stale. The
dashboards are written with grafana-foundation-sdk, an optional dependency (the `dashboards`
extra): without it the command says which extra to install instead of failing on an import.
"""

from __future__ import annotations

import sys

DASHBOARDS_EXTRA = "genai-otel[dashboards]"


def main(argv: list[str] | None = None) -> int:
    try:
        from genai_otel.observability.generate import main as generate
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("grafana_foundation_sdk"):
            raise
        print(
            "genai-otel generate: the dashboards are built with grafana-foundation-sdk, which is not "
            f"installed here: pip install '{DASHBOARDS_EXTRA}'",
            file=sys.stderr,
        )
        return 2
    return generate(argv)


__all__ = ["main"]
