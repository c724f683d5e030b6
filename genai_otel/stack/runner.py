"""Run the stack as local processes: collector, processor, Jaeger, Prometheus and Alertmanager,
and Grafana when a binary can be had (`genai_otel.stack.grafana`).

    with LocalStack(run_dir, ports=free_ports()) as stack:
        stack.endpoints()["otlp_grpc_endpoint"]

Every process reads the same config files docker-compose.yml mounts (collector-config/,
prometheus/); only prometheus.yml is rendered first, because Prometheus cannot read environment
variables.

`LocalStack(processors=N, samplers=M)` starts the scale-out topology instead: a gateway collector
(gateway.yaml) in place of the single collector, N processors, M sampling collectors (sampler.yaml)
and a `discovery` process that plays the part Kubernetes' endpoints play for the gateway's
loadbalancing exporter: it lists the processors that answer their health check in the file the
gateway's static resolver reads, and has the gateway reload (SIGHUP) when that list changes.

Each process runs in its own session (process group) with its log and pid file in the
run folder; `stop` (also from another process, through `stack.json`) signals exactly those groups.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import random
import signal
import socket
import ssl
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from genai_otel.stack import build
from genai_otel.stack import grafana as grafana_setup
from genai_otel.stack.env import REPO_ROOT, settings

logger = logging.getLogger(__name__)

COLLECTOR_CONFIG = REPO_ROOT / "collector-config" / "collector.yaml"
GATEWAY_CONFIG = REPO_ROOT / "collector-config" / "gateway.yaml"
SAMPLER_CONFIG = REPO_ROOT / "collector-config" / "sampler.yaml"
PROCESSOR_ENDPOINTS_FILE = "processor-endpoints.yaml"
COLLECTOR_SCRAPE_JOB = "otel-collector"
JAEGER_CONFIG = REPO_ROOT / "collector-config" / "jaeger.yaml"
# Overlays merged over collector.yaml with a second --config when their variables are set
# (docs/security.md); without them the local stack is plaintext on 127.0.0.1.
COLLECTOR_SECURITY_OVERLAY = REPO_ROOT / "collector-config" / "security.yaml"
COLLECTOR_ENRICHED_TLS_OVERLAY = REPO_ROOT / "collector-config" / "security-enriched-tls.yaml"
SECURITY_OVERLAY_VARIABLES = (
    "PROCESSOR_BEARER_TOKEN_FILE",
    "PROCESSOR_TLS_CA_FILE",
    "ENRICHED_BEARER_TOKEN_FILE",
)
ENRICHED_TLS_VARIABLES = ("ENRICHED_TLS_CERT_FILE", "ENRICHED_TLS_KEY_FILE")
# How Prometheus reaches a /metrics with TLS or auth on (`metrics.*` in the processor's config):
# the rendered prometheus.yml gets them on the processor's scrape job when these are set.
PROCESSOR_SCRAPE_VARIABLES = (
    "PROCESSOR_METRICS_CA_FILE",
    "PROCESSOR_METRICS_BEARER_TOKEN_FILE",
    "PROCESSOR_METRICS_BASIC_AUTH_USERNAME",
    "PROCESSOR_METRICS_BASIC_AUTH_PASSWORD_FILE",
)
PROCESSOR_SCRAPE_JOB = "genai-otel-processor"
PROMETHEUS_TEMPLATE = REPO_ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "prometheus" / "alertmanager.yml"
RULES_DIR = REPO_ROOT / "prometheus" / "rules"
# Exemplars link metrics to traces; created-timestamp ingestion makes the first increment of a new
# counter series count in rate() (the processor exposes `_created` samples). Compose uses the same.
PROMETHEUS_FEATURE_FLAGS = ("--enable-feature=exemplar-storage,created-timestamp-zero-ingestion",)
DEFAULT_RUN_DIR = REPO_ROOT / "run"
STATE_FILE = "stack.json"

# Every port a local stack binds; names and defaults as in .env.
PORT_KEYS = (
    "OTLP_GRPC_PORT",
    "OTLP_HTTP_PORT",
    "COLLECTOR_ENRICHED_OTLP_PORT",
    "COLLECTOR_HEALTH_PORT",
    "COLLECTOR_TELEMETRY_PORT",
    "COLLECTOR_PROMETHEUS_EXPORTER_PORT",
    "PROCESSOR_OTLP_PORT",
    "PROCESSOR_METRICS_PORT",
    "JAEGER_OTLP_GRPC_PORT",
    "JAEGER_QUERY_PORT",
    "JAEGER_QUERY_GRPC_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "GRAFANA_PORT",
)

ENRICHED_MESSAGE_KEY = "ENRICHED_MAX_RECV_MSG_MIB"
PROCESSOR_MESSAGE_ENV = "GENAI_OTEL_PROCESSOR_FORWARD__MAX_MESSAGE_BYTES"

# Start order: a process comes up after whatever it sends to.
SERVICES = ("jaeger", "alertmanager", "collector", "processor", "prometheus")
# The scale-out topology's start order: sampler-1..M, collector (the gateway), processor,
# processor-2..N, discovery; `stop` goes the other way.
SCALE_OUT_ORDER = (
    "jaeger",
    "alertmanager",
    "sampler",
    "collector",
    "processor",
    "discovery",
    "prometheus",
    "grafana",
)


def _order(name: str) -> int:
    """A service's start position (`processor-2` starts with `processor`)."""
    kind = name.split("-", 1)[0]
    return SCALE_OUT_ORDER.index(kind) if kind in SCALE_OUT_ORDER else len(SCALE_OUT_ORDER)


