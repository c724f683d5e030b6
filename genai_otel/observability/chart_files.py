"""The Kubernetes chart's copies of the stack's configs, rules and dashboards.

Helm reads only files inside a chart (`.Files.Get`), so `deploy/helm/genai-otel/files/` holds copies
of what the chart deploys, written by `genai-otel generate` from their one source and checked by
`--check` like every other output: the collector configs (`collector-config/`), Jaeger's config,
the Prometheus rules (`prometheus/rules/`, which the chart turns into PrometheusRule objects) and the
Grafana dashboards (`grafana/dashboards/`, ConfigMaps for the Grafana sidecar). A copy is the
source's generated content, not its file on disk, so one `generate` run brings both up to date.
Everything under `files/` belongs to the generator: a file there that no source produces is stale.
"""

from __future__ import annotations

from pathlib import Path

CHART = Path("deploy/helm/genai-otel")
FILES = CHART / "files"

# chart copy -> source, both relative to the repository root
COPIES = {
    FILES / "collector" / "gateway.yaml": Path("collector-config/gateway.yaml"),
    FILES / "collector" / "sampler.yaml": Path("collector-config/sampler.yaml"),
    FILES / "jaeger" / "jaeger.yaml": Path("collector-config/jaeger.yaml"),
}
COPIED_FOLDERS = {
    FILES / "rules": (Path("prometheus/rules"), "*.yml"),
    FILES / "dashboards": (Path("grafana/dashboards"), "*.json"),
}


def _header(source: Path) -> str:
    return f"# generated — do not edit: a copy of {source}, written by `genai-otel generate`\n"


def outputs(root: Path, generated: dict[Path, str]) -> dict[Path, str]:
    """Chart copy -> content; `generated` holds the other outputs (a source's content is taken from
    there when it is generated, else read from `root`)."""

    def content(source: Path) -> str:
        return generated[source] if source in generated else (root / source).read_text(encoding="utf-8")

    sources = dict(COPIES)
    for target_folder, (folder, pattern) in COPIED_FOLDERS.items():
        # the generator's own outputs when it writes this folder, else what is on disk
        produced = sorted(path for path in generated if path.parent == folder and path.match(pattern))
        found = produced or sorted(path.relative_to(root) for path in (root / folder).glob(pattern))
        sources |= {target_folder / path.name: path for path in found}
    files = {}
    for target, source in sources.items():
        text = content(source)
        # JSON takes no comment; the dashboards say they are generated in their own description
        files[target] = text if source.suffix == ".json" else _header(source) + text
    return files


def stale(root: Path, expected: dict[Path, str]) -> list[Path]:
    """Files under the chart's `files/` that no source produces any more."""
    return sorted(
        path.relative_to(root)
        for path in (root / FILES).rglob("*")
        if path.is_file() and path.relative_to(root) not in expected
    )
