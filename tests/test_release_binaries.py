"""scripts/build-components: official release archives first, verified, else the Go-module build.

A local HTTP server on 127.0.0.1 plays the release host (GENAI_OTEL_RELEASE_MIRROR points at it),
serving tar.gz archives and checksum files these tests make. The cache is a temporary folder. The
only thing replaced is the Go-module build itself (`build.build_from_go_modules`): it takes minutes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genai_otel.stack import build, cli, release
from genai_otel.stack.env import read_env_file
from genai_otel.stack.runner import LocalStack, free_ports

ENV = read_env_file()
PLATFORM = release.platform_names()
needs_release_platform = pytest.mark.skipif(PLATFORM is None, reason="no release archives for this platform")


class ReleaseHost:
    """Serves `files` (URL path -> bytes) and records every path asked for; 404 for the rest."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                body = host.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def script(text: str) -> bytes:
    return f"#!/bin/sh\necho '{text}'\n".encode()


def targz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def spec(name: str) -> release.Release:
    assert PLATFORM is not None
    return release.release_of(name, build.components()[name].version, *PLATFORM)


def publish(
    host: ReleaseHost, name: str, *, checksum: str | None = None, skip: str | None = None
) -> tuple[release.Release, str]:
    """Put `name`'s release on the host: an archive of fake executables and the checksum file."""
    found = spec(name)
    members = {
        member: script(f"{role} from the release archive")
        for role, member in found.members.items()
        if role != skip
    }
    archive = targz({**members, "LICENSE": b"Apache-2.0\n"})
    digest = hashlib.sha256(archive).hexdigest()
    prefix = found.url("", "")
    host.files[prefix + found.archive] = archive
    host.files[prefix + found.checksums] = (
        f"{'0' * 64}  some-other-asset.tar.gz\n{checksum or digest}  {found.archive}\n"
    ).encode()
    return found, digest


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GENAI_OTEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(release.DOWNLOAD_VARIABLE, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReleaseHost]:
    served = ReleaseHost()
    monkeypatch.setenv(release.MIRROR_VARIABLE, served.base)
    yield served
    served.close()


@pytest.fixture
def go_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stands in for the Go-module build: records the component, installs scripts saying so."""
    built: list[str] = []

    def fake_build(component: build.Component) -> None:
        built.append(component.name)
        for role, path in component.paths().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(script(f"{role} built from Go modules"))
            path.chmod(0o755)

    monkeypatch.setattr(build, "build_from_go_modules", fake_build)
    return built


def fallbacks(log: str) -> list[str]:
    """The build log's "official release not used" lines, without the time each attempt took."""
    return [
        re.sub(r" not used after \d+\.\ds \(", " not used (", line)
        for line in log.splitlines()
        if ": official release not used after " in line
    ]


def says(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, check=True).stdout.strip()


def test_release_layouts_are_the_projects_own() -> None:
    github = "https://github.com"
    collector = release.release_of("collector", "0.159.0", "linux", "amd64")
    assert collector.url(github, collector.archive) == (
        "https://github.com/open-telemetry/opentelemetry-collector-releases/releases/download/"
        "v0.159.0/otelcol-contrib_0.159.0_linux_amd64.tar.gz"
    )
    assert collector.checksums == "opentelemetry-collector-releases_otelcol-contrib_checksums.txt"
    assert collector.members == {"collector": "otelcol-contrib"}
    jaeger = release.release_of("jaeger", "2.13.0", "linux", "arm64")
    assert jaeger.url(github, jaeger.archive) == (
        "https://github.com/jaegertracing/jaeger/releases/download/v2.13.0/jaeger-2.13.0-linux-arm64.tar.gz"
    )
    assert jaeger.checksums == "jaeger-2.13.0.sha256sum.txt"
    assert jaeger.members == {"jaeger": "jaeger-2.13.0-linux-arm64/jaeger"}
    prometheus = release.release_of("prometheus", "3.14.0", "linux", "amd64")
    assert prometheus.url(github + "/", prometheus.checksums) == (
        "https://github.com/prometheus/prometheus/releases/download/v3.14.0/sha256sums.txt"
    )
    assert prometheus.archive == "prometheus-3.14.0.linux-amd64.tar.gz"
    assert prometheus.members == {
        "prometheus": "prometheus-3.14.0.linux-amd64/prometheus",
        "promtool": "prometheus-3.14.0.linux-amd64/promtool",
    }
    alertmanager = release.release_of("alertmanager", "0.29.0", "darwin", "arm64")
    assert alertmanager.url("https://mirror.example/gh", alertmanager.archive) == (
        "https://mirror.example/gh/prometheus/alertmanager/releases/download/v0.29.0/"
        "alertmanager-0.29.0.darwin-arm64.tar.gz"
    )
    assert alertmanager.members["amtool"] == "alertmanager-0.29.0.darwin-arm64/amtool"


