"""`genai-otel demo`: the local stack with demo traffic flowing through it.

    genai-otel demo [--duration SECONDS | --forever] [--run-dir DIR] [--stop]

Starts the stack (building what is missing) unless one already runs from the run folder, starts
the fake provider, runs `genai_otel.demo.app` under `opentelemetry-instrument` configured by
environment variables only, then prints where to look. The stack keeps running afterwards so you
can explore it (`genai-otel stack down` stops it) unless `--stop` is given.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from genai_otel.fake_provider import FakeProvider
from genai_otel.stack.cli import print_endpoints, print_grafana
from genai_otel.stack.env import settings
from genai_otel.stack.runner import DEFAULT_RUN_DIR, LocalStack, StackError

SERVICE_NAME = "genai-otel-demo"


def app_environment(
    endpoints: dict[str, str], provider_url: str, service: str = SERVICE_NAME
) -> dict[str, str]:
    """Everything the demo app is configured with: standard OTEL_* and SDK variables, and the
    provider its OpenAI calls stand for."""
    return {
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints["otlp_grpc_endpoint"],
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        # The official OpenTelemetry OpenAI and OpenAI Agents instrumentations, when installed next
        # to ours (entry points "openai" and "openai_agents", both in the `bench` extra), would trace
        # every call, agent run and tool call a second time (and double the model calls' cost).
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,openai_agents",
        "OPENAI_BASE_URL": provider_url + "/v1",
        # The fake provider stands in for OpenAI; its host would otherwise be `self_hosted` (unpriced).
        "GENAI_OTEL_OPENAI_PROVIDER": "openai",
        "OPENAI_API_KEY": "fake-key",
        "ANTHROPIC_BASE_URL": provider_url,
        "ANTHROPIC_API_KEY": "fake-key",
    }


def instrumented_command(*args: str) -> list[str]:
    """`opentelemetry-instrument python ...` from this interpreter's environment."""
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    return [str(instrument), sys.executable, *args]


def print_where_to_look(endpoints: dict[str, str]) -> None:
    jaeger = endpoints["jaeger_url"]
    prometheus = endpoints["prometheus_url"]

    def graph(expr: str) -> str:
        return f"{prometheus}/graph?g0.expr={urllib.parse.quote(expr)}&g0.tab=0&g0.range_input=15m"

    print("\nwhere to look:")
    print(f"  traces (API)          {jaeger}/api/traces?service={SERVICE_NAME}&limit=20")
    print(f"  traces (UI)           {jaeger}/search?service={SERVICE_NAME}")
    print(f"  cost by model         {graph('sum by (provider, model) (llm_cost_usd_total)')}")
    print(f"  error rate            {graph('sum by (error_type) (rate(llm_requests_total[1m]))')}")
    print(f"  alerts                {prometheus}/alerts   and  {endpoints['alertmanager_url']}/#/alerts")
    print(f"  processor metrics     {endpoints['processor_metrics_url']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genai-otel demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of demo traffic (default 120)")
    parser.add_argument("--forever", action="store_true", help="send traffic until Ctrl-C")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--stop", action="store_true", help="stop the stack when the traffic ends")
    args = parser.parse_args(argv)

    stack = LocalStack(args.run_dir)
    if stack.running_pids():
        status = stack.status()
        endpoints = {key: str(value) for key, value in status.items() if isinstance(value, str)}
        print(f"using the stack already running from {stack.run_dir}", file=sys.stderr)
    else:
        print(f"starting the genai-otel stack (run folder {stack.run_dir})", file=sys.stderr)
        try:
            endpoints = stack.start()
        except StackError as error:
            print(f"genai-otel demo: {error}", file=sys.stderr)
            return 1
    print_endpoints(endpoints)
    print_grafana(stack)

    port = int(settings()["FAKE_PROVIDER_PORT"])
    with FakeProvider("127.0.0.1", port) as provider:
        print(f"\nfake provider on {provider.base_url}; sending demo traffic", file=sys.stderr)
        command = instrumented_command("-m", "genai_otel.demo.app")
        command += ["--forever"] if args.forever else ["--duration", str(args.duration)]
        app = subprocess.Popen(command, env={**os.environ, **app_environment(endpoints, provider.base_url)})
        try:
            app.wait()
        except KeyboardInterrupt:
            app.send_signal(signal.SIGINT)
            app.wait(timeout=30)
        time.sleep(2)  # the app's last export reaches the collector; metrics need one more scrape
    print_where_to_look(endpoints)
    if args.stop:
        stack.stop()
        print("\nstack stopped")
    else:
        print(f"\nthe stack keeps running; stop it with: genai-otel stack down --run-dir {stack.run_dir}")
    return 0 if app.returncode in (0, -signal.SIGINT) else 1
