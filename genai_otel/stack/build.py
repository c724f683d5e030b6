"""Build or find the real stack components and cache them under ~/.cache/genai-otel/bin/.

    scripts/build-components [collector|jaeger|prometheus|alertmanager|helm ...]   (default: all)

A component that is not cached comes first from its official release archive for the pinned
version, checked against the checksum file of the same release (see `genai_otel.stack.release`);
when that download fails or does not verify, one line says why and it is built from Go modules as
below. A cached binary is reused without any network access. Each binary has a provenance record
beside it (`<binary>.provenance.json`: the release URL and SHA-256, or `go-modules`).

Each binary's file name carries its version (`otelcol-genai-0.159.0-<manifest digest>`,
`jaeger-2.20.0`, ...), so a version bump in `.env` builds a new binary and an unchanged version is
reused at once. The collector's name also carries the first 12 hex digits of the builder manifest's
SHA-256: adding a component to the manifest builds a new binary instead of reusing one without it. Builds use
the Go toolchain with its default module cache (~/go/pkg/mod) and build cache, run under `nice`,
and write the binary atomically, so an interrupted build never leaves a broken file behind.

- collector: the official OpenTelemetry Collector Builder at COLLECTOR_VERSION, manifest
  `collector-config/builder-config.yaml`.
- jaeger: Jaeger v2 publishes its Go module without the /v2 suffix, as v1.x tags (JAEGER_VERSION
  2.13.0 = JAEGER_GO_MODULE_VERSION 1.76.0), whose go.mod has a `replace` line.
- prometheus, promtool: Prometheus's Go module (v3.X.Y is module v0.3XX.Y), with
  `-tags remove_all_sd` (the stack only uses static targets).

  Both go.mod files carry `exclude`/`replace` directives, which `go install pkg@version` refuses.
  They are built through a small generated wrapper module that requires the upstream module and
  repeats those directives.
- alertmanager, amtool: `go install github.com/prometheus/alertmanager/cmd/...@vALERTMANAGER_VERSION`.
- helm: `go install helm.sh/helm/v3/cmd/helm@vHELM_VERSION` (always from its Go module: Helm does not
  publish its release archives where the collector's, Jaeger's and Prometheus's are). Only the tests
  use it, to render and check the Kubernetes chart under deploy/helm/.

The collector's release is the otelcol-contrib distribution, used only while every component the
manifest lists is one it contains (`collector_release_gap`); it is cached under the same name.

Environment: GENAI_OTEL_CACHE_DIR (default ~/.cache/genai-otel), GO (default `go`),
GENAI_OTEL_RELEASE_MIRROR (base URL replacing https://github.com, same path layout),
GENAI_OTEL_RELEASE_DOWNLOAD=0 (no downloads: build from Go modules).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from genai_otel.stack import release
from genai_otel.stack.env import REPO_ROOT, settings

MANIFEST = REPO_ROOT / "collector-config" / "builder-config.yaml"


# How long each Go-module build took, measured on 2 vCPUs from an empty Go module cache while other
# test suites shared the machine (README "Which component versions, and why"; Helm: "Quick start").
# The progress lines quote them; with a warm module cache every build is shorter.
GO_BUILD_SECONDS = {
    "collector": 5 * 60 + 17,  # builder install included
    "jaeger": 15 * 60 + 1,
    "prometheus": 8 * 60 + 38,  # and promtool
    "alertmanager": 3 * 60 + 26,  # and amtool
    "helm": 4 * 60,  # "about 3-5 min"
}
# While a Go build runs and stderr is no terminal (a CI log, a pipe), a line every this many
# seconds says it is still going: Go prints nothing for minutes while it compiles.
HEARTBEAT_SECONDS = 30.0


class BuildError(RuntimeError):
    """A component could not be built; the message says which step failed and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("GENAI_OTEL_CACHE_DIR") or Path.home() / ".cache" / "genai-otel")