def test_platform_names_follow_the_archives() -> None:
    assert release.platform_names("Linux", "x86_64") == ("linux", "amd64")
    assert release.platform_names("Linux", "aarch64") == ("linux", "arm64")
    assert release.platform_names("Darwin", "arm64") == ("darwin", "arm64")
    assert release.platform_names("Windows", "AMD64") is None
    assert release.platform_names("Linux", "riscv64") is None


def test_checksum_lines_in_both_published_formats() -> None:
    digest = "ab" * 32
    assert release.checksum_for(f"{'cd' * 32}  other.tar.gz\n{digest}  a.tar.gz\n", "a.tar.gz") == digest
    # Jaeger's file comes from `shasum -b`: a `*` before the name
    assert release.checksum_for(f"{digest.upper()} *a.tar.gz\n", "a.tar.gz") == digest
    assert release.checksum_for(f"{digest}  a.tar.gz.asc\n", "a.tar.gz") is None
    assert release.checksum_for("not a checksum file", "a.tar.gz") is None


@needs_release_platform
def test_a_verified_release_is_installed_and_recorded_without_building(
    cache: Path, host: ReleaseHost, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    found, digest = publish(host, "prometheus")
    paths = build.ensure(["prometheus"])
    assert go_builds == []
    assert says(paths["prometheus"]) == "prometheus from the release archive"
    assert says(paths["promtool"]) == "promtool from the release archive"
    prefix = found.url("", "")
    assert host.requests == [prefix + found.checksums, prefix + found.archive]
    url = host.base + prefix + found.archive
    record = json.loads(Path(str(paths["promtool"]) + ".provenance.json").read_text())
    assert record == {
        "source": "release",
        "url": url,
        "sha256": digest,
        "checked_against": "sha256sums.txt",
        "member": found.members["promtool"],
    }
    log = capsys.readouterr().err
    assert f"==> prometheus {ENV['PROMETHEUS_VERSION']}: official release installed in" in log
    assert fallbacks(log) == []
    assert f"    promtool: {paths['promtool']} (official release {url}, sha256 verified)" in log
    assert build.provenance("prometheus") == f"official release {url}, sha256 verified"
    assert list((cache / "downloads").iterdir()) == []  # the archive is not kept
    assert sorted(p.name for p in (cache / "bin").iterdir() if p.name.endswith(".partial")) == []


@needs_release_platform
def test_a_checksum_mismatch_is_refused_and_the_go_build_runs(
    cache: Path, host: ReleaseHost, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    found, digest = publish(host, "prometheus", checksum="f" * 64)
    paths = build.ensure(["prometheus"])
    assert go_builds == ["prometheus"]
    assert says(paths["prometheus"]) == "prometheus built from Go modules"
    assert fallbacks(capsys.readouterr().err) == [
        f"==> prometheus {ENV['PROMETHEUS_VERSION']}: official release not used (checksum mismatch, "
        f"archive refused: {found.archive} has sha256 {digest}, sha256sums.txt says {'f' * 64}); "
        "building from Go modules"
    ]
    assert build.provenance("promtool") == "built from Go modules"
    assert [p.name for p in (cache / "bin").iterdir() if "partial" in p.name] == []


@needs_release_platform
def test_an_archive_without_one_of_the_binaries_installs_none_of_them(
    cache: Path, host: ReleaseHost, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    found = publish(host, "alertmanager", skip="amtool")[0]
    paths = build.ensure(["alertmanager"])
    assert go_builds == ["alertmanager"]
    assert says(paths["alertmanager"]) == "alertmanager built from Go modules"
    assert sorted(p.name for p in (cache / "bin").iterdir()) == [
        f"alertmanager-{ENV['ALERTMANAGER_VERSION']}",
        f"alertmanager-{ENV['ALERTMANAGER_VERSION']}.provenance.json",
        f"amtool-{ENV['ALERTMANAGER_VERSION']}",
        f"amtool-{ENV['ALERTMANAGER_VERSION']}.provenance.json",
    ]
    assert fallbacks(capsys.readouterr().err) == [
        f"==> alertmanager {ENV['ALERTMANAGER_VERSION']}: official release not used ({found.archive} "
        f"has no file {found.members['amtool']}); building from Go modules"
    ]


@needs_release_platform
def test_a_missing_release_falls_back_saying_404(
    cache: Path, host: ReleaseHost, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = build.ensure(["alertmanager"])
    assert go_builds == ["alertmanager"]
    assert says(paths["amtool"]) == "amtool built from Go modules"
    checksums = host.base + spec("alertmanager").url("", "sha256sums.txt")
    assert fallbacks(capsys.readouterr().err) == [
        f"==> alertmanager {ENV['ALERTMANAGER_VERSION']}: official release not used (download failed: "
        f"{checksums}: HTTP 404 Not Found); building from Go modules"
    ]


@needs_release_platform
def test_a_host_that_does_not_answer_is_tried_once_and_costs_no_time(
    cache: Path, monkeypatch: pytest.MonkeyPatch, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_ports()['OTLP_GRPC_PORT']}"  # nothing listens there
    monkeypatch.setenv(release.MIRROR_VARIABLE, down)
    started = time.monotonic()
    build.ensure(["prometheus", "alertmanager"])
    assert time.monotonic() - started < 2.0
    assert go_builds == ["prometheus", "alertmanager"]
    checksums = down + spec("prometheus").url("", "sha256sums.txt")
    refused = "[Errno 111] Connection refused"
    assert fallbacks(capsys.readouterr().err) == [
        f"==> prometheus {ENV['PROMETHEUS_VERSION']}: official release not used (download failed: "
        f"{checksums}: {refused}); building from Go modules",
        f"==> alertmanager {ENV['ALERTMANAGER_VERSION']}: official release not used (not tried: "
        f"{down} did not answer ({refused}) earlier in this run); building from Go modules",
    ]


@needs_release_platform
def test_cached_binaries_are_reused_without_any_request(
    cache: Path, host: ReleaseHost, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    publish(host, "prometheus")
    build.ensure(["prometheus"])
    host.requests.clear()
    for component in build.components().values():  # every other component is cached as well
        for path in component.paths().values():
            if not path.exists():
                path.write_bytes(script("cached"))
                path.chmod(0o755)
    build.ensure()
    assert host.requests == []
    assert go_builds == []
    log = capsys.readouterr().err
    assert f"==> prometheus {ENV['PROMETHEUS_VERSION']}: cached" in log
    # binaries cached before provenance records existed came from the Go-module build
    assert f"    jaeger: {build.binary('jaeger')} (built from Go modules; no provenance record)" in log


@needs_release_platform
def test_downloads_can_be_switched_off(
    cache: Path,
    host: ReleaseHost,
    go_builds: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(host, "jaeger")
    monkeypatch.setenv(release.DOWNLOAD_VARIABLE, "0")
    build.ensure(["jaeger"])
    assert host.requests == []
    assert go_builds == ["jaeger"]
    assert fallbacks(capsys.readouterr().err) == [
        f"==> jaeger {ENV['JAEGER_VERSION']}: official release not used (downloads are off "
        "(GENAI_OTEL_RELEASE_DOWNLOAD=0)); building from Go modules"
    ]


@needs_release_platform
def test_a_file_mirror_serves_an_air_gapped_site(
    cache: Path, tmp_path: Path, go_builds: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = spec("jaeger")
    folder = tmp_path / "mirror" / found.url("", "").strip("/")
    folder.mkdir(parents=True)
    archive = targz({found.members["jaeger"]: script("jaeger with its UI")})
    (folder / found.archive).write_bytes(archive)
    # Jaeger's checksum file is written by `shasum -b`
    (folder / found.checksums).write_text(f"{hashlib.sha256(archive).hexdigest()} *{found.archive}\n")
    monkeypatch.setenv(release.MIRROR_VARIABLE, (tmp_path / "mirror").as_uri())
    paths = build.ensure(["jaeger"])
    assert go_builds == []
    assert says(paths["jaeger"]) == "jaeger with its UI"


@needs_release_platform
@pytest.mark.usefixtures("cache")
def test_the_collector_release_is_skipped_when_the_manifest_needs_a_custom_build(
    host: ReleaseHost,
    go_builds: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert build.collector_release_gap() == []  # today's manifest: otelcol-contrib has all of it
    manifest = tmp_path / "builder-config.yaml"
    custom = "example.com/ours/processor/redactprocessor"
    manifest.write_text(build.MANIFEST.read_text() + f"  - gomod: {custom} v0.1.0\n")
    monkeypatch.setattr(build, "MANIFEST", manifest)
    assert build.collector_release_gap() == [custom]
    publish(host, "collector")
    build.ensure(["collector"])
    assert host.requests == []
    assert go_builds == ["collector"]
    assert fallbacks(capsys.readouterr().err) == [
        f"==> collector {ENV['COLLECTOR_VERSION']}: official release not used (the builder manifest "
        f"lists {custom}, which otelcol-contrib is not known to contain); building from Go modules"
    ]


@needs_release_platform
def test_stack_status_says_where_each_binary_came_from(
    cache: Path, host: ReleaseHost, go_builds: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(host, "collector")
    build.ensure(["collector", "jaeger"])  # jaeger has no release on this host: Go modules
    services = LocalStack(tmp_path / "run").status()["services"]
    assert isinstance(services, dict)
    url = host.base + spec("collector").url("", spec("collector").archive)
    assert services["collector"]["binary"] == f"official release {url}, sha256 verified"
    assert services["jaeger"]["binary"] == "built from Go modules"
    assert "binary" not in services["processor"]
    capsys.readouterr()
    assert cli.main(["status", "--run-dir", str(tmp_path / "run")]) == 3  # nothing running
    out = capsys.readouterr().out
    assert f"binary: official release {url}, sha256 verified" in out
    assert "binary: built from Go modules" in out


@needs_release_platform
def test_a_silent_host_costs_one_timeout_per_run(
    cache: Path, monkeypatch: pytest.MonkeyPatch, go_builds: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # accepts connections (the kernel completes them) and never answers: a firewall that drops replies
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv(release.MIRROR_VARIABLE, base)
        monkeypatch.setattr(release, "SOCKET_TIMEOUT_SECONDS", 0.5)
        started = time.monotonic()
        build.ensure(["jaeger", "prometheus", "alertmanager"])
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    assert go_builds == ["jaeger", "prometheus", "alertmanager"]
    checksums = base + spec("jaeger").url("", spec("jaeger").checksums)
    assert fallbacks(capsys.readouterr().err) == [
        f"==> jaeger {ENV['JAEGER_VERSION']}: official release not used (download failed: {checksums}: "
        "timed out); building from Go modules",
        f"==> prometheus {ENV['PROMETHEUS_VERSION']}: official release not used (not tried: {base} did "
        "not answer (timed out) earlier in this run); building from Go modules",
        f"==> alertmanager {ENV['ALERTMANAGER_VERSION']}: official release not used (not tried: {base} did "
        "not answer (timed out) earlier in this run); building from Go modules",
    ]
