"""Grafana in the local stack: find a binary, provision it from grafana/, give it a generated login.

`genai-otel stack up` starts Grafana when one can be had, in this order:

1. `GENAI_OTEL_GRAFANA` (or `stack up --grafana PATH`): a `grafana` or `grafana-server` binary; its
   home (the folder with `conf/defaults.ini` and `public/`) is found next to it or given in
   `GENAI_OTEL_GRAFANA_HOME`. A configured binary that cannot be used fails `stack up`.
   `GENAI_OTEL_GRAFANA=off` (or `--grafana off`) never starts Grafana.
2. `grafana`, then `grafana-server`, on PATH (a distribution package: home /usr/share/grafana).
3. The official release archive of GRAFANA_VERSION, cached under ~/.cache/genai-otel/grafana/ and
   downloaded once like the other components' (`genai_otel.stack.release`: checksum-verified,
   GENAI_OTEL_RELEASE_MIRROR, GENAI_OTEL_RELEASE_DOWNLOAD=0 switches it off). Grafana is never built
   from source (its Go module is AGPL and never a dependency of this project).

Without any of them, `stack up` says so in one line (`unavailable_hint`).

Grafana reads the same provisioning files docker-compose.yml mounts (grafana/provisioning/), rewritten
into the run folder (`write_provisioning`): the datasources point at this stack's Prometheus and
Jaeger ports instead of compose's service names, and the dashboard provider at grafana/dashboards/.
It binds 127.0.0.1 on GRAFANA_PORT with anonymous access and sign-up off; the admin password is
generated (`secrets`) on the first start of a run folder, stored there with mode 0600, printed once
and handed to Grafana in its environment (never on the command line). Every setting is a `GF_*`
environment variable, Grafana's own override of its ini files (the same ones compose sets).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from genai_otel.stack import build, release
from genai_otel.stack.env import REPO_ROOT, settings

GRAFANA_VARIABLE = "GENAI_OTEL_GRAFANA"
GRAFANA_HOME_VARIABLE = "GENAI_OTEL_GRAFANA_HOME"
OFF = {"off", "0", "false", "no"}
PROVISIONING_SOURCE = REPO_ROOT / "grafana" / "provisioning"
DASHBOARDS = REPO_ROOT / "grafana" / "dashboards"
# docker-compose.yml mounts ./grafana here; the provisioning files name paths below it
COMPOSE_MOUNT = "/etc/grafana/genai-otel"
ADMIN_USER = "admin"
PASSWORD_FILE = "admin-password"
# where distribution packages put Grafana's home when the binary on PATH is not inside it
HOME_CANDIDATES = (
    Path("/usr/share/grafana"),
    Path("/usr/local/share/grafana"),
    Path("/opt/homebrew/share/grafana"),
)
BINARY_NAMES = ("grafana", "grafana-server")


class GrafanaUnavailable(Exception):
    """No Grafana to start; the message says why, in one phrase."""


class GrafanaError(Exception):
    """A configured Grafana cannot be used (a wrong path, no home): `stack up` fails with this."""


@dataclass(frozen=True)
class GrafanaInstall:
    binary: Path
    home: Path
    source: str  # where it was found, for `stack up` and `stack status`

    def command(self, config: Path) -> list[str]:
        """`grafana server ...` (Grafana 10+), or the older `grafana-server ...`, with its home and
        the run folder's (empty) config file: no custom.ini of the home is read by accident."""
        server = [] if self.binary.name == "grafana-server" else ["server"]
        return [str(self.binary), *server, "--homepath", str(self.home), "--config", str(config)]


def version() -> str:
    return settings()["GRAFANA_VERSION"]


def find_home(binary: Path, environ: Mapping[str, str]) -> Path | None:
    """The folder holding conf/defaults.ini for `binary`: GENAI_OTEL_GRAFANA_HOME, the binary's
    parent's parent (an archive's bin/), or a distribution package's share/grafana."""
    given = environ.get(GRAFANA_HOME_VARIABLE)
    candidates = [Path(given)] if given else [binary.resolve().parent.parent, *HOME_CANDIDATES]
    return next((home for home in candidates if (home / "conf" / "defaults.ini").is_file()), None)


def cached_home() -> Path:
    return build.cache_dir() / "grafana" / f"grafana-{version()}"


def _download(fetcher: release.Fetcher) -> Path:
    names = release.platform_names()
    if names is None:
        raise GrafanaUnavailable("no official Grafana archive for this platform")
    spec = release.release_of("grafana", version(), *names)
    try:
        with build.locked("grafana"):
            if not os.access(cached_home() / "bin" / "grafana", os.X_OK):
                build.log(f"==> grafana {version()}: downloading the official release")
                fetcher.install_tree(spec, cached_home(), build.cache_dir() / "downloads")
    except release.ReleaseUnavailable as why:
        raise GrafanaUnavailable(f"official release not used ({why})") from why
    return cached_home()


