"""docs/runbook.md has exactly one section per generated alert, at the anchor its runbook_url names."""

from __future__ import annotations

import re

from genai_otel.observability.rules import all_alerts
from genai_otel.observability.spec import REPO_ROOT, load_spec

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"


def _anchors() -> list[str]:
    # GitHub's anchor for "### LLMErrorRateHigh" is "llmerrorratehigh"
    headings = re.findall(r"^### (\S+)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return [heading.lower() for heading in headings]


def test_every_alert_links_to_its_own_runbook_section() -> None:
    spec = load_spec()
    anchors = _anchors()
    for alert in all_alerts(spec):
        rule = alert.as_rule(spec.runbook_url)
        url = rule["annotations"]["runbook_url"]  # type: ignore[index]
        assert url == f"docs/runbook.md#{alert.name.lower()}"
        assert anchors.count(url.split("#")[1]) == 1, f"{alert.name}: no single runbook section"


def test_runbook_has_no_section_for_an_alert_that_does_not_exist() -> None:
    names = {alert.name.lower() for alert in all_alerts(load_spec())}
    assert set(_anchors()) == names


def test_runbook_links_between_sections_resolve() -> None:
    links = re.findall(r"\]\(#([a-z0-9-]+)\)", RUNBOOK.read_text(encoding="utf-8"))
    assert links
    assert set(links) <= set(_anchors())
