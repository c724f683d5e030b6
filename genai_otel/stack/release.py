"""Official release archives of the stack's components: where they are and how they are checked.

`scripts/build-components` tries these before building from Go modules. For the pinned version it
downloads the checksum file the release publishes, then the archive for this platform, refuses the
archive unless its SHA-256 equals the checksum file's line for it, and extracts the binaries into
the cache, each with a provenance record beside it (`<binary>.provenance.json`).

- collector: the `otelcol-contrib` distribution of opentelemetry-collector-releases (it contains
  every component the builder manifest lists; see `build.collector_release_gap`)
- jaeger: `jaeger-<v2 version>-<os>-<arch>.tar.gz` (its UI is built into the binary)
- prometheus, alertmanager: `<name>-<version>.<os>-<arch>.tar.gz` with `sha256sums.txt`
- grafana (started by `genai-otel stack up`, never built): `grafana-<version>.<os>-<arch>.tar.gz` from
  Grafana's own download site (https://dl.grafana.com/oss/release/), checked against the
  `<archive>.sha256` file published beside it, and extracted whole (the server needs its `conf/`
  and `public/` folders); see `genai_otel.stack.grafana`

Environment:
- GENAI_OTEL_RELEASE_MIRROR: base URL replacing https://github.com (and https://dl.grafana.com),
  same path layout below it (`<base>/prometheus/prometheus/releases/download/v3.14.0/...`,
  `<base>/oss/release/grafana-11.6.0.linux-amd64.tar.gz`); http(s):// or file://.
- GENAI_OTEL_RELEASE_DOWNLOAD=0: never download; build from Go modules.

Only the standard library is used: this runs before any virtualenv exists.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_BASE = "https://github.com"
GRAFANA_BASE = "https://dl.grafana.com"
MIRROR_VARIABLE = "GENAI_OTEL_RELEASE_MIRROR"
DOWNLOAD_VARIABLE = "GENAI_OTEL_RELEASE_DOWNLOAD"
# Each socket operation (connect, TLS handshake, every read) waits at most this long, and nothing
# is retried: a host that does not answer costs this once per run (see Fetcher), then the Go-module
# build goes ahead. A live server never pauses this long between two reads of a download.
SOCKET_TIMEOUT_SECONDS = 5.0
PROVENANCE_SUFFIX = ".provenance.json"
MAX_CHECKSUMS_BYTES = 1 << 20  # the real ones are a few kB
_CHUNK = 1 << 20


class ReleaseUnavailable(Exception):
    """The official release could not be used; the message says why, in one line."""


@dataclass(frozen=True)
class Release:
    project: str  # GitHub owner/name: the path below the base URL
    tag: str
    archive: str
    checksums: str  # the release's checksum file, one `<sha256> [*]<file>` line per asset
    members: dict[str, str]  # binary role -> path of its file inside the archive
    # where it is published when no mirror is configured, and the folder below that host
    # (empty: GitHub's `<project>/releases/download/<tag>` layout)
    origin: str = DEFAULT_BASE
    folder: str = ""

    def url(self, base: str, file: str) -> str:
        folder = self.folder or f"{self.project}/releases/download/{self.tag}"
        return f"{base.rstrip('/')}/{folder}/{file}"


def platform_names(system: str | None = None, machine: str | None = None) -> tuple[str, str] | None:
    """This machine as release archives name it (("linux", "amd64"), ...); None when none is published."""
    os_name = (system or platform.system()).lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        (machine or platform.machine()).lower()
    )
    if os_name not in {"linux", "darwin"} or arch is None:
        return None
    return os_name, arch


def release_of(name: str, version: str, os_name: str, arch: str) -> Release:
    """The release asset layout each project publishes, for `version` on `os_name`/`arch`."""
    tag = f"v{version}"
    if name == "collector":
        return Release(
            "open-telemetry/opentelemetry-collector-releases",
            tag,
            f"otelcol-contrib_{version}_{os_name}_{arch}.tar.gz",
            "opentelemetry-collector-releases_otelcol-contrib_checksums.txt",
            {"collector": "otelcol-contrib"},
        )
    if name == "jaeger":
        folder = f"jaeger-{version}-{os_name}-{arch}"
        return Release(
            "jaegertracing/jaeger",
            tag,
            f"{folder}.tar.gz",
            f"jaeger-{version}.sha256sum.txt",
            {"jaeger": f"{folder}/jaeger"},
        )
    if name in {"prometheus", "alertmanager"}:
        folder = f"{name}-{version}.{os_name}-{arch}"
        tool = "promtool" if name == "prometheus" else "amtool"
        return Release(
            f"prometheus/{name}",
            tag,
            f"{folder}.tar.gz",
            "sha256sums.txt",
            {name: f"{folder}/{name}", tool: f"{folder}/{tool}"},
        )
    if name == "grafana":
        # Grafana publishes its archives on its own download site, one `.sha256` file per archive
        # (the bare digest); the archive's folder is `grafana-v<version>`
        archive = f"grafana-{version}.{os_name}-{arch}.tar.gz"
        return Release(
            "grafana/grafana",
            tag,
            archive,
            f"{archive}.sha256",
            {
                "grafana": f"grafana-v{version}/bin/grafana",
                "defaults": f"grafana-v{version}/conf/defaults.ini",
            },
            origin=GRAFANA_BASE,
            folder="oss/release",
        )
    raise KeyError(name)


def checksum_for(checksums: str, file: str, *, bare: bool = False) -> str | None:
    """The SHA-256 a checksum file (sha256sum or `shasum -b` format) gives for `file`; with `bare`
    (a file published for that one archive, `<archive>.sha256`) the digest alone counts too."""
    if bare and re.fullmatch(r"[0-9a-fA-F]{64}", checksums.strip()):
        return checksums.strip().lower()
    for line in checksums.splitlines():
        match = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(?:\./)?(\S+)\s*", line)
        if match and match[2] == file:
            return match[1].lower()
    return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _short(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


class Fetcher:
    """Release downloads for one run of build-components.

    A base URL that did not answer (no route, no DNS, a timeout) is not asked again in the same run,
    so an offline machine pays the timeout once, not once per component; a 404 or a bad checksum
    concerns one release only. `mirror` (None: each release's own origin) replaces every origin.
    """

    def __init__(self, mirror: str | None = None, *, enabled: bool = True) -> None:
        self.mirror = mirror
        self.enabled = enabled
        self.unreachable: dict[str, str] = {}  # base URL -> why it is not asked again

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Fetcher:
        environ = os.environ if environ is None else environ
        switch = environ.get(DOWNLOAD_VARIABLE, "").strip().lower()
        return cls(
            environ.get(MIRROR_VARIABLE, "").strip() or None,
            enabled=switch not in {"0", "false", "no", "off"},
        )

    def install(self, release: Release, targets: dict[str, Path], work_dir: Path) -> dict[str, str]:
        """Download, verify and extract `release` into `targets` (role -> path); return its record.

        Raises ReleaseUnavailable, saying why, when the release cannot be used; nothing is installed then.
        """
        archive, record = self._fetch_verified(release, work_dir)
        try:
            _extract(archive, release, targets, record)
        finally:
            archive.unlink(missing_ok=True)
        return record

    def install_tree(self, release: Release, target: Path, work_dir: Path) -> dict[str, str]:
        """Download and verify `release`, then extract its one top folder, whole, as `target` (for
        programs that need the files beside their binary); the record goes beside the folder."""
        archive, record = self._fetch_verified(release, work_dir)
        try:
            _extract_tree(archive, release, target, record)
        finally:
            archive.unlink(missing_ok=True)
        return record

    def _fetch_verified(self, release: Release, work_dir: Path) -> tuple[Path, dict[str, str]]:
        """The archive downloaded into `work_dir` and checked against its release's checksum file."""
        base = self.mirror or release.origin
        if not self.enabled:
            raise ReleaseUnavailable(f"downloads are off ({DOWNLOAD_VARIABLE}=0)")
        if not base.startswith(("http://", "https://", "file://")):
            raise ReleaseUnavailable(f"{MIRROR_VARIABLE}={base!r} is not an http(s):// or file:// URL")
        if base in self.unreachable:
            raise ReleaseUnavailable(f"not tried: {self.unreachable[base]} earlier in this run")
        checksums_url = release.url(base, release.checksums)
        received = bytearray()

        def collect(chunk: bytes) -> None:
            received.extend(chunk)
            if len(received) > MAX_CHECKSUMS_BYTES:
                raise ReleaseUnavailable(f"{checksums_url} is over {MAX_CHECKSUMS_BYTES} bytes")

        with self._open(checksums_url, base) as response:
            self._read(response, checksums_url, collect)
        checksums = received.decode("utf-8", errors="replace")
        expected = checksum_for(
            checksums, release.archive, bare=release.checksums == release.archive + ".sha256"
        )
        if expected is None:
            raise ReleaseUnavailable(f"{checksums_url} has no line for {release.archive}")
        work_dir.mkdir(parents=True, exist_ok=True)
        archive = work_dir / release.archive
        try:
            actual = self._download(release.url(base, release.archive), archive, base)
            if actual != expected:
                raise ReleaseUnavailable(
                    f"checksum mismatch, archive refused: {release.archive} has sha256 {actual}, "
                    f"{release.checksums} says {expected}"
                )
        except BaseException:
            archive.unlink(missing_ok=True)
            raise
        record = {
            "source": "release",
            "url": release.url(base, release.archive),
            "sha256": actual,
            "checked_against": release.checksums,
        }
        return archive, record

    def _open(self, url: str, base: str) -> IO[bytes]:
        request = urllib.request.Request(url, headers={"User-Agent": "genai-otel-build-components"})
        try:
            response: IO[bytes] = urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_SECONDS)
        except urllib.error.HTTPError as error:
            raise ReleaseUnavailable(f"download failed: {url}: {_short(error)}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if url.startswith(("http://", "https://")) and isinstance(reason, OSError | TimeoutError):
                self.unreachable[base] = f"{base} did not answer ({_short(error)})"
            raise ReleaseUnavailable(f"download failed: {url}: {_short(error)}") from error
        return response

    def _read(self, response: IO[bytes], url: str, consume: Callable[[bytes], object]) -> None:
        """Pass the whole response to `consume`, chunk by chunk; a broken-off transfer is one reason."""
        try:
            while chunk := response.read(_CHUNK):
                consume(chunk)
        except (OSError, TimeoutError) as error:
            raise ReleaseUnavailable(f"download broke off: {url}: {_short(error)}") from error

    def _download(self, url: str, path: Path, base: str) -> str:
        """Stream `url` into `path`; return its SHA-256. Logs its size and how long it took."""
        started = time.monotonic()
        digest = hashlib.sha256()
        with self._open(url, base) as response, path.open("wb") as out:
            size = getattr(response, "headers", {}).get("Content-Length")
            _log(f"    downloading {url}" + (f" ({int(size) / 1e6:.0f} MB)" if size else ""))

            def consume(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)

            self._read(response, url, consume)
        _log(f"    downloaded {path.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f}s")
        return digest.hexdigest()


def _extract(archive: Path, release: Release, targets: dict[str, Path], record: dict[str, str]) -> None:
    """Extract each role's file (regular files only, never links) next to its target, then move them
    all in; when one is missing or unreadable, none is installed and nothing is left behind."""
    staged: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            for role, name in release.members.items():
                member = members.get(name)
                if member is None or not member.isfile():
                    raise ReleaseUnavailable(f"{release.archive} has no file {name}")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has contents
                partial = targets[role].with_name(targets[role].name + ".partial")
                partial.parent.mkdir(parents=True, exist_ok=True)
                staged[role] = partial
                with source, partial.open("wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                partial.chmod(0o755)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        _discard(staged)
        raise ReleaseUnavailable(f"{release.archive} is not a readable tar.gz: {error}") from error
    except OSError as error:
        _discard(staged)
        raise ReleaseUnavailable(f"cannot extract {release.archive} into {targets}: {error}") from error
    except ReleaseUnavailable:
        _discard(staged)
        raise
    for role, partial in staged.items():
        # the record first: a binary is never in place without the record that says where it came from
        write_provenance(targets[role], {**record, "member": release.members[role]})
        partial.replace(targets[role])


def _extract_tree(archive: Path, release: Release, target: Path, record: dict[str, str]) -> None:
    """Extract the archive's top folder as `target` (regular files, folders and links that stay
    inside it; tarfile's "data" filter), after checking every member the release names is there;
    on any failure nothing is left behind."""
    top = {name.split("/", 1)[0] for name in release.members.values()}
    if len(top) != 1 or not hasattr(tarfile, "data_filter"):
        raise ReleaseUnavailable(f"{release.archive}: cannot extract it whole here (Python 3.11.4+ needed)")
    (folder,) = top
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            for name in release.members.values():
                if name not in members or not members[name].isfile():
                    raise ReleaseUnavailable(f"{release.archive} has no file {name}")
            staging.mkdir(parents=True)
            inside = [member for name, member in members.items() if name.split("/", 1)[0] == folder]
            tar.extractall(staging, members=inside, filter="data")
        # the record first: a folder is never in place without the record that says where it came from
        write_provenance(target, {**record, "member": folder})
        shutil.rmtree(target, ignore_errors=True)
        (staging / folder).replace(target)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        target.with_name(target.name + PROVENANCE_SUFFIX).unlink(missing_ok=True)
        raise ReleaseUnavailable(f"{release.archive} is not a readable tar.gz: {error}") from error
    except OSError as error:
        target.with_name(target.name + PROVENANCE_SUFFIX).unlink(missing_ok=True)
        raise ReleaseUnavailable(f"cannot extract {release.archive} into {target}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _discard(staged: Mapping[str, Path]) -> None:
    for partial in staged.values():
        partial.unlink(missing_ok=True)


def write_provenance(binary: Path, record: Mapping[str, str]) -> None:
    sidecar = binary.with_name(binary.name + PROVENANCE_SUFFIX)
    partial = sidecar.with_name(sidecar.name + ".partial")
    partial.write_text(json.dumps(dict(record), indent=2) + "\n", encoding="utf-8")
    partial.replace(sidecar)


def read_provenance(binary: Path) -> dict[str, str]:
    """The record beside a cached binary; binaries cached before records existed were Go-module builds."""
    try:
        record = json.loads(binary.with_name(binary.name + PROVENANCE_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"source": "go-modules", "note": "no provenance record (cached before records were kept)"}
    return record if isinstance(record, dict) else {"source": "unknown"}


def describe(record: Mapping[str, str]) -> str:
    """One phrase for the build log and `stack status`: where a binary came from."""
    if record.get("source") == "release":
        return f"official release {record.get('url', '?')}, sha256 verified"
    if record.get("source") == "go-modules":
        return "built from Go modules" + ("; no provenance record" if "note" in record else "")
    return f"unknown provenance ({record.get('source')})"