def processor_name(index: int) -> str:
    """Service name of processor `index` (1-based): the first keeps the single-instance name."""
    return "processor" if index == 1 else f"processor-{index}"


class StackError(RuntimeError):
    """The stack could not start or stop; the message names the service and quotes its log."""


def configured_ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Ports from .env, each overridable by an environment variable of the same name."""
    values = settings(environ)
    return {key: int(values[key]) for key in PORT_KEYS}


def enriched_max_recv_msg_mib(environ: Mapping[str, str] | None = None) -> int:
    """The largest message (MiB) the collector's otlp/enriched receiver takes, from .env: the
    collector and the processor (forward.max_message_bytes) get this one value."""
    return int(settings(environ)[ENRICHED_MESSAGE_KEY])


def free_ports(host: str = "127.0.0.1") -> dict[str, int]:
    """One free port per PORT_KEYS entry, for a stack that must not clash with anything running."""
    return free_port_map(list(PORT_KEYS), host)


def free_port_map(keys: list[str], host: str = "127.0.0.1") -> dict[str, int]:
    """One free port per key, distinct, from outside the kernel's ephemeral range when it leaves
    room for that (see `pick_ports`)."""
    return dict(zip(keys, pick_ports(len(keys), host), strict=True))


def free_port(host: str = "127.0.0.1") -> int:
    """One free port (see `pick_ports`)."""
    return pick_ports(1, host)[0]


# Ports below the ephemeral range start here (above the registered services most machines run)
PICK_FLOOR = 10_000
_picked: set[int] = set()  # handed out by this process already: never twice


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def pick_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports nothing listens on now, for a server started a moment later.

    A port the kernel hands out for `bind(0)` comes from the ephemeral range, which every outgoing
    connection on the machine draws its local port from too: between picking and binding, another
    process's connection can take it ("address already in use"). So ports are drawn at random
    below that range (from PICK_FLOOR), where only listeners take ports, each checked by binding
    it, and never twice from one process; where the range leaves no such room, `bind(0)` it is.
    """
    low, _ = ephemeral_range()
    pool = range(PICK_FLOOR, low) if low - PICK_FLOOR >= 1000 else range(0)
    chosen: list[int] = []
    for _ in range(200 * count if pool else 0):
        if len(chosen) == count:
            break
        port = random.choice(pool)
        if port in _picked or not _can_bind(host, port):
            continue
        _picked.add(port)
        chosen.append(port)
    while len(chosen) < count:  # no room below the range (or it is full): the kernel's choice
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _picked:
            _picked.add(port)
            chosen.append(port)
    return chosen


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def scale_out_port_keys(processors: int, samplers: int) -> list[str]:
    """Port names of the instances beyond the single-instance ones (processor 2.., every sampler)."""
    keys = []
    for index in range(2, processors + 1):
        keys += [f"PROCESSOR_{index}_OTLP_PORT", f"PROCESSOR_{index}_METRICS_PORT"]
    for index in range(1, samplers + 1):
        keys += [
            f"SAMPLER_{index}_OTLP_PORT",
            f"SAMPLER_{index}_HEALTH_PORT",
            f"SAMPLER_{index}_TELEMETRY_PORT",
        ]
    return keys


