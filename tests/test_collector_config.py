"""The collector and Jaeger configs are valid for the binaries the stack runs, built from our manifest."""

from __future__ import annotations

import itertools
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


@pytest.mark.parametrize("config_name", ["collector.yaml", "gateway.yaml", "sampler.yaml"])
def test_every_component_the_config_uses_is_in_the_manifest(config_name: str) -> None:
    config = yaml.safe_load((CONFIG_DIR / config_name).read_text())
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
        "filter": "filterprocessor",
        "loadbalancing": "loadbalancingexporter",
        "forward": "forwardconnector",
    }
    for section in ("receivers", "processors", "exporters", "extensions", "connectors"):
        for name in config.get(section, {}):
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


# --- security overlays (collector-config/security*.yaml, docs/security.md) ---------------------------

SECURITY_ENV = {
    "PROCESSOR_BEARER_TOKEN_FILE": "/run/secrets/processor.token",
    "PROCESSOR_TLS_CA_FILE": "/run/secrets/ca.crt",
    "ENRICHED_BEARER_TOKEN_FILE": "/run/secrets/enriched.token",
    "ENRICHED_TLS_CERT_FILE": "/run/secrets/enriched.crt",
    "ENRICHED_TLS_KEY_FILE": "/run/secrets/enriched.key",
}