def bin_dir() -> Path:
    return cache_dir() / "bin"


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    # binary role -> cached file name (role is what the stack asks for, e.g. "promtool")
    binaries: dict[str, str]
    build: Callable[[Component, Path], None]
    about: str
    # False: no official release archive is tried (`genai_otel.stack.release` knows none)
    has_release: bool = True

    def paths(self) -> dict[str, Path]:
        return {role: bin_dir() / file for role, file in self.binaries.items()}

    def is_cached(self) -> bool:
        return all(os.access(p, os.X_OK) for p in self.paths().values())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _go() -> str:
    go = os.environ.get("GO") or shutil.which("go")
    if not go:
        raise BuildError(
            "the Go toolchain is needed to build the collector, Jaeger, Prometheus and Alertmanager, "
            "and `go` is not on PATH: install Go >= 1.25 (https://go.dev/dl/) or set GO=/path/to/go"
        )
    return go


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, step: str) -> None:
    """Run one build step under `nice`, streaming its output; fail with the step's last output."""
    command = (["nice", "-n", "10"] if shutil.which("nice") else []) + args
    log(f"    $ {' '.join(args)}")
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = [*tail[-39:], line.rstrip()]
        # module downloads are noisy and say nothing about progress; show everything else
        if not line.startswith(("go: downloading", "go: added", "go: upgraded")):
            log(f"      {line.rstrip()}")
    if proc.wait() != 0:
        raise BuildError(f"{step} failed (exit {proc.returncode}); last output:\n" + "\n".join(tail))


def _install_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copy2(source, partial)
    partial.chmod(0o755)
    partial.replace(target)


def _go_install(package: str, version: str, binary: str, target: Path, ldflags: str = "") -> None:
    with tempfile.TemporaryDirectory(prefix="genai-otel-gobin-") as gobin:
        _run(
            [_go(), "install", *(["-ldflags", ldflags] if ldflags else []), f"{package}@{version}"],
            cwd=Path(gobin),
            env={"GOBIN": gobin},
            step=f"go install {package}@{version}",
        )
        _install_atomically(Path(gobin) / binary, target)


def _build_collector(component: Component, _: Path) -> None:
    version = component.version
    tools = cache_dir() / "tools" / f"builder-{version}"
    builder = tools / "builder"
    if not os.access(builder, os.X_OK):
        log(f"    installing the OpenTelemetry Collector Builder v{version}")
        _go_install("go.opentelemetry.io/collector/cmd/builder", f"v{version}", "builder", builder)
    build = cache_dir() / "build" / f"collector-{version}"
    build.mkdir(parents=True, exist_ok=True)
    manifest = build / "builder-config.yaml"
    text = MANIFEST.read_text(encoding="utf-8")
    text = text.replace("${COLLECTOR_VERSION}", version).replace("${OUTPUT_PATH}", str(build / "dist"))
    if "${" in text:
        raise BuildError(
            f"{MANIFEST}: unknown placeholder left after rendering: {text[text.index('${') :][:40]}"
        )
    manifest.write_text(text, encoding="utf-8")
    _run([str(builder), "--config", str(manifest)], cwd=build, step="collector builder")
    _install_atomically(build / "dist" / "otelcol-genai", component.paths()["collector"])


def _build_jaeger(component: Component, _: Path) -> None:
    module_version = "v" + settings()["JAEGER_GO_MODULE_VERSION"]
    _build_through_wrapper(
        "github.com/jaegertracing/jaeger",
        module_version,
        {"jaeger": "cmd/jaeger"},
        build_dir=cache_dir() / "build" / f"jaeger-{component.version}",
        targets=component.paths(),
        ldflags=f"-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v{component.version}",
    )


