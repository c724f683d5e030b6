"""A copy of `prometheus/alertmanager.yml` with the webhook URL (and, for tests, timers) replaced.

Alertmanager reads no environment variables, so the local stack and the tests write a rendered
copy rather than edit the committed file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genai_otel.observability.spec import REPO_ROOT

ALERTMANAGER_CONFIG = REPO_ROOT / "prometheus" / "alertmanager.yml"
# group_wait / group_interval small enough for an end-to-end test to see a notification
FAST_TIMERS = {"group_wait": "1s", "group_interval": "5s", "repeat_interval": "1m"}


def render_config(
    webhook_url: str, output: Path, *, fast: bool = False, source: Path = ALERTMANAGER_CONFIG
) -> Path:
    """Write the config with every webhook receiver posting to `webhook_url`."""
    config: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    if fast:
        routes = [config["route"], *config["route"].get("routes", [])]
        for route in routes:
            for key, value in FAST_TIMERS.items():
                if key in route or route is config["route"]:
                    route[key] = value
    output.parent.mkdir(parents=True, exist_ok=True)
    header = f"# rendered from {source} by genai_otel.observability.alertmanager\n"
    output.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return output