def locate(setting: str | None, environ: Mapping[str, str] | None = None) -> GrafanaInstall:
    """The Grafana to start for `setting` (a path, "auto" or None: look for one); GrafanaUnavailable
    when there is none (or it is switched off), GrafanaError when a configured one is unusable."""
    environ = os.environ if environ is None else environ
    setting = (setting or environ.get(GRAFANA_VARIABLE) or "auto").strip()
    if setting.lower() in OFF:
        raise GrafanaUnavailable(f"switched off ({GRAFANA_VARIABLE}={setting})")
    if setting != "auto":
        binary = Path(setting).expanduser()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise GrafanaError(f"{GRAFANA_VARIABLE}={setting}: not an executable file")
        home = find_home(binary, environ)
        if home is None:
            raise GrafanaError(
                f"{GRAFANA_VARIABLE}={setting}: no Grafana home (conf/defaults.ini) beside it; "
                f"set {GRAFANA_HOME_VARIABLE}"
            )
        return GrafanaInstall(binary, home, f"{GRAFANA_VARIABLE}={setting}")
    for name in BINARY_NAMES:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            home = find_home(Path(found), environ)
            if home is not None:
                return GrafanaInstall(Path(found), home, f"{name} on PATH")
    home = cached_home()
    fetched = os.access(home / "bin" / "grafana", os.X_OK)
    if not fetched:
        try:
            home = _download(release.Fetcher.from_environment(environ))
        except GrafanaUnavailable as why:
            raise GrafanaUnavailable(f"no grafana or grafana-server on PATH; {why}") from why
    provenance = release.describe(release.read_provenance(home))
    return GrafanaInstall(home / "bin" / "grafana", home, provenance)


def unavailable_hint(why: str) -> str:
    """The one line `stack up` prints when it starts no Grafana."""
    return (
        f"Grafana: not started ({why}); to have it, put Grafana {version()} on PATH or set "
        f"{GRAFANA_VARIABLE}=/path/to/bin/grafana, or use `docker compose up`, which has it"
    )


def admin_password(folder: Path) -> tuple[str, bool]:
    """The admin password of this run folder's Grafana and whether it was generated just now.

    Grafana sets it on the admin user when it creates its database, so it is kept with the data and
    reused; a data folder without the password file cannot be logged into and is refused."""
    path = folder / PASSWORD_FILE
    if path.exists():
        path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip(), False
    if (folder / "data" / "grafana.db").exists():
        raise GrafanaError(
            f"{folder / 'data'} has an admin password that {path} no longer holds: "
            f"remove {folder / 'data'} (Grafana's state in this run folder) or restore the file"
        )
    # Grafana's database (the admin's password hash, its secret key) lives below: this user's only
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    password = secrets.token_urlsafe(18)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password, True


def _compose_path(path: str) -> str:
    """A path of compose's container (below COMPOSE_MOUNT) as a path in this checkout."""
    if path == COMPOSE_MOUNT or path.startswith(COMPOSE_MOUNT + "/"):
        return str(REPO_ROOT / "grafana") + path[len(COMPOSE_MOUNT) :]
    return path


def write_provisioning(folder: Path, datasource_urls: Mapping[str, str], scrape_interval: str) -> Path:
    """grafana/provisioning/ rewritten for this stack into `folder`/provisioning; returns that folder.

    `datasource_urls` maps a datasource type (prometheus, jaeger) to this stack's URL for it."""
    target = folder / "provisioning"
    shutil.rmtree(target, ignore_errors=True)
    for kind in ("datasources", "dashboards", "plugins", "alerting"):  # Grafana reads all four
        (target / kind).mkdir(parents=True)
    header = "# Generated by genai-otel stack up from grafana/provisioning/{}/{}: this stack's addresses.\n"
    for source in sorted((PROVISIONING_SOURCE / "datasources").glob("*.y*ml")):
        config = yaml.safe_load(source.read_text(encoding="utf-8"))
        for datasource in config.get("datasources", []):
            if datasource.get("type") in datasource_urls:
                datasource["url"] = datasource_urls[datasource["type"]]
            if datasource.get("type") == "prometheus":
                datasource.setdefault("jsonData", {})["timeInterval"] = scrape_interval
        text = header.format("datasources", source.name) + yaml.safe_dump(config, sort_keys=False)
        (target / "datasources" / source.name).write_text(text, encoding="utf-8")
    for source in sorted((PROVISIONING_SOURCE / "dashboards").glob("*.y*ml")):
        config = yaml.safe_load(source.read_text(encoding="utf-8"))
        for provider in config.get("providers", []):
            options = provider.get("options", {})
            if "path" in options:
                options["path"] = _compose_path(options["path"])
        text = header.format("dashboards", source.name) + yaml.safe_dump(config, sort_keys=False)
        (target / "dashboards" / source.name).write_text(text, encoding="utf-8")
    return target


def environment(folder: Path, provisioning: Path, host: str, port: int, password: str) -> dict[str, str]:
    """Grafana's settings for the local stack, as the GF_<SECTION>_<KEY> variables it reads."""
    return {
        "GF_PATHS_DATA": str(folder / "data"),
        "GF_PATHS_LOGS": str(folder / "logs"),
        "GF_PATHS_PLUGINS": str(folder / "plugins"),
        "GF_PATHS_PROVISIONING": str(provisioning),
        "GF_SERVER_HTTP_ADDR": host,
        "GF_SERVER_HTTP_PORT": str(port),
        "GF_SECURITY_ADMIN_USER": ADMIN_USER,
        "GF_SECURITY_ADMIN_PASSWORD": password,
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        # a local stack phones nowhere
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    }


def write_config(folder: Path) -> Path:
    """The (empty) file given to --config: every setting is an environment variable. Creates the
    data, logs and plugins folders those variables name, too."""
    for name in ("data", "logs", "plugins"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / "grafana.ini"
    path.write_text(
        "; genai-otel stack up: every Grafana setting is a GF_* environment variable (stack/grafana.py)\n",
        encoding="utf-8",
    )
    return path
