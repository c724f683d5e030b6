"""The Kubernetes chart (deploy/helm/genai-otel): rendered by the pinned Helm, every object checked
against the pinned Kubernetes API schema (tests/k8s_schema.py), the collector configs inside it
checked by the real collector (`otelcol validate`), and what the chart promises in values.yaml and
the README checked on the rendered objects."""

from __future__ import annotations

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
from tests.k8s_schema import Schemas, module_zip

ENV = read_env_file()
CHART = REPO_ROOT / "deploy" / "helm" / "genai-otel"
NAMESPACE = "genai"
RELEASE = "obs"
EVERYTHING_ON = {
    "monitoring.serviceMonitor.enabled": "true",
    "monitoring.prometheusRule.enabled": "true",
    "monitoring.scrapeConfig.enabled": "true",
    "grafana.datasources.enabled": "true",
}
# other choices a user makes, each rendered and validated too
VARIANTS = {
    "defaults": {},
    "everything-on": EVERYTHING_ON,
    "dns-resolvers": {"gateway.processorResolver": "dns", "sampler.routing": "dns", "sampler.replicas": "3"},
    "fixed-replicas-external-jaeger": {
        "processor.autoscaling.enabled": "false",
        "processor.podDisruptionBudget.enabled": "false",
        "jaeger.enabled": "false",
        "jaeger.otlpEndpoint": "jaeger-collector.tracing:4317",
        "processor.config.labels.top_users": "50",
        "sampler.tailSampling.TAIL_SAMPLING_PERCENT_OTHER": "5",
        "grafana.dashboards.enabled": "false",
    },
}


