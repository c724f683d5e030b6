"""Generated dashboards: Grafana's typed models read them back unchanged; every panel is complete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from genai_otel.observability import dashboards, recording
from genai_otel.observability.spec import REPO_ROOT

DASHBOARD_FILES = sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = REPO_ROOT / "grafana" / "provisioning"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _provisioned_uids() -> dict[str, str]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text(encoding="utf-8"))
    return {source["uid"]: source["type"] for source in config["datasources"]}


def test_the_six_dashboards_exist() -> None:
    titles = {_load(path)["title"] for path in DASHBOARD_FILES}
    assert titles == {
        "GenAI: Overview",
        "GenAI: Cost",
        "GenAI: Latency & SLO",
        "GenAI: Errors",
        "GenAI: Quality & drift",
        "GenAI: Pipeline health",
    }


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_round_trip_through_the_sdk_models(path: Path) -> None:
    original = _load(path)
    model = Dashboard.from_json(original)
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == original


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_lies_inside_the_24_column_grid_without_overlapping(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in _load(path)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{path.name}: {panel['title']!r} at {pos}"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{path.name}: {panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_has_title_unit_description_and_a_provisioned_datasource(path: Path) -> None:
    provisioned = _provisioned_uids()
    dashboard = _load(path)
    assert "generated — do not edit" in dashboard["description"]
    for panel in _panels(dashboard):
        where = f"{path.name}: {panel.get('title')!r}"
        assert panel["title"].strip(), where
        assert panel["description"].strip(), where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        refs = [panel["datasource"]] + [target["datasource"] for target in panel["targets"]]
        for ref in refs:
            assert provisioned.get(ref["uid"]) == ref["type"], f"{where}: unprovisioned datasource {ref}"
        assert panel["targets"], where
    for variable in dashboard["templating"]["list"]:
        assert provisioned.get(variable["datasource"]["uid"]) == "prometheus"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_service_provider_and_model_variables_filter_the_panels(path: Path) -> None:
    dashboard = _load(path)
    variables = [v["name"] for v in dashboard["templating"]["list"]]
    assert variables == ["service", "provider", "model"]
    # llm_* queries honour the selection; pipeline queries (processor, collector) have no such labels
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            if not re.search(r"\bllm_|:llm_", expr) or "slo:" in expr:
                continue
            # unpriced calls carry no service label (llm_unpriced_requests_total{provider,model,reason})
            wanted = ["$provider", "$model"] if "unpriced" in expr else ["$service"]
            for variable in wanted:
                assert f'{variable}"' in expr, f"{path.name}: {panel['title']}: {expr}"


def test_panels_read_recorded_series_where_one_exists() -> None:
    """A raw rate over a window that a recording rule already records is a missed reuse."""
    recorded = {
        (name.split(":")[1].removesuffix("_bucket"), name.split(":")[2].removeprefix("rate"))
        for name in vars(recording).values()
        if isinstance(name, str) and name.count(":") == 2 and ":rate" in name
    }
    for path in DASHBOARD_FILES:
        for panel in _panels(_load(path)):
            if any(target.get("exemplar") for target in panel["targets"]):
                continue  # exemplars exist only on raw series
            for target in panel["targets"]:
                raw_rates = re.findall(
                    r"rate\((llm_[a-z_]+?)(?:_total|_bucket)?\{[^}]*\}\[(\w+)\]", target["expr"]
                )
                for metric, window in raw_rates:
                    assert (metric, window) not in recorded, (
                        f"{path.name}: {panel['title']}: {target['expr']}"
                    )


def test_prometheus_datasource_links_exemplars_to_jaeger() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text(encoding="utf-8"))
    by_type = {source["type"]: source for source in config["datasources"]}
    assert by_type["prometheus"]["uid"] == dashboards.DATASOURCE_PROMETHEUS
    assert by_type["jaeger"]["uid"] == dashboards.DATASOURCE_JAEGER
    (link,) = by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link == {"name": "trace_id", "datasourceUid": dashboards.DATASOURCE_JAEGER}


def test_dashboard_provider_loads_the_generated_folder() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "genai-otel.yaml").read_text(encoding="utf-8"))
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/dashboards")