def scale_out_scrape_targets(text: str, processor_targets: list[str], collector_targets: list[str]) -> str:
    """prometheus.yml with every processor and every collector of a scale-out stack scraped."""
    config = yaml.safe_load(text)
    for job in config["scrape_configs"]:
        if job["job_name"] == PROCESSOR_SCRAPE_JOB:
            job["static_configs"] = [{"targets": processor_targets}]
        elif job["job_name"] == COLLECTOR_SCRAPE_JOB:
            job["static_configs"] = [{"targets": collector_targets}]
    header = "# Rendered by genai-otel stack: every processor and collector instance is scraped.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def collector_overlays(environ: Mapping[str, str]) -> list[Path]:
    """The security overlays the collector gets, from which of their variables are set; a partial
    set fails naming what is missing (half the settings would leave a hop open or unusable)."""
    overlays = []
    for overlay, variables in (
        (COLLECTOR_SECURITY_OVERLAY, SECURITY_OVERLAY_VARIABLES),
        (COLLECTOR_ENRICHED_TLS_OVERLAY, ENRICHED_TLS_VARIABLES),
    ):
        given = [name for name in variables if environ.get(name)]
        if not given:
            continue
        missing = [name for name in variables if not environ.get(name)]
        if missing:
            raise StackError(
                f"{', '.join(given)} set but not {', '.join(missing)}: "
                f"{overlay.name} needs all of {', '.join(variables)}"
            )
        overlays.append(overlay)
    if COLLECTOR_ENRICHED_TLS_OVERLAY in overlays and COLLECTOR_SECURITY_OVERLAY not in overlays:
        raise StackError(
            "TLS on the enriched receiver without its token: set "
            + ", ".join(SECURITY_OVERLAY_VARIABLES)
            + " too"
        )
    return overlays