def _validate_all(binary: Path, configs: list[Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [arg for config in configs for arg in ("--config", str(config))]
    return subprocess.run(
        [str(binary), "validate", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_collector_config_with_the_security_overlays_is_valid(tmp_path: Path) -> None:
    collector = _binary_or_skip("collector")
    env = {**_service_env("collector", tmp_path), **SECURITY_ENV}
    overlays = [CONFIG_DIR / "security.yaml", CONFIG_DIR / "security-enriched-tls.yaml"]
    for configs in ([CONFIG_DIR / "collector.yaml", overlays[0]], [CONFIG_DIR / "collector.yaml", *overlays]):
        result = _validate_all(collector, configs, env)
        assert result.returncode == 0, result.stderr
    # proves the check can fail: the service names an extension the overlay no longer defines
    broken = tmp_path / "broken.yaml"
    text = (CONFIG_DIR / "security.yaml").read_text()
    broken.write_text(text.replace("  bearertokenauth/enriched:\n", "  bearertokenauth/elsewhere:\n", 1))
    result = _validate_all(collector, [CONFIG_DIR / "collector.yaml", broken], env)
    assert result.returncode != 0
    assert "bearertokenauth/enriched" in result.stderr


def test_the_security_overlay_keeps_the_base_extensions_and_secures_both_hops() -> None:
    base = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())
    overlay = yaml.safe_load((CONFIG_DIR / "security.yaml").read_text())
    # lists are replaced, not merged, by the collector: the overlay must repeat the base's
    added = ["bearertokenauth/processor", "bearertokenauth/enriched"]
    assert overlay["service"]["extensions"] == base["service"]["extensions"] + added
    assert set(overlay) == {"extensions", "receivers", "exporters", "service"}
    exporter = overlay["exporters"]["otlp_grpc/processor"]
    assert exporter["auth"] == {"authenticator": "bearertokenauth/processor"}
    assert exporter["tls"]["insecure"] is False
    assert exporter["tls"]["ca_file"] == "${env:PROCESSOR_TLS_CA_FILE}"
    receiver = overlay["receivers"]["otlp/enriched"]["protocols"]["grpc"]
    assert receiver == {"auth": {"authenticator": "bearertokenauth/enriched"}}
    manifest = (CONFIG_DIR / "builder-config.yaml").read_text()
    assert "/bearertokenauthextension v${COLLECTOR_VERSION}" in manifest
    # plaintext stays the default of collector.yaml itself
    assert base["exporters"]["otlp_grpc/processor"]["tls"] == {"insecure": True}
    assert "auth" not in base["receivers"]["otlp/enriched"]["protocols"]["grpc"]


def test_the_stack_adds_the_overlays_only_when_their_variables_are_set(tmp_path: Path) -> None:
    from genai_otel.stack.runner import StackError

    def collector_configs(**env: str) -> list[str]:
        stack = LocalStack(tmp_path / "run", ports=configured_ports(), build_missing=False, collector_env=env)
        command = stack._specs({"collector": Path("otelcol")})["collector"].command
        return [Path(arg).name for flag, arg in itertools.pairwise(command) if flag == "--config"]

    assert collector_configs() == ["collector.yaml"]
    tokens = {key: value for key, value in SECURITY_ENV.items() if not key.startswith("ENRICHED_TLS")}
    assert collector_configs(**tokens) == ["collector.yaml", "security.yaml"]
    assert collector_configs(**SECURITY_ENV) == [
        "collector.yaml",
        "security.yaml",
        "security-enriched-tls.yaml",
    ]
    with pytest.raises(StackError, match="PROCESSOR_TLS_CA_FILE, ENRICHED_BEARER_TOKEN_FILE"):
        collector_configs(PROCESSOR_BEARER_TOKEN_FILE="/t")
    with pytest.raises(StackError, match="without its token"):
        collector_configs(ENRICHED_TLS_CERT_FILE="/c", ENRICHED_TLS_KEY_FILE="/k")


def test_the_processor_scrape_job_gets_tls_and_credentials_when_set(tmp_path: Path) -> None:
    promtool = _binary_or_skip("promtool")
    values = {
        **LocalStack(tmp_path / "run", ports=configured_ports(), build_missing=False).prometheus_values(),
        "PROCESSOR_METRICS_CA_FILE": "/run/secrets/ca.crt",
    }
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for variables, expected in (
        (
            {"PROCESSOR_METRICS_BEARER_TOKEN_FILE": str(secrets / "token")},
            {"authorization": {"type": "Bearer", "credentials_file": str(secrets / "token")}},
        ),
        (
            {
                "PROCESSOR_METRICS_BASIC_AUTH_USERNAME": "prometheus",
                "PROCESSOR_METRICS_BASIC_AUTH_PASSWORD_FILE": str(secrets / "password"),
            },
            {"basic_auth": {"username": "prometheus", "password_file": str(secrets / "password")}},
        ),
    ):
        config = _render_prometheus(tmp_path, {**values, **variables})
        result = subprocess.run(
            [str(promtool), "check", "config", "--syntax-only", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        jobs = {job["job_name"]: job for job in yaml.safe_load(config.read_text())["scrape_configs"]}
        processor = jobs["genai-otel-processor"]
        assert processor["scheme"] == "https"
        assert processor["tls_config"] == {"ca_file": "/run/secrets/ca.crt"}
        assert {key: processor[key] for key in expected} == expected
        assert all("scheme" not in job for name, job in jobs.items() if name != "genai-otel-processor")
    plain = _render_prometheus(
        tmp_path, LocalStack(tmp_path / "run", build_missing=False).prometheus_values()
    )
    assert "https" not in plain.read_text()


def _scale_out_env(tmp_path: Path) -> dict[str, str]:
    stack = LocalStack(
        tmp_path / "run", ports=configured_ports(), build_missing=False, processors=2, samplers=2
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "processor-endpoints.yaml").write_text(
        yaml.safe_dump(stack.processor_otlp_endpoints())
    )
    binaries = dict.fromkeys(("collector", "jaeger", "prometheus", "alertmanager"), Path())
    specs = stack._specs(binaries)
    return {**os.environ, **specs["collector"].env, **specs["sampler-1"].env}


@pytest.mark.parametrize("config_name", ["gateway.yaml", "sampler.yaml"])
def test_the_scale_out_configs_are_valid(tmp_path: Path, config_name: str) -> None:
    collector = _binary_or_skip("collector")
    result = _validate(collector, CONFIG_DIR / config_name, _scale_out_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_genai_split_is_the_processors_marker_list_in_both_directions() -> None:
    from genai_otel.processors.normalise import MARKER_KEYS

    for name in ("collector.yaml", "gateway.yaml"):
        processors = yaml.safe_load((CONFIG_DIR / name).read_text())["processors"]
        (drop_plain,) = processors["filter/genai-only"]["trace_conditions"]
        (drop_genai,) = processors["filter/not-genai"]["trace_conditions"]
        assert drop_plain == " and ".join(
            [*(f'span.attributes["{key}"] == nil' for key in MARKER_KEYS), "Len(span.events) == 0"]
        )
        assert drop_genai == " or ".join(
            [*(f'span.attributes["{key}"] != nil' for key in MARKER_KEYS), "Len(span.events) > 0"]
        )


def test_the_sampler_samples_with_the_single_collectors_policies() -> None:
    single = yaml.safe_load((CONFIG_DIR / "collector.yaml").read_text())["processors"]["tail_sampling"]
    sampler = yaml.safe_load((CONFIG_DIR / "sampler.yaml").read_text())["processors"]["tail_sampling"]
    assert sampler == single


def test_both_tiers_route_by_trace_id() -> None:
    exporters = yaml.safe_load((CONFIG_DIR / "gateway.yaml").read_text())["exporters"]
    assert exporters["loadbalancing/processors"]["routing_key"] == "traceID"
    assert exporters["loadbalancing/samplers"]["routing_key"] == "traceID"
    # a failed request returns to the gateway's persistent queue, not to a per-processor retry
    assert exporters["loadbalancing/processors"]["protocol"]["otlp"]["retry_on_failure"] == {"enabled": False}
    assert exporters["loadbalancing/processors"]["sending_queue"]["storage"] == "file_storage"