def prometheus_module_version(version: str) -> str:
    """Prometheus v3.14.0 is published as Go module v0.314.0."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise BuildError(f"PROMETHEUS_VERSION={version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return f"v0.{major}{minor:02d}.{patch}"


def _download_module(module: str, version: str, cwd: Path) -> tuple[str, str]:
    """Download `module@version`; return its go.mod and go.sum texts (go.sum may be empty)."""
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BuildError(f"go mod download {module}@{version} failed:\n{out.stdout}{out.stderr}")
    info = json.loads(out.stdout)
    go_sum = Path(info["Dir"]) / "go.sum"
    return (
        Path(info["GoMod"]).read_text(encoding="utf-8"),
        go_sum.read_text(encoding="utf-8") if go_sum.exists() else "",
    )


def directives(go_mod: str, keyword: str) -> list[str]:
    """The `exclude` or `replace` directives of a go.mod, single-line and block form, as lines."""
    found: list[str] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                found.append(f"{keyword} {line}")
        elif line == f"{keyword} (":
            in_block = True
        elif line.startswith(f"{keyword} "):
            found.append(line)
    return found


def _build_through_wrapper(
    module: str,
    version: str,
    commands: dict[str, str],
    *,
    build_dir: Path,
    targets: dict[str, Path],
    tags: str = "",
    ldflags: str = "",
) -> None:
    """Build `module`'s commands at `version` in a wrapper module repeating its go.mod directives and sums."""
    build_dir.mkdir(parents=True, exist_ok=True)
    upstream, upstream_sums = _download_module(module, version, build_dir)
    go_line = next((line for line in upstream.splitlines() if line.startswith("go ")), "go 1.25")
    lines = [
        "// generated by genai_otel.stack.build: builds the commands of " + module,
        "module genai-otel.local/build-wrapper",
        "",
        go_line,
        "",
        *directives(upstream, "exclude"),
        *directives(upstream, "replace"),
        "",
    ]
    (build_dir / "go.mod").write_text("\n".join(lines), encoding="utf-8")
    # Upstream's checksums pin the whole dependency graph, as a plain `go install` would; they also
    # spare checksum-database lookups, which a module mirror may not answer for older versions.
    (build_dir / "go.sum").write_text(upstream_sums, encoding="utf-8")
    # the wrapper has no go.sum entries of its own yet: let go resolve them (keeping the user's flags)
    env = {"GOFLAGS": " ".join(filter(None, (os.environ.get("GOFLAGS", ""), "-mod=mod")))}
    packages = [f"{module}/{path}@{version}" for path in commands.values()]
    _run([_go(), "get", *packages], cwd=build_dir, env=env, step=f"go get {module}@{version}")
    for role, path in commands.items():
        output = build_dir / role
        args = [_go(), "build", "-o", str(output)]
        args += ["-tags", tags] if tags else []
        args += ["-ldflags", ldflags] if ldflags else []
        _run([*args, f"{module}/{path}"], cwd=build_dir, env=env, step=f"go build {role}")
        _install_atomically(output, targets[role])


def _build_prometheus(component: Component, _: Path) -> None:
    _build_through_wrapper(
        "github.com/prometheus/prometheus",
        prometheus_module_version(component.version),
        {"prometheus": "cmd/prometheus", "promtool": "cmd/promtool"},
        build_dir=cache_dir() / "build" / f"prometheus-{component.version}",
        targets=component.paths(),
        tags="remove_all_sd",
        ldflags=f"-X github.com/prometheus/common/version.Version={component.version}",
    )


def _build_alertmanager(component: Component, _: Path) -> None:
    version = f"v{component.version}"
    for role in ("alertmanager", "amtool"):
        _go_install(f"github.com/prometheus/alertmanager/cmd/{role}", version, role, component.paths()[role])


def _build_helm(component: Component, _: Path) -> None:
    version = f"v{component.version}"
    _go_install(
        "helm.sh/helm/v3/cmd/helm",
        version,
        "helm",
        component.paths()["helm"],
        # what `helm version` prints; a plain `go install` leaves it empty
        ldflags=f"-X helm.sh/helm/v3/internal/version.version={version}",
    )


