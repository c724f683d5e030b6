"""Keep the gateway's list of processors to those that answer, as Kubernetes' endpoints would.

    python -m genai_otel.stack.discovery --endpoints-file F --collector-pid-file P \\
        --backend HOST:PORT=HEALTH_URL [--backend ...] [--interval 0.5]

The gateway collector's loadbalancing exporter (collector-config/gateway.yaml) reads its static
list of processors from the endpoints file, at start and when it reloads its config on SIGHUP.
This process checks every processor's health URL each interval; when the set that answers changes
(a processor is dropped after three failed checks in a row, added back after one good one), it
rewrites the file and signals the gateway. The gateway then hashes trace ids over the processors
that are left, and the requests it still holds for a vanished one (they stay in its persistent
queue until a processor answers OK) go to the others. With no processor answering, the file
keeps them all: the gateway's queue waits for whichever comes back first.

This is the local stack's stand-in for service discovery, not a router: in Kubernetes the
loadbalancing exporter's k8s resolver follows the processors' ready endpoints by itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)
# Every change of the list reloads the gateway, and a reload makes it resend what it had in flight
# (priced twice: at-least-once), so a processor slow to answer on a loaded machine is not dropped
# at once: three refusals (a killed processor refuses at once: gone within about 1.5 s) or three
# checks of 2 s without an answer.
FAILURES_BEFORE_REMOVAL = 3


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except (OSError, urllib.error.URLError):
        return False


class Discovery:
    """The listed processors, from their health checks; `check` returns whether the list changed."""

    def __init__(self, backends: dict[str, str], endpoints_file: Path, collector_pid_file: Path) -> None:
        self.backends = backends
        self.endpoints_file = endpoints_file
        self.collector_pid_file = collector_pid_file
        self.failures = dict.fromkeys(backends, 0)
        self.listed = self._read_listed()

    def _read_listed(self) -> list[str]:
        try:
            listed = yaml.safe_load(self.endpoints_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return list(self.backends)
        return [str(item) for item in listed] if isinstance(listed, list) else list(self.backends)

    def wanted(self) -> list[str]:
        for address, url in self.backends.items():
            self.failures[address] = 0 if healthy(url) else self.failures[address] + 1
        up = [address for address in self.backends if self.failures[address] < FAILURES_BEFORE_REMOVAL]
        return up or list(self.backends)

    def check(self) -> bool:
        wanted = self.wanted()
        if wanted == self.listed:
            return False
        partial = self.endpoints_file.with_suffix(".partial")
        partial.write_text(yaml.safe_dump(wanted), encoding="utf-8")
        partial.replace(self.endpoints_file)
        logger.warning("processors now listed for the gateway: %s (were %s)", wanted, self.listed)
        self.listed = wanted
        self._reload_collector()
        return True

    def _reload_collector(self) -> None:
        try:
            pid = int(self.collector_pid_file.read_text(encoding="utf-8").strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            logger.warning("could not signal the gateway collector to reload: %s", exc)


def _backend(text: str) -> tuple[str, str]:
    address, sep, url = text.partition("=")
    if not sep or not address or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT=HEALTH_URL, got {text!r}")
    return address, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genai_otel.stack.discovery", description=__doc__)
    parser.add_argument("--endpoints-file", type=Path, required=True)
    parser.add_argument("--collector-pid-file", type=Path, required=True)
    parser.add_argument("--backend", type=_backend, action="append", required=True)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between health checks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    discovery = Discovery(dict(args.backend), args.endpoints_file, args.collector_pid_file)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        discovery.check()
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
