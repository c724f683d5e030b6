"""docker-compose.yml, the Dockerfile and the README table agree with .env, the single source."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from genai_otel.stack import build
from genai_otel.stack.env import REPO_ROOT, read_env_file
from genai_otel.stack.runner import PROMETHEUS_FEATURE_FLAGS

ENV = read_env_file()
COMPOSE: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")

# service -> (image repository, expected tag)
PINNED_IMAGES = {
    "collector": ("otel/opentelemetry-collector-contrib", ENV["COLLECTOR_VERSION"]),
    "jaeger": ("jaegertracing/jaeger", ENV["JAEGER_VERSION"]),
    "prometheus": ("prom/prometheus", "v" + ENV["PROMETHEUS_VERSION"]),
    "alertmanager": ("prom/alertmanager", "v" + ENV["ALERTMANAGER_VERSION"]),
    "grafana": ("grafana/grafana", ENV["GRAFANA_VERSION"]),
}
# service -> {.env port variable: port inside the container}
PUBLISHED = {
    "collector": {
        "OTLP_GRPC_PORT": 4317,
        "OTLP_HTTP_PORT": 4318,
        "COLLECTOR_HEALTH_PORT": 13133,
        "COLLECTOR_TELEMETRY_PORT": 8888,
        "COLLECTOR_PROMETHEUS_EXPORTER_PORT": 8889,
    },
    # the processor publishes nothing: only the collector and Prometheus reach it, in the network
    "jaeger": {"JAEGER_QUERY_PORT": 16686},
    "prometheus": {"PROMETHEUS_PORT": 9090},
    "alertmanager": {"ALERTMANAGER_PORT": 9093},
    "grafana": {"GRAFANA_PORT": 3000},
    "fake-provider": {"FAKE_PROVIDER_PORT": 8765},
}


def interpolate(text: str) -> str:
    """What docker compose makes of `${VAR}` given .env (an unknown variable is a test failure)."""

    def value(match: re.Match[str]) -> str:
        assert match.group(1) in ENV, f"{match.group(0)} is not defined in .env"
        return ENV[match.group(1)]

    return VARIABLE.sub(value, text)


def test_every_service_of_the_design_is_there() -> None:
    assert set(SERVICES) == {
        "config-init",
        "collector",
        "processor",
        "jaeger",
        "prometheus",
        "alertmanager",
        "grafana",
        "fake-provider",
        "demo",
    }


@pytest.mark.parametrize("service", sorted(PINNED_IMAGES))
def test_images_are_pinned_to_the_env_versions(service: str) -> None:
    repository, tag = PINNED_IMAGES[service]
    assert interpolate(SERVICES[service]["image"]) == f"{repository}:{tag}"


def test_our_image_is_built_from_the_env_python_version() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    (default,) = re.findall(r"^ARG PYTHON_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert default == ENV["PYTHON_VERSION"]
    assert "FROM python:${PYTHON_VERSION}-slim" in dockerfile
    built = [name for name, service in SERVICES.items() if "build" in service]
    assert set(built) == {"config-init", "processor", "fake-provider", "demo"}
    for name in built:
        assert interpolate(SERVICES[name]["build"]["args"]["PYTHON_VERSION"]) == ENV["PYTHON_VERSION"]


def test_every_variable_compose_reads_is_defined_in_env() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    used = set(VARIABLE.findall(text))
    assert used
    assert used <= set(ENV), sorted(used - set(ENV))


def test_every_bind_mounted_path_exists_in_the_repository() -> None:
    mounts = [
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(mounts) >= 5
    for source in mounts:
        assert (REPO_ROOT / source).exists(), source
    named = {volume.split(":")[0] for s in SERVICES.values() for volume in s.get("volumes", [])}
    assert {name for name in named if not name.startswith("./")} == set(COMPOSE["volumes"])


def test_published_ports_equal_env() -> None:
    for name, service in SERVICES.items():
        published: dict[str, int] = {}
        for mapping in service.get("ports", []):
            address, host, container = mapping.split(":")
            assert address == "${GENAI_OTEL_PUBLISH_HOST}", (name, mapping)
            (variable,) = VARIABLE.findall(host)
            published[variable] = int(container)
            assert int(interpolate(host)) == int(ENV[variable])
        assert published == PUBLISHED.get(name, {}), name


def test_every_published_port_binds_to_loopback_by_default() -> None:
    """Short syntax `[IP:]HOST:CONTAINER`: without an IP (or with 0.0.0.0) docker publishes on every
    interface of the host; each mapping must name one, and .env's must be 127.0.0.1."""
    assert ENV["GENAI_OTEL_PUBLISH_HOST"] == "127.0.0.1"
    mappings = [(name, m) for name, service in SERVICES.items() for m in service.get("ports", [])]
    assert len(mappings) == sum(len(ports) for ports in PUBLISHED.values())
    for name, mapping in mappings:
        assert isinstance(mapping, str), (name, mapping)
        parts = interpolate(mapping).split(":")
        assert len(parts) == 3 and parts[0] == "127.0.0.1", (name, mapping)