def _go_or_skip(what: str) -> str:
    go = shutil.which(os.environ.get("GO") or "go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Go is needed for {what} in CI")
        pytest.skip(f"Go is not installed: cannot get {what}")
    return go


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned Helm, from the component cache (scripts/build-components builds it)."""
    path = build.binary("helm")
    if not os.access(path, os.X_OK):
        _go_or_skip("Helm")
        build.ensure(["helm"])
    return path


@pytest.fixture(scope="session")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Schemas:
    go = _go_or_skip("the Kubernetes API schema")
    cwd = tmp_path_factory.mktemp("schemas")
    kubernetes = module_zip(go, "k8s.io/kubernetes", ENV["KUBERNETES_SCHEMA_VERSION"], cwd)
    operator = module_zip(
        go, "github.com/prometheus-operator/prometheus-operator", ENV["PROMETHEUS_OPERATOR_VERSION"], cwd
    )
    return Schemas.load(kubernetes, ENV["KUBERNETES_SCHEMA_VERSION"], operator)


def set_args(values: dict[str, str]) -> list[str]:
    """--set (typed) or --set-string (values that must stay strings) for each value."""
    args = []
    for key, value in values.items():
        args += ["--set-string" if key.startswith(("sampler.tailSampling.", "jaeger.otlp")) else "--set"]
        args += [f"{key}={value}"]
    return args


def render(helm: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    args = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["--kube-version", ENV["KUBERNETES_SCHEMA_VERSION"]]
    args += set_args(values)
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(helm: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: render(helm, values) for name, values in VARIANTS.items()}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (match,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return match


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet"}
    }


# --- the API schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_for_the_pinned_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], schemas: Schemas, variant: str
) -> None:
    objects = rendered[variant]
    assert objects
    problems = [problem for obj in objects for problem in schemas.errors(obj)]
    assert problems == []


def test_the_schema_check_refuses_what_the_api_server_refuses(
    rendered: dict[str, list[dict[str, Any]]], schemas: Schemas
) -> None:
    deployment = json.loads(
        json.dumps(find(rendered["defaults"], "Deployment", f"{RELEASE}-genai-otel-processor"))
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # the usual typo
    container["resources"]["limits"]["memory"] = "512 MiB"
    container["ports"][0]["containerPort"] = "14317"
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "Bad_Name"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "15s"}]},
    }
    name = f"{RELEASE}-genai-otel-processor"
    assert schemas.errors(deployment) == [
        f"Deployment {name}: spec.template.spec.containers.0.ports.0.containerPort: "
        "'14317' is not of type 'integer'",
        f"Deployment {name}: spec.template.spec.containers.0.resources.limits.memory: "
        "'512 MiB' is not valid under any of the given schemas",
        f"Deployment {name}: spec.template.spec.containers.0.securityContext: "
        "Additional properties are not allowed ('readOnlyRootFileSystem' was unexpected)",
    ]
    assert schemas.errors(monitor) == [
        "ServiceMonitor Bad_Name: spec.endpoints.0: "
        "Additional properties are not allowed ('intervall' was unexpected)",
        "ServiceMonitor Bad_Name: name 'Bad_Name' is not a DNS-1123 subdomain",
    ]
    assert schemas.errors(
        {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {}}
    ) == [
        "PodDisruptionBudget ?: policy/v1beta1 PodDisruptionBudget is not served by this Kubernetes version"
    ]


# --- the collector configs, by the real collector -------------------------------------------------------


def _container_config_files(objects: list[dict[str, Any]], workload: dict[str, Any], tmp: Path) -> list[str]:
    """The container's --config args, with the ConfigMap it mounts written under `tmp`."""
    spec = workload["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    args = []
    for arg in container["args"]:
        path = arg.removeprefix("--config=")
        for volume in spec["volumes"]:
            if "configMap" in volume and path.startswith(mounts[volume["name"]] + "/"):
                data = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
                target = tmp / workload["metadata"]["name"] / Path(path).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[Path(path).name], encoding="utf-8")
                path = str(target)
        args.append(f"--config={path}")
    return args


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_collector_configs_in_the_chart_are_valid_for_the_real_collector(
    rendered: dict[str, list[dict[str, Any]]], variant: str, tmp_path: Path
) -> None:
    collector = build.binary("collector")
    if not os.access(collector, os.X_OK):
        pytest.skip("the collector is not built (scripts/build-components)")
    objects = rendered[variant]
    collectors = [
        o
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet"}
        and o["spec"]["template"]["spec"]["containers"][0]["name"] == "collector"
    ]
    assert {o["metadata"]["name"] for o in collectors} == {
        f"{RELEASE}-genai-otel-gateway",
        f"{RELEASE}-genai-otel-sampler",
    }
    for workload in collectors:
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        result = subprocess.run(
            [str(collector), "validate", *_container_config_files(objects, workload, tmp_path)],
            env={"PATH": os.environ.get("PATH", ""), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{workload['metadata']['name']}: {result.stderr}"


def test_the_collector_check_catches_a_broken_overlay(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    collector = build.binary("collector")
    if not os.access(collector, os.X_OK):
        pytest.skip("the collector is not built (scripts/build-components)")
    objects = json.loads(json.dumps(rendered["defaults"]))
    config = find(objects, "ConfigMap", f"{RELEASE}-genai-otel-gateway")["data"]
    # without `static: null` the local stack's resolver stays beside the k8s one
    config["kubernetes.yaml"] = config["kubernetes.yaml"].replace("static: null", "")
    gateway = find(objects, "Deployment", f"{RELEASE}-genai-otel-gateway")
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    result = subprocess.run(
        [str(collector), "validate", *_container_config_files(objects, gateway, tmp_path)],
        env={"PATH": os.environ.get("PATH", ""), **env, "PROCESSOR_ENDPOINTS_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


# --- what the chart promises ----------------------------------------------------------------------------


def test_the_chart_deploys_the_files_of_the_repository_unchanged(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["everything-on"]
    header = re.compile(r"\A# generated — do not edit: a copy of \S+, written by `genai-otel generate`\n")
    gateway = find(objects, "ConfigMap", f"{RELEASE}-genai-otel-gateway")["data"]["gateway.yaml"]
    assert header.sub("", gateway) == (REPO_ROOT / "collector-config" / "gateway.yaml").read_text()
    sampler = find(objects, "ConfigMap", f"{RELEASE}-genai-otel-sampler")["data"]["sampler.yaml"]
    assert header.sub("", sampler) == (REPO_ROOT / "collector-config" / "sampler.yaml").read_text()
    for rules in sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml")):
        name = f"{RELEASE}-genai-otel-{rules.stem.removeprefix('genai-otel-')}"
        assert find(objects, "PrometheusRule", name)["spec"] == yaml.safe_load(rules.read_text())
    dashboards = sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json"))
    assert len(dashboards) == 6
    for dashboard in dashboards:
        name = f"{RELEASE}-genai-otel-dashboard-{dashboard.stem.removeprefix('genai-otel-')}"
        config_map = find(objects, "ConfigMap", name)
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"] == {dashboard.name: dashboard.read_text()}


def test_routing_by_trace_id_to_processors_and_stable_samplers(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["defaults"]
    config = find(objects, "ConfigMap", f"{RELEASE}-genai-otel-gateway")["data"]
    base = yaml.safe_load(config["gateway.yaml"])
    for exporter in ("loadbalancing/processors", "loadbalancing/samplers"):
        assert base["exporters"][exporter]["routing_key"] == "traceID"
    assert yaml.safe_load(config["kubernetes.yaml"]) == {
        "exporters": {
            "loadbalancing/processors": {
                "resolver": {
                    "static": None,
                    "k8s": {"service": f"{RELEASE}-genai-otel-processor.{NAMESPACE}", "ports": [14317]},
                }
            }
        }
    }
    processor_service = find(objects, "Service", f"{RELEASE}-genai-otel-processor")
    assert processor_service["spec"]["clusterIP"] == "None"
    (gateway,) = pod_specs(objects)[f"{RELEASE}-genai-otel-gateway"]["containers"]
    env = {e["name"]: e["value"] for e in gateway["env"]}
    headless = f"{RELEASE}-genai-otel-sampler-headless.{NAMESPACE}.svc.cluster.local"
    assert yaml.safe_load(env["SAMPLER_ENDPOINTS"]) == [
        f"{RELEASE}-genai-otel-sampler-0.{headless}:4317",
        f"{RELEASE}-genai-otel-sampler-1.{headless}:4317",
    ]
    sampler_set = find(objects, "StatefulSet", f"{RELEASE}-genai-otel-sampler")
    assert sampler_set["spec"]["serviceName"] == f"{RELEASE}-genai-otel-sampler-headless"
    assert find(objects, "Service", f"{RELEASE}-genai-otel-sampler-headless")["spec"]["clusterIP"] == "None"
    # the k8s resolver reads endpoints: the gateway (and nothing else) gets the API token and a Role
    role = find(objects, "Role", f"{RELEASE}-genai-otel-gateway")
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"endpoints", "endpointslices"}
    tokens = {name: spec.get("automountServiceAccountToken") for name, spec in pod_specs(objects).items()}
    assert tokens == {
        f"{RELEASE}-genai-otel-gateway": True,
        f"{RELEASE}-genai-otel-processor": False,
        f"{RELEASE}-genai-otel-sampler": False,
        f"{RELEASE}-genai-otel-jaeger": False,
    }

    dns = rendered["dns-resolvers"]
    overlay = yaml.safe_load(
        find(dns, "ConfigMap", f"{RELEASE}-genai-otel-gateway")["data"]["kubernetes.yaml"]
    )
    assert overlay["exporters"]["loadbalancing/processors"]["resolver"] == {
        "static": None,
        "dns": {
            "hostname": f"{RELEASE}-genai-otel-processor.{NAMESPACE}.svc.cluster.local",
            "port": "14317",
            "interval": "5s",
        },
    }
    assert overlay["exporters"]["loadbalancing/samplers"]["resolver"]["dns"]["hostname"] == headless
    assert not [o for o in dns if o["kind"] in {"Role", "RoleBinding", "ServiceAccount"}]


def test_processor_readiness_autoscaling_and_disruption_budget(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["defaults"]
    name = f"{RELEASE}-genai-otel-processor"
    deployment = find(objects, "Deployment", name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["grpc"] == {"port": 14317}
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    hpa = find(objects, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    assert find(objects, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1
    assert (
        container["args"][-1]
        == f"--forward-endpoint={RELEASE}-genai-otel-gateway.{NAMESPACE}.svc.cluster.local:4319"
    )

    fixed = rendered["fixed-replicas-external-jaeger"]
    assert find(fixed, "Deployment", name)["spec"]["replicas"] == 2
    assert not [
        o for o in fixed if o["kind"] in {"HorizontalPodAutoscaler"} or "jaeger" in o["metadata"]["name"]
    ]
    assert yaml.safe_load(find(fixed, "ConfigMap", name)["data"]["processor.yaml"]) == {
        "labels": {"top_users": 50}
    }
    (sampler,) = pod_specs(fixed)[f"{RELEASE}-genai-otel-sampler"]["containers"]
    env = {e["name"]: e["value"] for e in sampler["env"]}
    assert env["JAEGER_OTLP_ENDPOINT"] == "jaeger-collector.tracing:4317"
    assert env["TAIL_SAMPLING_PERCENT_OTHER"] == "5"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_runs_non_root_read_only_with_requests_and_limits(
    rendered: dict[str, list[dict[str, Any]]], variant: str
) -> None:
    for name, spec in pod_specs(rendered[variant]).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert set(container["resources"]) == {"requests", "limits"}, name
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name


def test_scraping_uses_the_job_names_of_the_rules(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["everything-on"]
    jobs = {
        o["metadata"]["name"]: o["metadata"]["labels"].get("genai-otel.io/job")
        for o in objects
        if o["kind"] == "Service"
    }
    assert jobs == {
        f"{RELEASE}-genai-otel-processor": "genai-otel-processor",
        f"{RELEASE}-genai-otel-gateway": "otel-collector",
        f"{RELEASE}-genai-otel-sampler-headless": "otel-collector",
        f"{RELEASE}-genai-otel-jaeger": None,
    }
    alerts = (REPO_ROOT / "prometheus" / "rules" / "genai-otel-alerts.yml").read_text()
    assert set(re.findall(r'job="([^"]+)"', alerts)) == {"genai-otel-processor", "otel-collector"}
    monitors = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "ServiceMonitor"}
    assert {name: [e["port"] for e in spec["endpoints"]] for name, spec in monitors.items()} == {
        f"{RELEASE}-genai-otel-processor": ["metrics"],
        f"{RELEASE}-genai-otel-gateway": ["telemetry", "sdk-metrics"],
        f"{RELEASE}-genai-otel-sampler": ["telemetry"],
    }
    assert {spec["jobLabel"] for spec in monitors.values()} == {"genai-otel.io/job"}
    scrape = yaml.safe_load(
        find(objects, "ConfigMap", f"{RELEASE}-genai-otel-scrape-config")["data"]["scrape-configs.yaml"]
    )
    assert [job["job_name"] for job in scrape["scrape_configs"]] == ["genai-otel-processor", "otel-collector"]


def test_images_are_the_versions_of_env(rendered: dict[str, list[dict[str, Any]]]) -> None:
    images = {name: spec["containers"][0]["image"] for name, spec in pod_specs(rendered["defaults"]).items()}
    assert images == {
        f"{RELEASE}-genai-otel-processor": "genai-otel:0.1.0",
        f"{RELEASE}-genai-otel-gateway": f"otel/opentelemetry-collector-contrib:{ENV['COLLECTOR_VERSION']}",
        f"{RELEASE}-genai-otel-sampler": f"otel/opentelemetry-collector-contrib:{ENV['COLLECTOR_VERSION']}",
        f"{RELEASE}-genai-otel-jaeger": f"jaegertracing/jaeger:{ENV['JAEGER_VERSION']}",
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_passes_strictly_notes_included(helm: Path, variant: str) -> None:
    args = [str(helm), "lint", "--strict", str(CHART), "--kube-version", ENV["KUBERNETES_SCHEMA_VERSION"]]
    args += set_args(VARIANTS[variant])
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_bad_choices_fail_with_a_message(helm: Path) -> None:
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--kube-version",
            ENV["KUBERNETES_SCHEMA_VERSION"],
            "--set",
            "gateway.processorResolver=static",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert 'gateway.processorResolver must be k8s or dns, not "static"' in result.stderr
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--kube-version",
            ENV["KUBERNETES_SCHEMA_VERSION"],
            "--set",
            "jaeger.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "jaeger.otlpEndpoint is required when jaeger.enabled is false" in result.stderr


def test_every_value_is_documented() -> None:
    """Each value has a `# --` comment right above it; keys inside a documented value (a map such as
    `resources`) belong to it; a section without a comment of its own must document its keys."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_blocks: list[int] = []  # indents of the open documented values
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        documented_blocks = [level for level in documented_blocks if level < indent]
        if documented_blocks:
            continue  # part of a documented value
        comment_above = number > 0 and lines[number - 1].strip().startswith("#")
        next_indent = (
            len(lines[number + 1]) - len(lines[number + 1].lstrip()) if number + 1 < len(lines) else 0
        )
        is_section = line.rstrip().endswith(":") and next_indent > indent and not comment_above
        if comment_above:
            documented_blocks.append(indent)
        elif not is_section:
            undocumented.append(match.group(2))
    assert undocumented == []
