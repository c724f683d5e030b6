"""`genai-otel stack`: build, start, stop and inspect the local observability stack.

    genai-otel stack up [--run-dir DIR] [--no-build] [--scrape-interval 15s] [--processor-config FILE]
                        [--processors N] [--samplers M]   # the scale-out topology (README "Scale-out")
                        [--grafana PATH|off]   # default: GENAI_OTEL_GRAFANA, PATH, cache, download
    genai-otel stack down [--run-dir DIR]
    genai-otel stack status [--run-dir DIR] [--json]
    genai-otel stack render TEMPLATE OUTPUT    # fill ${NAME} placeholders from the environment

Ports come from .env; an environment variable of the same name (e.g. OTLP_GRPC_PORT=14317)
overrides one. Logs and pid files live in the run folder (default: run/ in the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genai_otel.stack.grafana import GRAFANA_VARIABLE
from genai_otel.stack.runner import DEFAULT_RUN_DIR, LocalStack, StackError, render_template

LABELS = {
    "otlp_grpc_endpoint": "OTLP gRPC (apps send here)",
    "otlp_http_endpoint": "OTLP HTTP (apps send here)",
    "jaeger_url": "Jaeger (traces; API at /api/traces)",
    "prometheus_url": "Prometheus (metrics, rules, alerts)",
    "alertmanager_url": "Alertmanager",
    "processor_metrics_url": "processor metrics",
    "collector_metrics_url": "collector's own metrics",
    "grafana_url": "Grafana (dashboards)",
}


def print_endpoints(endpoints: dict[str, str]) -> None:
    for key, label in LABELS.items():
        if key in endpoints:  # Grafana's only while it runs
            print(f"  {label:<38} {endpoints[key]}")


def print_grafana(stack: LocalStack) -> None:
    """Grafana's login after `up` (the password only when it was generated just now), or the one
    line on how to get a Grafana."""
    started = stack.grafana_started
    if not started:
        if stack.grafana_note:
            print(f"  {stack.grafana_note}")
        return
    if "new_password" in started:
        print(
            f"  Grafana login: {started['user']} / {started['new_password']}   (generated; shown this once, "
            f"kept in {started['password_file']}, mode 0600)"
        )
    else:
        print(f"  Grafana login: {started['user']}, password in {started['password_file']}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genai-otel stack", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("up", "down", "status"):
        action = sub.add_parser(name)
        action.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="logs, pid files, data")
        if name == "up":
            action.add_argument("--no-build", action="store_true", help="fail instead of building binaries")
            action.add_argument(
                "--scrape-interval", default="15s", help="Prometheus scrape/evaluation interval"
            )
            action.add_argument("--processor-config", type=Path, help="config file for the processor")
            action.add_argument("--timeout", type=float, default=90.0, help="seconds each service may take")
            action.add_argument(
                "--processors",
                type=int,
                default=1,
                help="processors behind a gateway collector (more than 1: the scale-out topology)",
            )
            action.add_argument(
                "--samplers",
                type=int,
                help="sampling collectors behind the gateway (given: the scale-out topology)",
            )
            action.add_argument(
                "--grafana",
                metavar="PATH|off",
                help=f"a grafana or grafana-server binary, or off (default: ${GRAFANA_VARIABLE}, "
                "else one on PATH, else the cached or downloaded official release)",
            )
        if name == "status":
            action.add_argument("--json", action="store_true", help="print one JSON object")
    render = sub.add_parser("render")
    render.add_argument("template", type=Path)
    render.add_argument("output", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.action == "render":
        try:
            render_template(args.template, os.environ, args.output)
        except StackError as error:
            print(f"genai-otel stack render: {error}", file=sys.stderr)
            return 1
        return 0
    if args.action == "up":
        try:
            stack = LocalStack(
                args.run_dir,
                scrape_interval=args.scrape_interval,
                processor_config=args.processor_config,
                build_missing=not args.no_build,
                processors=args.processors,
                samplers=args.samplers,
                grafana=args.grafana,
            )
        except StackError as error:
            print(f"genai-otel stack up: {error}", file=sys.stderr)
            return 1
        print(f"starting the genai-otel stack (run folder {stack.run_dir})", file=sys.stderr)
        try:
            endpoints = stack.start(timeout=args.timeout)
        except StackError as error:
            print(f"genai-otel stack up: {error}", file=sys.stderr)
            return 1
        print("stack is up:")
        print_endpoints(endpoints)
        print_grafana(stack)
        if stack.scaled_out:
            for key, urls in stack.instance_urls().items():
                print(f"  {key:<38} {' '.join(urls)}")
        print(f"  logs: {stack.run_dir / 'logs'}    stop: genai-otel stack down --run-dir {stack.run_dir}")
        return 0
    stack = LocalStack(args.run_dir)
    if args.action == "down":
        stopped = stack.stop()
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
        return 0
    status = stack.status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    services = status["services"]
    assert isinstance(services, dict)
    for name, info in services.items():
        state = "healthy" if info["healthy"] else ("running" if info["running"] else "stopped")
        print(f"  {name:<13} {state:<8} pid {info['pid']}")
        if "binary" in info:
            print(f"  {'':<13} binary: {info['binary']}")
        if info.get("hot_path") not in (None, "accelerated"):  # the processor runs its slow path
            print(f"  {'':<13} hot path: {info['hot_path']}")
    if status["running"]:
        print_endpoints({key: str(value) for key, value in status.items() if isinstance(value, str)})
    return 0 if status["running"] else 3