def test_the_processor_listens_on_all_interfaces_only_inside_its_container() -> None:
    from genai_otel.processors.config import ProcessorConfig

    defaults = ProcessorConfig()
    assert (defaults.listen, defaults.metrics_listen) == (
        f"127.0.0.1:{ENV['PROCESSOR_OTLP_PORT']}",
        f"127.0.0.1:{ENV['PROCESSOR_METRICS_PORT']}",
    )
    command = SERVICES["processor"]["command"]
    assert "--listen=0.0.0.0:14317" in command
    assert "--metrics-listen=0.0.0.0:9464" in command
    assert "ports" not in SERVICES["processor"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "GENAI_OTEL_PROCESSOR_LISTEN=0.0.0.0:14317" in dockerfile
    assert "GENAI_OTEL_PROCESSOR_METRICS_LISTEN=0.0.0.0:9464" in dockerfile


def test_prometheus_lifecycle_and_admin_apis_are_off() -> None:
    from genai_otel.stack.runner import LocalStack

    compose = SERVICES["prometheus"]["command"]
    local = LocalStack(Path("/tmp/unused"))._specs({"prometheus": Path("prometheus")})["prometheus"]
    for command in (compose, local.command):
        assert not [
            flag for flag in command if flag.startswith(("--web.enable-lifecycle", "--web.enable-admin"))
        ]


def test_configs_are_mounted_read_only_from_the_repository() -> None:
    mounted = {
        volume.split(":")[0]: volume.split(":")[-1]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    }
    assert mounted["./collector-config/collector.yaml"] == "ro"
    assert mounted["./collector-config/jaeger.yaml"] == "ro"
    assert mounted["./prometheus/alertmanager.yml"] == "ro"
    assert mounted["./grafana"] == "ro"


def test_grafana_refuses_to_start_without_an_admin_password() -> None:
    password = SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?.+\}", password)
    assert ENV["GRAFANA_ADMIN_PASSWORD"] == ""