def secure_processor_scrape(text: str, values: Mapping[str, str]) -> str:
    """prometheus.yml with TLS and credentials on the processor's scrape job, when the
    PROCESSOR_SCRAPE_VARIABLES say so; the text unchanged otherwise."""
    if not any(values.get(name) for name in PROCESSOR_SCRAPE_VARIABLES):
        return text
    username = values.get("PROCESSOR_METRICS_BASIC_AUTH_USERNAME", "")
    password_file = values.get("PROCESSOR_METRICS_BASIC_AUTH_PASSWORD_FILE", "")
    token_file = values.get("PROCESSOR_METRICS_BEARER_TOKEN_FILE", "")
    if bool(username) != bool(password_file):
        raise StackError(
            "PROCESSOR_METRICS_BASIC_AUTH_USERNAME and PROCESSOR_METRICS_BASIC_AUTH_PASSWORD_FILE go together"
        )
    if token_file and username:
        raise StackError("the processor's /metrics takes a bearer token or basic auth, not both")
    config = yaml.safe_load(text)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == PROCESSOR_SCRAPE_JOB]
    if values.get("PROCESSOR_METRICS_CA_FILE"):
        job["scheme"] = "https"
        job["tls_config"] = {"ca_file": values["PROCESSOR_METRICS_CA_FILE"]}
        if values.get("PROCESSOR_METRICS_TLS_SERVER_NAME"):
            job["tls_config"]["server_name"] = values["PROCESSOR_METRICS_TLS_SERVER_NAME"]
    if token_file:
        job["authorization"] = {"type": "Bearer", "credentials_file": token_file}
    if username:
        job["basic_auth"] = {"username": username, "password_file": password_file}
    header = "# Rendered by genai-otel stack render; the processor's scrape job carries TLS/auth.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def render_template(template: Path, values: Mapping[str, str], output: Path) -> Path:
    """Fill `${NAME}` placeholders; a missing value fails naming the placeholder and the file.
    prometheus.yml also gets the processor's scrape credentials (secure_processor_scrape)."""
    try:
        text = string.Template(template.read_text(encoding="utf-8")).substitute(values)
    except KeyError as missing:
        raise StackError(f"{template}: no value for placeholder ${{{missing.args[0]}}}") from None
    if template.name == PROMETHEUS_TEMPLATE.name:
        text = secure_processor_scrape(text, values)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    # A liveness probe sends no secret and reads nothing but the status: it need not verify a
    # certificate (the processor's /healthz over TLS may use one from a private CA).
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(200 <= response.status < 300)
    except (OSError, urllib.error.URLError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process still answers kill(0); reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _runs(pid: int, program: object) -> bool:
    """Whether `pid` still runs `program` (one of its arguments: its argv[0], or a marker such as
    the config file only this run folder's process is given); True when that cannot be told."""
    if not isinstance(program, str):
        return True
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    return program.encode() in argv


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ServiceSpec:
    name: str
    command: list[str]
    env: dict[str, str]
    health_url: str
    # what identifies the process in its command line when argv[0] may not (a wrapper that execs
    # another binary, an interpreted script); default: argv[0]
    marker: str = ""

    @property
    def program(self) -> str:
        return self.marker or self.command[0]


@dataclass
class LocalStack:
    """The local stack in `run_dir` on `ports` (default: .env's, overridable per variable)."""

    run_dir: Path = DEFAULT_RUN_DIR
    ports: dict[str, int] = field(default_factory=configured_ports)
    host: str = "127.0.0.1"
    scrape_interval: str = "15s"
    # extra environment for the collector, e.g. TAIL_SAMPLING_PERCENT_OTHER=0 in tests
    collector_env: dict[str, str] = field(default_factory=dict)
    processor_config: Path | None = None
    # where the processor forwards priced spans (default: the collector's enriched receiver); a
    # test or a debugging session can put a tee in between
    processor_forward_endpoint: str | None = None
    # the enriched receiver's and the processor's message size limit (MiB; default from .env)
    enriched_max_recv_msg_mib: int = field(default_factory=enriched_max_recv_msg_mib)
    build_missing: bool = True
    services: tuple[str, ...] = SERVICES
    # the rules Prometheus loads and the Alertmanager config (tests render variants of both)
    rules_dir: Path = RULES_DIR
    alertmanager_config: Path = ALERTMANAGER_CONFIG
    # The scale-out topology (None: the single collector of collector.yaml): N processors behind
    # a gateway collector, M sampling collectors
    processors: int = 1
    samplers: int | None = None
    # Grafana: a binary's path, "off", or None / "auto": GENAI_OTEL_GRAFANA, PATH, the cache, a
    # release download (genai_otel.stack.grafana); started last, when one is found
    grafana: str | None = None
    # after start(): Grafana's URL, login and where it came from, or why it did not start
    grafana_started: dict[str, str] = field(default_factory=dict, init=False)
    grafana_note: str | None = field(default=None, init=False)
    # pids this object spawned and their programs (argv[0]), also written to the state file
    _spawned: set[int] = field(default_factory=set, init=False, repr=False)
    _programs: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir).resolve()
        missing = [key for key in PORT_KEYS if key not in self.ports]
        if missing:
            self.ports = {**configured_ports(), **self.ports}
        if self.processors < 1 or (self.samplers is not None and self.samplers < 1):
            raise StackError("--processors and --samplers need at least 1 each")
        extra = [
            key for key in scale_out_port_keys(self.processors, self.samplers or 0) if key not in self.ports
        ]
        if extra:
            self.ports = {**self.ports, **free_port_map(extra, self.host)}

    @property
    def scaled_out(self) -> bool:
        return self.processors > 1 or self.samplers is not None

    def _processor_ports(self, index: int) -> tuple[str, str]:
        """(OTLP, metrics) port keys of processor `index` (1-based)."""
        if index == 1:
            return "PROCESSOR_OTLP_PORT", "PROCESSOR_METRICS_PORT"
        return f"PROCESSOR_{index}_OTLP_PORT", f"PROCESSOR_{index}_METRICS_PORT"

    def processor_otlp_endpoints(self) -> list[str]:
        return [self._addr(self._processor_ports(i)[0]) for i in range(1, self.processors + 1)]

    def sampler_otlp_endpoints(self) -> list[str]:
        return [self._addr(f"SAMPLER_{i}_OTLP_PORT") for i in range(1, (self.samplers or 0) + 1)]

    def instance_urls(self) -> dict[str, list[str]]:
        """Every instance's URLs (one entry each in the single-instance topology)."""
        samplers = range(1, (self.samplers or 0) + 1)
        return {
            "processor_metrics_urls": [
                self._processor_metrics_url("/metrics", self._processor_ports(i)[1])
                for i in range(1, self.processors + 1)
            ],
            "processor_otlp_endpoints": self.processor_otlp_endpoints(),
            "collector_metrics_urls": [
                self._url("COLLECTOR_TELEMETRY_PORT", "/metrics"),
                *(self._url(f"SAMPLER_{i}_TELEMETRY_PORT", "/metrics") for i in samplers),
            ],
            "sampler_health_urls": [self._url(f"SAMPLER_{i}_HEALTH_PORT", "/") for i in samplers],
        }

    # -- addresses -------------------------------------------------------------------------------
    def _addr(self, key: str) -> str:
        return f"{self.host}:{self.ports[key]}"

    def _url(self, key: str, path: str = "") -> str:
        return f"http://{self._addr(key)}{path}"

    def _processor_metrics_url(self, path: str, port_key: str = "PROCESSOR_METRICS_PORT") -> str:
        # TLS on /metrics is the processor's own setting; the stack sees it in the environment
        tls = os.environ.get("GENAI_OTEL_PROCESSOR_METRICS__TLS__CERT_FILE")
        return f"{'https' if tls else 'http'}://{self._addr(port_key)}{path}"

    def endpoints(self) -> dict[str, str]:
        return {
            "otlp_grpc_endpoint": self._url("OTLP_GRPC_PORT"),
            "otlp_http_endpoint": self._url("OTLP_HTTP_PORT"),
            "jaeger_url": self._url("JAEGER_QUERY_PORT"),
            "prometheus_url": self._url("PROMETHEUS_PORT"),
            "alertmanager_url": self._url("ALERTMANAGER_PORT"),
            "processor_metrics_url": self._processor_metrics_url("/metrics"),
            "processor_otlp_endpoint": self._addr("PROCESSOR_OTLP_PORT"),
            "collector_health_url": self._url("COLLECTOR_HEALTH_PORT"),
            "collector_metrics_url": self._url("COLLECTOR_TELEMETRY_PORT", "/metrics"),
            "app_metrics_url": self._url("COLLECTOR_PROMETHEUS_EXPORTER_PORT", "/metrics"),
            # only while this run folder's Grafana runs (it starts when a binary is found)
            **({"grafana_url": self._url("GRAFANA_PORT")} if self.grafana_started else {}),
        }

    # -- process specs ---------------------------------------------------------------------------
    def _specs(self, binaries: Mapping[str, Path]) -> dict[str, ServiceSpec]:
        ports = {key: str(value) for key, value in self.ports.items()}
        run = self.run_dir
        specs: dict[str, ServiceSpec] = {}
        overlays = collector_overlays({**os.environ, **self.collector_env})
        specs["jaeger"] = ServiceSpec(
            "jaeger",
            [str(binaries.get("jaeger", "")), "--config", str(JAEGER_CONFIG)],
            {**ports, "JAEGER_LISTEN_HOST": self.host},
            self._url("JAEGER_QUERY_PORT", "/api/services"),
        )
        specs["alertmanager"] = ServiceSpec(
            "alertmanager",
            [
                str(binaries.get("alertmanager", "")),
                f"--config.file={self.alertmanager_config}",
                f"--storage.path={run / 'alertmanager-data'}",
                f"--web.listen-address={self._addr('ALERTMANAGER_PORT')}",
                f"--web.external-url={self._url('ALERTMANAGER_PORT')}",
                "--cluster.listen-address=",  # a single instance: no gossip port to clash
            ],
            {},
            self._url("ALERTMANAGER_PORT", "/-/ready"),
        )
        collector_env = {
            **ports,
            "COLLECTOR_LISTEN_HOST": self.host,
            "PROCESSOR_OTLP_ENDPOINT": self._addr("PROCESSOR_OTLP_PORT"),
            "JAEGER_OTLP_ENDPOINT": self._addr("JAEGER_OTLP_GRPC_PORT"),
            "COLLECTOR_STORAGE_DIR": str(run / "collector-storage"),
            ENRICHED_MESSAGE_KEY: str(self.enriched_max_recv_msg_mib),
            **self.collector_env,
        }
        if self.scaled_out:
            if overlays:
                raise StackError(
                    "the scale-out topology has no TLS/token overlays yet: unset "
                    + ", ".join((*SECURITY_OVERLAY_VARIABLES, *ENRICHED_TLS_VARIABLES))
                )
            collector_command = [str(binaries.get("collector", "")), "--config", str(GATEWAY_CONFIG)]
            collector_env |= {
                "PROCESSOR_ENDPOINTS_FILE": str(run / PROCESSOR_ENDPOINTS_FILE),
                "SAMPLER_ENDPOINTS": json.dumps(
                    self.sampler_otlp_endpoints() or [self._addr("OTLP_GRPC_PORT")]
                ),
            }
        else:
            collector_command = [
                str(binaries.get("collector", "")),
                "--config",
                str(COLLECTOR_CONFIG),
                *(arg for overlay in overlays for arg in ("--config", str(overlay))),
            ]
        for index in range(1, (self.samplers or 0) + 1):
            specs[f"sampler-{index}"] = ServiceSpec(
                f"sampler-{index}",
                [str(binaries.get("collector", "")), "--config", str(SAMPLER_CONFIG)],
                {
                    "COLLECTOR_LISTEN_HOST": self.host,
                    "SAMPLER_OTLP_PORT": ports[f"SAMPLER_{index}_OTLP_PORT"],
                    "COLLECTOR_HEALTH_PORT": ports[f"SAMPLER_{index}_HEALTH_PORT"],
                    "COLLECTOR_TELEMETRY_PORT": ports[f"SAMPLER_{index}_TELEMETRY_PORT"],
                    "JAEGER_OTLP_ENDPOINT": self._addr("JAEGER_OTLP_GRPC_PORT"),
                    ENRICHED_MESSAGE_KEY: str(self.enriched_max_recv_msg_mib),
                    **self.collector_env,
                },
                self._url(f"SAMPLER_{index}_HEALTH_PORT", "/"),
            )
        specs["collector"] = ServiceSpec(
            "collector", collector_command, collector_env, self._url("COLLECTOR_HEALTH_PORT", "/")
        )
        for index in range(1, self.processors + 1):
            otlp_key, metrics_key = self._processor_ports(index)
            processor = [
                sys.executable,
                "-m",
                "genai_otel",
                "processor",
                "--listen",
                self._addr(otlp_key),
                "--metrics-listen",
                self._addr(metrics_key),
                "--forward-endpoint",
                self.processor_forward_endpoint or self._addr("COLLECTOR_ENRICHED_OTLP_PORT"),
            ]
            if self.processor_config:
                processor += ["--config", str(self.processor_config)]
            name = processor_name(index)
            specs[name] = ServiceSpec(
                name,
                processor,
                {"OTEL_SDK_DISABLED": "true", PROCESSOR_MESSAGE_ENV: f"{self.enriched_max_recv_msg_mib}MiB"},
                # /healthz, not /metrics: it answers without the scrape credentials /metrics may need
                self._processor_metrics_url("/healthz", metrics_key),
            )
        if self.scaled_out:
            discovery = [
                sys.executable,
                "-m",
                "genai_otel.stack.discovery",
                "--endpoints-file",
                str(run / PROCESSOR_ENDPOINTS_FILE),
                "--collector-pid-file",
                str(run / "collector.pid"),
            ]
            for index in range(1, self.processors + 1):
                otlp_key, metrics_key = self._processor_ports(index)
                discovery += [
                    "--backend",
                    f"{self._addr(otlp_key)}={self._processor_metrics_url('/healthz', metrics_key)}",
                ]
            specs["discovery"] = ServiceSpec("discovery", discovery, {}, "")
        specs["prometheus"] = ServiceSpec(
            "prometheus",
            [
                str(binaries.get("prometheus", "")),
                f"--config.file={run / 'prometheus.yml'}",
                f"--storage.tsdb.path={run / 'prometheus-data'}",
                f"--web.listen-address={self._addr('PROMETHEUS_PORT')}",
                # no --web.enable-lifecycle: any local user could POST /-/quit; restart instead
                *PROMETHEUS_FEATURE_FLAGS,
            ],
            {},
            self._url("PROMETHEUS_PORT", "/-/ready"),
        )
        wanted = set(self.services)
        if self.scaled_out and "collector" in wanted:
            wanted |= {"sampler", "discovery"}
        return {
            name: spec
            for name, spec in sorted(specs.items(), key=lambda item: _order(item[0]))
            if name.split("-", 1)[0] in wanted
        }

    def prometheus_values(self) -> dict[str, str]:
        return {
            "SCRAPE_INTERVAL": self.scrape_interval,
            "RULES_DIR": str(self.rules_dir),
            "PROCESSOR_METRICS_TARGET": self._addr("PROCESSOR_METRICS_PORT"),
            "COLLECTOR_PROMETHEUS_EXPORTER_TARGET": self._addr("COLLECTOR_PROMETHEUS_EXPORTER_PORT"),
            "COLLECTOR_TELEMETRY_TARGET": self._addr("COLLECTOR_TELEMETRY_PORT"),
            "ALERTMANAGER_TARGET": self._addr("ALERTMANAGER_PORT"),
            "PROMETHEUS_TARGET": self._addr("PROMETHEUS_PORT"),
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def _read_state(self) -> dict[str, object]:
        try:
            state: dict[str, object] = json.loads(self._state_path().read_text(encoding="utf-8"))
            return state
        except (OSError, ValueError):
            return {}

    def _started_pids(self) -> dict[str, int]:
        """Pids from the state file that still run the program this folder started (a pid can be
        reused by an unrelated process after a reboot: such a pid is never signalled)."""
        state = self._read_state()
        pids, programs = state.get("pids", {}), state.get("programs", {})
        assert isinstance(pids, dict) and isinstance(programs, dict)
        spawned = self._spawned  # ours for sure, even before their exec
        return {
            name: int(pid)
            for name, pid in pids.items()
            if _alive(int(pid)) and (int(pid) in spawned or _runs(int(pid), programs.get(name)))
        }

    def running_pids(self) -> dict[str, int]:
        return self._started_pids()

    def _roles_needed(self) -> list[str]:
        # every service but the processor (Python, installed with this package) is a built binary
        return [name for name in self.services if name != "processor"]

    def start(self, timeout: float = 90.0) -> dict[str, str]:
        """Build what is missing, start every service, wait until each is healthy; return endpoints."""
        if self.running_pids():
            raise StackError(
                f"a stack is already running from {self.run_dir} (run `genai-otel stack down` first)"
            )
        if "processor" in self.services and importlib.util.find_spec("genai_otel.processors.service") is None:
            raise StackError(
                "the processor (genai_otel.processors.service) is not installed in this environment"
            )
        roles = self._roles_needed()
        if self.build_missing:
            try:
                binaries = build.ensure(roles)
            except build.BuildError as error:
                raise StackError(str(error)) from error
        else:
            binaries = {role: build.binary(role) for role in roles}
            absent = [str(path) for path in binaries.values() if not path.exists()]
            if absent:
                raise StackError(f"missing binaries (run scripts/build-components): {', '.join(absent)}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        if "prometheus" in self.services:
            scrape = {name: os.environ[name] for name in PROCESSOR_SCRAPE_VARIABLES if os.environ.get(name)}
            values = {**self.prometheus_values(), **scrape}
            rendered = render_template(PROMETHEUS_TEMPLATE, values, self.run_dir / "prometheus.yml")
            if self.scaled_out:
                urls = self.instance_urls()
                text = scale_out_scrape_targets(
                    rendered.read_text(encoding="utf-8"),
                    [url.split("/")[2] for url in urls["processor_metrics_urls"]],
                    [url.split("/")[2] for url in urls["collector_metrics_urls"]],
                )
                rendered.write_text(text, encoding="utf-8")
        if self.scaled_out:
            # every processor to begin with; the discovery process keeps it current
            endpoints_file = self.run_dir / PROCESSOR_ENDPOINTS_FILE
            endpoints_file.write_text(yaml.safe_dump(self.processor_otlp_endpoints()), encoding="utf-8")
        pids: dict[str, int] = {}
        self._programs.clear()
        self.grafana_started, self.grafana_note = {}, None
        self._write_state(pids)
        try:
            specs = self._specs(binaries)
            grafana_spec = self._grafana_spec()
            if grafana_spec is not None:
                specs["grafana"] = grafana_spec
            for name, spec in specs.items():
                pids[name] = self._spawn(spec)
                self._programs[name] = spec.program
                self._write_state(pids)
                self._wait_healthy(spec, pids[name], deadline=time.monotonic() + timeout)
                print(f"  {name:<13} up (pid {pids[name]})", file=sys.stderr, flush=True)
        except BaseException:
            self.stop()
            raise
        return self.endpoints()

    def _grafana_spec(self) -> ServiceSpec | None:
        """Grafana's process, provisioned for this stack; None (and `grafana_note` says why) when
        there is no Grafana to start."""
        try:
            found = grafana_setup.locate(self.grafana)
        except grafana_setup.GrafanaUnavailable as why:
            self.grafana_note = grafana_setup.unavailable_hint(str(why))
            return None
        except grafana_setup.GrafanaError as error:
            raise StackError(str(error)) from error
        folder = self.run_dir / "grafana"
        try:
            password, generated = grafana_setup.admin_password(folder)
        except grafana_setup.GrafanaError as error:
            raise StackError(str(error)) from error
        provisioning = grafana_setup.write_provisioning(
            folder,
            {"prometheus": self._url("PROMETHEUS_PORT"), "jaeger": self._url("JAEGER_QUERY_PORT")},
            self.scrape_interval,
        )
        self.grafana_started = {
            "url": self._url("GRAFANA_PORT"),
            "user": grafana_setup.ADMIN_USER,
            "password_file": str(folder / grafana_setup.PASSWORD_FILE),
            "binary": found.source,
        }
        if generated:  # printed once, by `stack up`, and never written anywhere but the 0600 file
            self.grafana_started["new_password"] = password
        config = grafana_setup.write_config(folder)
        return ServiceSpec(
            "grafana",
            found.command(config),
            grafana_setup.environment(folder, provisioning, self.host, self.ports["GRAFANA_PORT"], password),
            self._url("GRAFANA_PORT", "/api/health"),
            # `grafana-server` may exec `grafana server`: the run folder's config file stays in argv
            marker=str(config),
        )

    def _spawn(self, spec: ServiceSpec) -> int:
        log_path = self.run_dir / "logs" / f"{spec.name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                spec.command,
                cwd=self.run_dir,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: `stop` reaches its children too
            )
        (self.run_dir / f"{spec.name}.pid").write_text(f"{proc.pid}\n", encoding="utf-8")
        self._spawned.add(proc.pid)
        return proc.pid

    def _wait_healthy(self, spec: ServiceSpec, pid: int, deadline: float) -> None:
        log_path = self.run_dir / "logs" / f"{spec.name}.log"
        if not spec.health_url:  # no health endpoint: alive a moment after start is all there is
            time.sleep(0.5)
            if not _alive(pid):
                raise StackError(f"{spec.name} exited during start-up; {log_path}:\n{_log_tail(log_path)}")
            return
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise StackError(f"{spec.name} exited during start-up; {log_path}:\n{_log_tail(log_path)}")
            if _http_ok(spec.health_url):
                return
            time.sleep(0.2)
        raise StackError(
            f"{spec.name} not healthy at {spec.health_url} in time; {log_path}:\n{_log_tail(log_path)}"
        )

    def restart(self, name: str, timeout: float = 60.0) -> int:
        """Stop one running service (SIGTERM, as an orchestrator would) and start it again with the
        same command and ports; returns its new pid."""
        pids = self._started_pids()
        if name not in pids:
            raise StackError(f"{name} is not running from {self.run_dir}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pids[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pids[name]) and time.monotonic() < deadline:
            time.sleep(0.1)
        roles = [role for role in self._roles_needed()]
        spec = self._specs({role: build.binary(role) for role in roles})[name]
        pids[name] = self._spawn(spec)
        self._programs[name] = spec.program
        self._write_state(pids)
        self._wait_healthy(spec, pids[name], deadline=time.monotonic() + timeout)
        return pids[name]

    def _write_state(self, pids: Mapping[str, int]) -> None:
        state = {
            "pids": dict(pids),
            "programs": dict(self._programs),
            "ports": self.ports,
            "host": self.host,
            "processors": self.processors,
            "samplers": self.samplers,
            "grafana": {key: value for key, value in self.grafana_started.items() if key != "new_password"},
            "endpoints": self.endpoints(),
            **self.instance_urls(),
        }
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self._state_path())

    def stop(self, grace: float = 15.0) -> list[str]:
        """Stop the process groups this run folder started (processor first, so it drains)."""
        pids = self._started_pids()
        stopped: list[str] = []
        # reverse start order: senders stop before what they send to, so queues drain
        for name in sorted(pids, key=lambda n: -_order(n)):
            pid = pids[name]
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                deadline = time.monotonic() + grace
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _alive(pid):
                    logger.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing it", name, pid, grace)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                stopped.append(name)
            # the group may outlive its leader (a child that ignored the leader's exit)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for pid_file in self.run_dir.glob("*.pid"):
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._state_path().unlink()
        return stopped

    def status(self) -> dict[str, object]:
        state = self._read_state()
        if state.get("ports"):
            ports = state["ports"]
            assert isinstance(ports, dict)
            self.ports = {key: int(value) for key, value in ports.items()}
            self.host = str(state.get("host", self.host))
            processors, samplers = state.get("processors", 1), state.get("samplers")
            self.processors = int(processors) if isinstance(processors, int) else 1
            self.samplers = int(samplers) if isinstance(samplers, int) else None
        started_grafana = state.get("grafana")
        self.grafana_started = dict(started_grafana) if isinstance(started_grafana, dict) else {}
        running_pids = self._started_pids()
        specs = self._specs(dict.fromkeys(("collector", "jaeger", "prometheus", "alertmanager"), Path()))
        services: dict[str, dict[str, object]] = {}
        for name, spec in specs.items():
            pid = running_pids.get(name)
            running = pid is not None
            services[name] = {
                "pid": pid,
                "running": running,
                "healthy": running and (not spec.health_url or _http_ok(spec.health_url)),
                "log": str(self.run_dir / "logs" / f"{name}.log"),
            }
            with contextlib.suppress(KeyError):  # the processor is this package, not a cached binary
                services[name]["binary"] = build.provenance(name)
        if self.grafana_started:
            pid = running_pids.get("grafana")
            services["grafana"] = {
                "pid": pid,
                "running": pid is not None,
                "healthy": pid is not None and _http_ok(self._url("GRAFANA_PORT", "/api/health")),
                "log": str(self.run_dir / "logs" / "grafana.log"),
                "binary": self.grafana_started.get("binary", "?"),
            }
        for name, info in services.items():
            if name.split("-", 1)[0] == "processor":
                info["hot_path"] = processor_hot_path(self.run_dir / "logs" / f"{name}.log")
        result: dict[str, object] = dict(self.endpoints())
        result |= self.instance_urls()
        result["run_dir"] = str(self.run_dir)
        result["running"] = any(s["running"] for s in services.values())
        result["services"] = services
        return result

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def processor_hot_path(log: Path) -> str | None:
    """What the processor's start-up line says of its hot path: "accelerated", or the pure-Python
    warning (why, what it costs, the fix); None before it has started."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):  # the latest start
        _, found, said = line.partition("hot path: ")
        if found:
            return "accelerated" if said.startswith("accelerated") else said
    return None
