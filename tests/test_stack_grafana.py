"""`genai-otel stack up` starts Grafana when a binary is there, provisioned for the live stack.

Grafana itself cannot run on the machines these tests run on (and its Go module is AGPL: never
built here). Every test below therefore starts a *stand-in*: a small Python script the test
writes, named like Grafana's binary (`grafana-server`, or `bin/grafana` in a release archive),
inside a folder laid out as a Grafana home (`conf/defaults.ini`). It stands in for the real
binary no test here can run: it records the argv, the GF_* environment, the --config file and
every provisioning file it was handed, then answers `/api/health` on the address and port the
GF_SERVER_* variables name, as Grafana does, until SIGTERM. It also requests each provisioned
datasource's URL, as Grafana's proxy would (tests/e2e/test_stack_grafana_live.py runs it beside the
real Prometheus and Jaeger). The assertions are on exactly what a real Grafana would be given.

Release downloads come from a local HTTP server on 127.0.0.1 serving an archive the test makes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from genai_otel.stack import cli, release
from genai_otel.stack import grafana as grafana_setup
from genai_otel.stack.env import REPO_ROOT, read_env_file
from genai_otel.stack.runner import LocalStack, free_ports
from tests.test_release_binaries import ReleaseHost, needs_release_platform, targz

ENV = read_env_file()
VERSION = ENV["GRAFANA_VERSION"]
RECORD_VARIABLE = "GRAFANA_STAND_IN_RECORD"

STAND_IN = """#!{python}
# Stands in for Grafana's server binary in genai-otel's tests (Grafana cannot run there).
import http.server, json, os, signal, sys
from pathlib import Path

args = sys.argv[1:]
config = args[args.index("--config") + 1]
provisioning = Path(os.environ["GF_PATHS_PROVISIONING"])
record = {{
    "argv": sys.argv,
    "env": {{k: v for k, v in os.environ.items() if k.startswith("GF_")}},
    "config": Path(config).read_text(),
    "provisioning": {{
        str(p.relative_to(provisioning)): (p.read_text() if p.is_file() else None)
        for p in sorted(provisioning.rglob("*"))
    }},
}}
# what Grafana's proxy would reach through each provisioned datasource
import urllib.request, yaml
probes = {{"prometheus": "/api/v1/status/buildinfo", "jaeger": "/api/services"}}
record["reached"] = {{}}
for source in yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())["datasources"]:
    try:
        with urllib.request.urlopen(source["url"] + probes[source["type"]], timeout=5) as response:
            record["reached"][source["uid"]] = response.status
    except OSError as error:
        record["reached"][source["uid"]] = str(error)
