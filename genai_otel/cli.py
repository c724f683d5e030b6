"""The `genai-otel` command: one entry point, one subcommand per component.

Subcommands are imported lazily so `genai-otel --help` stays fast and a component's
dependencies are only loaded when that component runs.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help). Each module exposes `main(argv: list[str]) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "fake-provider": ("genai_otel.fake_provider.server", "run the fake OpenAI/Anthropic-compatible provider"),
    "processor": ("genai_otel.processors.service", "run the OTLP pricing and metrics processor"),
    "stack": ("genai_otel.stack.cli", "build, start, stop and inspect the local observability stack"),
    "demo": ("genai_otel.demo.run", "run the local stack with demo traffic flowing through it"),
    "generate": ("genai_otel.generate", "regenerate rules, alerts and dashboards from their sources"),
    "report": ("genai_otel.report.cli", "cost report from Prometheus, with cheaper-model suggestions"),
    "calibrate": ("genai_otel.quality.cli", "agreement and Cohen's kappa of judge scores vs human labels"),
}


def _usage() -> str:
    lines = ["usage: genai-otel <command> [options]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"genai-otel: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