def manifest_digest() -> str:
    """First 12 hex digits of the builder manifest's SHA-256: part of the collector's cache key."""
    return hashlib.sha256(MANIFEST.read_bytes()).hexdigest()[:12]


# The manifest's components that the otelcol-contrib distribution contains too (its own manifest
# lists them): while the manifest lists nothing else, the contrib release can stand in for our build.
OTELCOL_CONTRIB_CONTAINS = frozenset(
    {
        "go.opentelemetry.io/collector/receiver/otlpreceiver",
        "go.opentelemetry.io/collector/processor/memorylimiterprocessor",
        "go.opentelemetry.io/collector/processor/batchprocessor",
        "go.opentelemetry.io/collector/exporter/otlpexporter",
        "go.opentelemetry.io/collector/exporter/otlphttpexporter",
        "go.opentelemetry.io/collector/exporter/debugexporter",
        "go.opentelemetry.io/collector/connector/forwardconnector",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/tailsamplingprocessor",
        "github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor",
        "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter",
        "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter",
        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension",
        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage",
        "github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension",
    }
)


def collector_release_gap(manifest: str | None = None) -> list[str]:
    """The manifest's component modules the otelcol-contrib release is not known to contain."""
    text = MANIFEST.read_text(encoding="utf-8") if manifest is None else manifest
    modules = re.findall(r"^\s*-\s*gomod:\s*(\S+)", text, re.MULTILINE)
    return [module for module in modules if module not in OTELCOL_CONTRIB_CONTAINS]


def components() -> dict[str, Component]:
    env = settings()
    collector, jaeger = env["COLLECTOR_VERSION"], env["JAEGER_VERSION"]
    prometheus, alertmanager = env["PROMETHEUS_VERSION"], env["ALERTMANAGER_VERSION"]
    helm = env["HELM_VERSION"]
    return {
        "collector": Component(
            "collector",
            collector,
            {"collector": f"otelcol-genai-{collector}-{manifest_digest()}"},
            _build_collector,
            "OpenTelemetry Collector (builder manifest collector-config/builder-config.yaml)",
        ),
        "jaeger": Component(
            "jaeger",
            jaeger,
            {"jaeger": f"jaeger-{jaeger}"},
            _build_jaeger,
            "Jaeger v2 (Go module, wrapper module)",
        ),
        "prometheus": Component(
            "prometheus",
            prometheus,
            {"prometheus": f"prometheus-{prometheus}", "promtool": f"promtool-{prometheus}"},
            _build_prometheus,
            "Prometheus and promtool (Go module, wrapper module)",
        ),
        "alertmanager": Component(
            "alertmanager",
            alertmanager,
            {"alertmanager": f"alertmanager-{alertmanager}", "amtool": f"amtool-{alertmanager}"},
            _build_alertmanager,
            "Alertmanager and amtool (Go module)",
        ),
        "helm": Component(
            "helm",
            helm,
            {"helm": f"helm-{helm}"},
            _build_helm,
            "Helm (Go module), for the chart's tests",
            has_release=False,
        ),
    }


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """One build per component at a time, across processes (two test runs may start together)."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_from_go_modules(component: Component) -> None:
    """The fallback: build `component` from its Go modules (minutes; see the module docstring)."""
    component.build(component, bin_dir())


def _install_release(component: Component, fetcher: release.Fetcher) -> None:
    """Install `component` from its official release; ReleaseUnavailable says why it cannot be."""
    names = release.platform_names()
    if names is None:
        raise release.ReleaseUnavailable(
            f"no official release archive for {platform.system()}/{platform.machine()}"
        )
    if component.name == "collector" and (gap := collector_release_gap()):
        raise release.ReleaseUnavailable(
            f"the builder manifest lists {', '.join(gap)}, which otelcol-contrib is not known to contain"
        )
    spec = release.release_of(component.name, component.version, *names)
    fetcher.install(spec, component.paths(), cache_dir() / "downloads")


def duration(seconds: float) -> str:
    """8m41s, 41s: how the progress lines write elapsed time."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def _usual_minutes(name: str) -> int | None:
    seconds = GO_BUILD_SECONDS.get(name)
    return None if seconds is None else max(1, round(seconds / 60))


