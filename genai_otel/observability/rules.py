"""Render the spec into Prometheus rule files (`prometheus/rules/*.yml`)."""

from __future__ import annotations

from typing import Any

import yaml

from genai_otel.observability import alerts, recording, slo
from genai_otel.observability.spec import Spec

GENERATED_HEADER = (
    "# generated — do not edit. Source: prometheus/slos.yaml and genai_otel/observability/.\n"
    "# Regenerate with `genai-otel generate`; `genai-otel generate --check` fails when this file is stale.\n"
)


class _RulesDumper(yaml.SafeDumper):
    """Block style; multi-line PromQL as literal blocks so the files read like hand-written ones."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any, header: str = GENERATED_HEADER) -> str:
    body = yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=200, allow_unicode=True)
    return header + body


def all_alerts(spec: Spec) -> list[alerts.Alert]:
    """Every alert the spec produces, in file order (the runbook has one section per name)."""
    result = [
        *alerts.llm_alerts(spec),
        *alerts.cost_alerts(spec),
        *alerts.quality_alerts(spec),
        *alerts.safety_alerts(spec),
        *alerts.pipeline_alerts(spec),
        *alerts.agent_alerts(spec),
    ]
    for objective in spec.slos:
        result += slo.slo_alerts(spec, objective)
    return result


def _group(name: str, rules: list[dict[str, object]]) -> dict[str, object]:
    return {"name": name, "rules": rules}


def rule_files(spec: Spec) -> dict[str, str]:
    """File name -> content of every generated rule file."""

    def records(items: list[recording.Recording]) -> list[dict[str, object]]:
        return [item.as_rule() for item in items]

    def alerting(items: list[alerts.Alert]) -> list[dict[str, object]]:
        return [item.as_rule(spec.runbook_url) for item in items]

    files = {
        "genai-otel-recording.yml": {
            "groups": [
                _group("genai-otel-llm.rules", records(recording.llm_rules())),
                _group("genai-otel-trends.rules", records(recording.trend_rules())),
                _group("genai-otel-pipeline.rules", records(recording.pipeline_rules())),
                _group("genai-otel-agents.rules", records(recording.agent_rules())),
            ]
        },
        "genai-otel-alerts.yml": {
            "groups": [
                _group("genai-otel-llm.alerts", alerting(alerts.llm_alerts(spec))),
                _group("genai-otel-cost.alerts", alerting(alerts.cost_alerts(spec))),
                _group("genai-otel-quality.alerts", alerting(alerts.quality_alerts(spec))),
                _group("genai-otel-safety.alerts", alerting(alerts.safety_alerts(spec))),
                _group("genai-otel-pipeline.alerts", alerting(alerts.pipeline_alerts(spec))),
                _group("genai-otel-agents.alerts", alerting(alerts.agent_alerts(spec))),
            ]
        },
        "genai-otel-slos.yml": {
            "groups": [
                _group(
                    f"genai-otel-slo-{objective.name}.rules",
                    records(slo.slo_recordings(spec, objective)) + alerting(slo.slo_alerts(spec, objective)),
                )
                for objective in spec.slos
            ]
        },
    }
    return {name: dump_yaml(document) for name, document in files.items()}