Path(os.environ["{record}"]).write_text(json.dumps(record))


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{{"database": "ok"}}' if self.path == "/api/health" else b"{{}}"
        self.send_response(200 if self.path == "/api/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
addr = (os.environ["GF_SERVER_HTTP_ADDR"], int(os.environ["GF_SERVER_HTTP_PORT"]))
http.server.HTTPServer(addr, Health).serve_forever()
"""


def stand_in() -> bytes:
    return STAND_IN.format(python=sys.executable, record=RECORD_VARIABLE).encode()


def grafana_home(folder: Path, binary: str = "grafana-server") -> Path:
    """A folder laid out as Grafana's home, with the stand-in as its binary; returns the binary."""
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "defaults.ini").write_text("[server]\nhttp_port = 3000\n")
    (folder / "bin").mkdir()
    path = folder / "bin" / binary
    path.write_bytes(stand_in())
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Grafana anywhere (empty PATH entry, empty cache, downloads off) and a record file."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("GENAI_OTEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(release.DOWNLOAD_VARIABLE, "0")
    monkeypatch.delenv(grafana_setup.GRAFANA_VARIABLE, raising=False)
    monkeypatch.delenv(grafana_setup.GRAFANA_HOME_VARIABLE, raising=False)
    monkeypatch.delenv(release.MIRROR_VARIABLE, raising=False)
    monkeypatch.setenv(RECORD_VARIABLE, str(tmp_path / "record.json"))
    return tmp_path


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Free ports; `genai-otel stack` (the CLI, in this process) runs Grafana alone on them: the other
    services need binaries, and how they start is tested elsewhere."""
    picked = free_ports()
    monkeypatch.setattr(cli, "LocalStack", functools.partial(LocalStack, ports=picked, services=()))
    return picked


@pytest.fixture
def stack_down(isolated: Path) -> Iterator[Path]:
    run_dir = isolated / "run"
    yield run_dir
    LocalStack(run_dir).stop()


def recorded(isolated: Path) -> dict[str, Any]:
    return dict(json.loads((isolated / "record.json").read_text()))


def expected_environment(run_dir: Path, port: int, password: str) -> dict[str, str]:
    folder = run_dir / "grafana"
    return {
        "GF_PATHS_DATA": str(folder / "data"),
        "GF_PATHS_LOGS": str(folder / "logs"),
        "GF_PATHS_PLUGINS": str(folder / "plugins"),
        "GF_PATHS_PROVISIONING": str(folder / "provisioning"),
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(port),
        "GF_SECURITY_ADMIN_USER": "admin",
        "GF_SECURITY_ADMIN_PASSWORD": password,
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    }


def test_stack_up_starts_grafana_from_path_provisioned_for_the_live_ports(
    isolated: Path,
    ports: dict[str, int],
    stack_down: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    binary = grafana_home(isolated / "grafana-home")
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    run_dir = stack_down
    assert cli.main(["up", "--run-dir", str(run_dir), "--no-build", "--scrape-interval", "5s"]) == 0
    out = capsys.readouterr().out
    url = f"http://127.0.0.1:{ports['GRAFANA_PORT']}"
    assert f"  {'Grafana (dashboards)':<38} {url}\n" in out

    password_file = run_dir / "grafana" / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o700
    password = password_file.read_text().strip()
    assert len(password) >= 24 and password != "admin"
    assert (
        f"  Grafana login: admin / {password}   (generated; shown this once, kept in {password_file}, "
        "mode 0600)\n"
    ) in out

    got = recorded(isolated)
    config = run_dir / "grafana" / "grafana.ini"
    assert got["argv"] == [str(binary), "--homepath", str(binary.parent.parent), "--config", str(config)]
    assert got["env"] == expected_environment(run_dir, ports["GRAFANA_PORT"], password)
    assert got["config"].startswith("; genai-otel stack up: every Grafana setting is a GF_*")

    provisioning = got["provisioning"]
    assert sorted(provisioning) == [
        "alerting",
        "dashboards",
        "dashboards/genai-otel.yaml",
        "datasources",
        "datasources/datasources.yaml",
        "plugins",
    ]
    datasources = {
        source["uid"]: source
        for source in yaml.safe_load(provisioning["datasources/datasources.yaml"])["datasources"]
    }
    assert datasources["genai-otel-prometheus"]["url"] == f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
    assert datasources["genai-otel-prometheus"]["jsonData"]["timeInterval"] == "5s"
    # exemplars still link to the Jaeger datasource, by uid
    assert datasources["genai-otel-prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "genai-otel-jaeger"}
    ]
    assert datasources["genai-otel-jaeger"]["url"] == f"http://127.0.0.1:{ports['JAEGER_QUERY_PORT']}"
    (provider,) = yaml.safe_load(provisioning["dashboards/genai-otel.yaml"])["providers"]
    dashboards = Path(provider["options"]["path"])
    assert dashboards == REPO_ROOT / "grafana" / "dashboards"
    assert sorted(p.name for p in dashboards.glob("*.json")) == sorted(
        p.name for p in (REPO_ROOT / "grafana" / "dashboards").glob("*.json")
    )
    assert len(list(dashboards.glob("*.json"))) >= 6

    assert cli.main(["status", "--run-dir", str(run_dir)]) == 0
    status = capsys.readouterr().out
    pid = int((run_dir / "grafana.pid").read_text())
    assert f"  grafana       healthy  pid {pid}\n" in status
    assert "binary: grafana-server on PATH\n" in status
    assert f"  {'Grafana (dashboards)':<38} {url}\n" in status
    assert password not in status

    assert cli.main(["down", "--run-dir", str(run_dir)]) == 0
    assert "grafana" in capsys.readouterr().out
    assert not Path(f"/proc/{pid}").exists()

    # the next start of the same run folder keeps the password Grafana's database already holds
    (run_dir / "grafana" / "data").mkdir(exist_ok=True)
    (run_dir / "grafana" / "data" / "grafana.db").write_bytes(b"")
    assert cli.main(["up", "--run-dir", str(run_dir), "--no-build"]) == 0
    again = capsys.readouterr().out
    assert f"  Grafana login: admin, password in {password_file}\n" in again
    assert password not in again
    assert recorded(isolated)["env"]["GF_SECURITY_ADMIN_PASSWORD"] == password


def test_without_a_grafana_stack_up_says_in_one_line_how_to_get_one(
    isolated: Path, ports: dict[str, int], stack_down: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "Grafana" in line]
    assert line == (
        "  Grafana: not started (no grafana or grafana-server on PATH; official release not used "
        "(downloads are off (GENAI_OTEL_RELEASE_DOWNLOAD=0))); to have it, put Grafana "
        f"{VERSION} on PATH or set GENAI_OTEL_GRAFANA=/path/to/bin/grafana, or use `docker compose up`, "
        "which has it"
    )
    assert not (stack_down / "grafana").exists()
    assert not (isolated / "record.json").exists()


def test_grafana_can_be_switched_off(
    isolated: Path,
    ports: dict[str, int],
    stack_down: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    binary = grafana_home(isolated / "grafana-home")
    monkeypatch.setenv("PATH", str(binary.parent))
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build", "--grafana", "off"]) == 0
    assert "Grafana: not started (switched off (GENAI_OTEL_GRAFANA=off))" in capsys.readouterr().out
    assert not (isolated / "record.json").exists()


def test_a_configured_grafana_that_cannot_run_fails_stack_up(
    isolated: Path,
    ports: dict[str, int],
    stack_down: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lone = isolated / "lone" / "grafana"  # an executable with no Grafana home around it
    lone.parent.mkdir()
    lone.write_bytes(stand_in())
    lone.chmod(0o755)
    monkeypatch.setenv(grafana_setup.GRAFANA_VARIABLE, str(lone))
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"genai-otel stack up: GENAI_OTEL_GRAFANA={lone}: no Grafana home (conf/defaults.ini) beside it; "
        "set GENAI_OTEL_GRAFANA_HOME"
    )
    monkeypatch.setenv(
        grafana_setup.GRAFANA_HOME_VARIABLE, str(grafana_home(isolated / "home").parent.parent)
    )
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 0
    assert recorded(isolated)["argv"][:4] == [str(lone), "server", "--homepath", str(isolated / "home")]


def publish_grafana(host: ReleaseHost, *, checksum: str | None = None) -> release.Release:
    names = release.platform_names()
    assert names is not None
    spec = release.release_of("grafana", VERSION, *names)
    folder = f"grafana-v{VERSION}"
    archive = targz(
        {
            f"{folder}/bin/grafana": stand_in(),
            f"{folder}/conf/defaults.ini": b"[server]\nhttp_port = 3000\n",
            f"{folder}/public/build/index.html": b"<html></html>\n",
        }
    )
    prefix = spec.url("", "")
    host.files[prefix + spec.archive] = archive
    # Grafana's `.sha256` file holds the bare digest
    host.files[prefix + spec.checksums] = (checksum or hashlib.sha256(archive).hexdigest()).encode() + b"\n"
    return spec


@pytest.fixture
def host(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReleaseHost]:
    """A local HTTP server standing in for the release site, as the mirror; downloads allowed
    (`isolated` turns them off first)."""
    served = ReleaseHost()
    monkeypatch.setenv(release.MIRROR_VARIABLE, served.base)
    monkeypatch.delenv(release.DOWNLOAD_VARIABLE)
    yield served
    served.close()


@needs_release_platform
def test_grafana_is_downloaded_verified_and_started(
    host: ReleaseHost,
    isolated: Path,
    ports: dict[str, int],
    stack_down: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = publish_grafana(host)
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 0
    home = isolated / "cache" / "grafana" / f"grafana-{VERSION}"
    assert host.requests == [f"/oss/release/{spec.checksums}", f"/oss/release/{spec.archive}"]
    assert recorded(isolated)["argv"][:4] == [
        str(home / "bin" / "grafana"),
        "server",
        "--homepath",
        str(home),
    ]
    assert (home / "public" / "build" / "index.html").exists()
    assert cli.main(["status", "--run-dir", str(stack_down)]) == 0
    url = f"{host.base}/oss/release/{spec.archive}"
    assert f"binary: official release {url}, sha256 verified\n" in capsys.readouterr().out
    assert cli.main(["down", "--run-dir", str(stack_down)]) == 0
    # cached: the next start asks nothing
    host.requests.clear()
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 0
    assert host.requests == []


@needs_release_platform
def test_a_grafana_archive_failing_its_checksum_is_refused(
    host: ReleaseHost,
    isolated: Path,
    ports: dict[str, int],
    stack_down: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = publish_grafana(host, checksum="e" * 64)
    assert cli.main(["up", "--run-dir", str(stack_down), "--no-build"]) == 0
    out = capsys.readouterr().out
    assert f"(checksum mismatch, archive refused: {spec.archive} has sha256 " in out
    assert f"{spec.checksums} says {'e' * 64})); to have it, put Grafana" in out
    assert not (isolated / "record.json").exists()
    assert not (isolated / "cache" / "grafana" / f"grafana-{VERSION}").exists()


def test_grafana_release_layout_is_grafanas_own() -> None:
    spec = release.release_of("grafana", "11.6.0", "linux", "amd64")
    assert spec.url(release.GRAFANA_BASE, spec.archive) == (
        "https://dl.grafana.com/oss/release/grafana-11.6.0.linux-amd64.tar.gz"
    )
    assert spec.checksums == "grafana-11.6.0.linux-amd64.tar.gz.sha256"
    assert spec.members["grafana"] == "grafana-v11.6.0/bin/grafana"
    digest = "ab" * 32
    assert release.checksum_for(f"{digest}\n", spec.archive, bare=True) == digest
    assert release.checksum_for(f"{digest}\n", spec.archive) is None


def test_compose_mounts_the_folder_the_provisioning_paths_are_rewritten_from() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["grafana"]
    assert f"./grafana:{grafana_setup.COMPOSE_MOUNT}:ro" in service["volumes"]
    assert service["environment"]["GF_PATHS_PROVISIONING"] == f"{grafana_setup.COMPOSE_MOUNT}/provisioning"