def _estimate(name: str) -> str:
    minutes = _usual_minutes(name)
    return "" if minutes is None else f" (usually ~{minutes} min on 2 vCPUs from an empty Go module cache)"


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def _heartbeat(prefix: str, name: str) -> Iterator[None]:
    """Every HEARTBEAT_SECONDS, `<prefix>: still building, 4m30s so far (usually ~15 min)`, unless
    stderr is a terminal (there Go's own output shows the build is alive)."""
    if _stderr_is_terminal():
        yield
        return
    started = time.monotonic()
    done = threading.Event()
    minutes = _usual_minutes(name)
    usual = "" if minutes is None else f" (usually ~{minutes} min)"

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            log(f"{prefix}: still building, {duration(time.monotonic() - started)} so far{usual}")

    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _obtain(component: Component, fetcher: release.Fetcher, step: str = "") -> None:
    """The official release if it can be had and verifies, else the Go-module build. `step` ("[2/5]")
    numbers the progress lines of the Go-module build."""
    label = f"{component.name} {component.version}"
    started = time.monotonic()
    try:
        if not component.has_release:
            raise release.ReleaseUnavailable("built from its Go module only")
        _install_release(component, fetcher)
    except release.ReleaseUnavailable as why:
        log(
            f"==> {label}: official release not used after {time.monotonic() - started:.1f}s ({why}); "
            "building from Go modules"
        )
    else:
        log(f"==> {label}: official release installed in {time.monotonic() - started:.0f}s")
        return
    prefix = f"{step} {label}".strip()
    log(f"{prefix}: building {component.about} from Go modules{_estimate(component.name)} ...")
    started = time.monotonic()
    try:
        with _heartbeat(prefix, component.name):
            build_from_go_modules(component)
    except BaseException:
        # the error that follows quotes the failing step's last output (Go's errors)
        log(f"{prefix}: failed after {duration(time.monotonic() - started)}")
        raise
    for path in component.paths().values():
        release.write_provenance(path, {"source": "go-modules"})
    log(f"{prefix}: done in {duration(time.monotonic() - started)}")


def ensure(names: list[str] | None = None) -> dict[str, Path]:
    """Install whatever of `names` (default: all) is not cached yet; return every binary's path by role."""
    available = components()
    unknown = [name for name in names or [] if name not in available]
    if unknown:
        raise BuildError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(available)}")
    fetcher = release.Fetcher.from_environment()
    paths: dict[str, Path] = {}
    wanted = names or list(available)
    for number, name in enumerate(wanted, start=1):
        component = available[name]
        if not component.is_cached():
            with locked(name):
                if not component.is_cached():  # another process may have installed it meanwhile
                    _obtain(component, fetcher, f"[{number}/{len(wanted)}]")
        else:
            log(f"==> {name} {component.version}: cached")
        for role, path in component.paths().items():
            log(f"    {role}: {path} ({release.describe(release.read_provenance(path))})")
        paths.update(component.paths())
    return paths


def binary(role: str) -> Path:
    """The cached path of one binary role (collector, jaeger, prometheus, promtool, alertmanager, amtool,
    helm)."""
    for component in components().values():
        if role in component.binaries:
            return component.paths()[role]
    raise KeyError(role)


def provenance(role: str) -> str:
    """Where the cached binary of `role` came from (official release or Go modules), in one phrase."""
    return release.describe(release.read_provenance(binary(role)))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(arg in {"-h", "--help"} for arg in args):
        print(__doc__)
        return 0
    started = time.monotonic()
    try:
        ensure(args or None)
    except BuildError as error:
        log(f"build-components: {error}")
        return 1
    log(f"==> components ready in {time.monotonic() - started:.0f}s (cache: {bin_dir()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
