"""The collector and Jaeger configs are valid for the binaries the stack runs, built from our manifest."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from genai_otel.stack import build
from genai_otel.stack.env import REPO_ROOT, read_env_file
from genai_otel.stack.runner import LocalStack, configured_ports

CONFIG_DIR = REPO_ROOT / "collector-config"
ENV = read_env_file()


def _binary_or_skip(role: str) -> Path:
    path = build.binary(role)
    if not os.access(path, os.X_OK):
        message = f"{path} is not built (run scripts/build-components)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: in CI the real binaries are required")
        pytest.skip(message)
    return path


def _service_env(name: str, tmp_path: Path) -> dict[str, str]:
    stack = LocalStack(tmp_path / "run", ports=configured_ports(), build_missing=False)
    binaries = dict.fromkeys(("collector", "jaeger", "prometheus", "alertmanager"), Path())
    return {**os.environ, **stack._specs(binaries)[name].env}


def _validate(binary: Path, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "validate", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_collector_config_is_valid(tmp_path: Path) -> None:
    collector = _binary_or_skip("collector")
    result = _validate(collector, CONFIG_DIR / "collector.yaml", _service_env("collector", tmp_path))
    assert result.returncode == 0, result.stderr


def test_collector_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    """Proves the check above can fail: a pipeline naming an exporter that is not configured."""
    collector = _binary_or_skip("collector")
    config = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())
    config["service"]["pipelines"]["traces"]["exporters"] = ["otlp/nowhere"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = _validate(collector, broken, _service_env("collector", tmp_path))
    assert result.returncode != 0
    assert "otlp/nowhere" in result.stderr


def test_jaeger_config_is_valid(tmp_path: Path) -> None:
    jaeger = _binary_or_skip("jaeger")
    result = _validate(jaeger, CONFIG_DIR / "jaeger.yaml", _service_env("jaeger", tmp_path))
    assert result.returncode == 0, result.stderr


def test_builder_manifest_pins_every_component_to_the_collector_version() -> None:
    manifest = yaml.safe_load((CONFIG_DIR / "builder-config.yaml").read_text())
    assert manifest["dist"]["version"] == "${COLLECTOR_VERSION}"
    modules = [
        entry["gomod"]
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors")
        for entry in manifest.get(kind, [])
    ]
    assert modules
    for module in modules:
        path, version = module.split()
        assert version == "v${COLLECTOR_VERSION}", module
        assert re.match(
            r"^(go\.opentelemetry\.io/collector|github\.com/open-telemetry/opentelemetry-collector-contrib)/",
            path,
        )


def test_every_component_the_config_uses_is_in_the_manifest() -> None:
    config = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())
    manifest = (CONFIG_DIR / "builder-config.yaml").read_text()
    module_of = {
        "otlp": "otlpreceiver",
        "memory_limiter": "memorylimiterprocessor",
        "batch": "batchprocessor",
        "tail_sampling": "tailsamplingprocessor",
        "prometheus": "prometheusexporter",
        "debug": "debugexporter",
        "health_check": "healthcheckextension",
        "file_storage": "filestorage",
    }
    for section in ("receivers", "processors", "exporters", "extensions"):
        for name in config[section]:
            kind = name.split("/")[0]
            if section == "exporters" and kind == "otlp_grpc":
                assert "/otlpexporter " in manifest
                continue
            assert f"/{module_of[kind]} " in manifest, f"{section} {name}"


def test_tail_sampling_keeps_errors_slow_expensive_and_unpriced_calls() -> None:
    config = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())
    policies = {p["name"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["keep-errors"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["keep-slow"]["latency"]["threshold_ms"] == "${env:TAIL_SAMPLING_SLOW_MS:-5000}"
    (condition,) = policies["keep-expensive"]["ottl_condition"]["span"]
    assert 'span.attributes["gen_ai.usage.cost.amount"]' in condition
    assert policies["keep-unpriced"]["string_attribute"]["key"] == "genai_otel.cost.unpriced_reason"
    strata = [p for name, p in policies.items() if name.startswith("share-")]
    models = [p["and"]["and_sub_policy"][0]["string_attribute"]["key"] for p in strata]
    assert set(models) == {"gen_ai.request.model"}
    assert all(p["and"]["and_sub_policy"][1]["type"] == "probabilistic" for p in strata)


def _render_prometheus(tmp_path: Path, values: dict[str, str]) -> Path:
    from genai_otel.stack.runner import PROMETHEUS_TEMPLATE, render_template

    return render_template(PROMETHEUS_TEMPLATE, values, tmp_path / "prometheus.yml")


def test_rendered_prometheus_config_passes_promtool_locally_and_for_compose(tmp_path: Path) -> None:
    promtool = _binary_or_skip("promtool")
    local = LocalStack(tmp_path / "run", ports=configured_ports(), build_missing=False).prometheus_values()
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["config-init"]
    compose_values = {**compose["environment"], "RULES_DIR": str(REPO_ROOT / "prometheus" / "rules")}
    for values in (local, compose_values):
        config = _render_prometheus(tmp_path, values)
        result = subprocess.run(
            [str(promtool), "check", "config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    rendered = yaml.safe_load(config.read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in rendered["scrape_configs"]}
    assert jobs["genai-otel-processor"] == ["processor:9464"]
    assert jobs["otel-collector"] == ["collector:8888"]


def test_alertmanager_config_passes_amtool() -> None:
    amtool = _binary_or_skip("amtool")
    result = subprocess.run(
        [str(amtool), "check-config", str(REPO_ROOT / "prometheus" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_enriched_receiver_and_the_processor_share_one_message_size_from_env(tmp_path: Path) -> None:
    from genai_otel.processors.config import ProcessorConfig, load_config

    mib = int(ENV["ENRICHED_MAX_RECV_MSG_MIB"])
    config = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())
    grpc = config["receivers"]["otlp/enriched"]["protocols"]["grpc"]
    assert grpc["max_recv_msg_size_mib"] == "${env:ENRICHED_MAX_RECV_MSG_MIB}"
    assert ProcessorConfig().forward.max_message_bytes == mib * 1024 * 1024  # the default agrees
    # the local stack hands the one value to both processes, whatever it is set to
    stack = LocalStack(
        tmp_path / "run", ports=configured_ports(), build_missing=False, enriched_max_recv_msg_mib=7
    )
    specs = stack._specs(dict.fromkeys(("collector", "jaeger", "prometheus", "alertmanager"), Path()))
    assert specs["collector"].env["ENRICHED_MAX_RECV_MSG_MIB"] == "7"
    processor = load_config(environ=specs["processor"].env)
    assert (processor.forward.max_message_bytes, processor.forward.batch_bytes) == (7 * 1024 * 1024,) * 2
    default = LocalStack(tmp_path / "run", ports=configured_ports(), build_missing=False)
    assert default.enriched_max_recv_msg_mib == mib