def test_start_order_waits_on_health_and_every_dependency_has_a_condition() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], (name, dependency)
            else:
                assert condition in {"service_started", "service_completed_successfully"}
    assert SERVICES["demo"]["depends_on"]["processor"]["condition"] == "service_healthy"
    assert SERVICES["prometheus"]["depends_on"]["config-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_demo_is_configured_with_environment_variables_only() -> None:
    demo = SERVICES["demo"]
    assert demo["entrypoint"] == ["opentelemetry-instrument"]
    assert demo["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4317"
    assert demo["environment"]["OPENAI_BASE_URL"] == "http://fake-provider:8765/v1"
    assert demo["environment"]["GENAI_OTEL_OPENAI_PROVIDER"] == "openai"  # priced as the OpenAI it mimics


def _readme_table() -> dict[str, str]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("<!-- section:pipeline -->", 1)[1].split("<!-- /section:pipeline -->", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.MULTILINE)
    return dict(rows)


def test_readme_ports_and_versions_table_matches_env() -> None:
    table = _readme_table()
    wanted = {key: value for key, value in ENV.items() if key.endswith(("_PORT", "_VERSION"))}
    assert table == wanted


def test_prometheus_template_has_a_value_for_every_placeholder() -> None:
    placeholders = set(
        re.findall(r"(?<!\$)\$\{(\w+)\}", (REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    )
    compose_values = set(SERVICES["config-init"]["environment"])
    assert placeholders == compose_values
    from genai_otel.stack.runner import LocalStack

    assert placeholders == set(LocalStack(Path("/tmp/unused")).prometheus_values())


# --- the compose specification's reference loader (what `docker compose config` runs) --------------

COMPOSE_CHECK = REPO_ROOT / "tests" / "compose_check"


@pytest.fixture(scope="session")
def compose_check() -> Path:
    """tests/compose_check built once per source version and cached like the stack's binaries."""
    source = (COMPOSE_CHECK / "go.mod").read_bytes() + (COMPOSE_CHECK / "main.go").read_bytes()
    binary = build.bin_dir() / f"compose-check-{hashlib.sha256(source).hexdigest()[:12]}"
    if not os.access(binary, os.X_OK):
        go = shutil.which("go")
        if go is None:
            if os.environ.get("CI") == "true":
                pytest.fail("Go is needed to build tests/compose_check in CI")
            pytest.skip("Go is not installed: cannot build tests/compose_check")
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name(binary.name + ".partial")
        subprocess.run([go, "build", "-o", str(partial), "."], cwd=COMPOSE_CHECK, check=True, timeout=600)
        partial.replace(binary)
    return binary


def _load_compose(compose_check: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # .env must be the only source of its variables, as on a machine where nobody exported them
    clean = {key: value for key, value in os.environ.items() if key not in ENV}
    return subprocess.run(
        [str(compose_check), str(REPO_ROOT)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_loads_with_the_reference_loader(compose_check: Path) -> None:
    result = _load_compose(compose_check, GRAFANA_ADMIN_PASSWORD="not-a-default")
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    services = project["services"]
    assert set(services) == set(SERVICES)
    for name, (repository, tag) in PINNED_IMAGES.items():
        assert services[name]["image"] == f"{repository}:{tag}"
    for name, expected in PUBLISHED.items():
        published = {int(port["published"]): port["target"] for port in services[name].get("ports", [])}
        assert published == {int(ENV[variable]): target for variable, target in expected.items()}, name
    addresses = {port.get("host_ip") for service in services.values() for port in service.get("ports", [])}
    assert addresses == {"127.0.0.1"}
    assert "ports" not in services["processor"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), (name, volume["source"])
                assert volume.get("read_only") is True, (name, volume["source"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "not-a-default"
    assert services["processor"]["build"]["args"]["PYTHON_VERSION"] == ENV["PYTHON_VERSION"]


def test_one_variable_widens_every_published_port(compose_check: Path) -> None:
    result = _load_compose(compose_check, GRAFANA_ADMIN_PASSWORD="x", GENAI_OTEL_PUBLISH_HOST="0.0.0.0")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    addresses = [port.get("host_ip") for service in services.values() for port in service.get("ports", [])]
    assert addresses == ["0.0.0.0"] * sum(len(ports) for ports in PUBLISHED.values())


def test_compose_refuses_to_start_grafana_without_an_admin_password(compose_check: Path) -> None:
    result = _load_compose(compose_check)
    assert result.returncode == 1
    assert "required variable GRAFANA_ADMIN_PASSWORD is missing a value" in result.stderr


def test_prometheus_runs_with_the_same_feature_flags_as_the_local_stack() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["prometheus"]["command"]
    features = [flag for flag in command if flag.startswith("--enable-feature=")]
    assert features == list(PROMETHEUS_FEATURE_FLAGS)


def test_the_enriched_receiver_and_the_processor_get_the_same_message_size_from_env() -> None:
    from genai_otel.processors.config import load_config

    collector = SERVICES["collector"]["environment"]
    assert collector["ENRICHED_MAX_RECV_MSG_MIB"] == "${ENRICHED_MAX_RECV_MSG_MIB}"
    environment = {key: interpolate(value) for key, value in SERVICES["processor"]["environment"].items()}
    processor = load_config(environ=environment)
    assert processor.forward.max_message_bytes == int(ENV["ENRICHED_MAX_RECV_MSG_MIB"]) * 1024 * 1024
