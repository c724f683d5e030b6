"""Instructions the instrumentation adds per OpenAI chat call, counted by callgrind.

Timings on a shared machine move with its load; instruction counts do not. Each mode runs
in its own process under ``valgrind --tool=callgrind``, which counts only inside the
measured loop (a ``functools.reduce`` over the calls: ``--toggle-collect=functools_reduce``),
after warm-up calls. Same set-up as `bench_instrumentation.py`: the fake provider's
in-process transport, a real SDK `TracerProvider` (`BatchSpanProcessor`, dropping exporter)
and `MeterProvider`. Modes: none, genai-otel, official, and the SDK floor (the
uninstrumented call inside the SDK calls producing exactly genai-otel's telemetry).

    .venv/bin/python benchmarks/instructions_instrumentation.py [--calls 100] [--stream]

Needs valgrind. One mode takes a minute or two (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import functools
import sys

MODES = ("none", "genai-otel", "official", "sdk floor")
WARM_UP = 5


def _measure(mode: str, calls: int, stream: bool) -> None:
    """Runs inside valgrind: set up `mode`, warm up, then the counted loop."""
    from _instrumentation_harness import quiet_providers
    from bench_instrumentation import OpenAIInstrumentor, _chat, _chat_stream, _client, sdk_floor

    call = _chat_stream if stream else _chat
    tracer_provider, meter_provider = quiet_providers(calls + WARM_UP + 2)
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    if mode == "genai-otel":
        OpenAIInstrumentor().instrument(**providers)
    elif mode == "official":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as Official

        Official().instrument(skip_dep_check=True, **providers)
    elif mode == "sdk floor":
        call = sdk_floor(call, tracer_provider, meter_provider).once
    client = _client()
    for _ in range(WARM_UP):
        call(client)

    def step(_accumulator: None, _index: int) -> None:
        call(client)

    functools.reduce(step, range(calls), None)  # the only code callgrind counts
    client.close()


def _count(mode: str, calls: int, stream: bool) -> int:
    from _instrumentation_harness import count_instructions

    arguments = ["--inside", mode, "--calls", str(calls), *(["--stream"] if stream else [])]
    return count_instructions(__file__, arguments, f"mode {mode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100, help="counted calls per mode (default 100)")
    parser.add_argument("--stream", action="store_true", help="streamed chat calls (usage chunk on)")
    parser.add_argument("--mode", choices=MODES, action="append", help="only these modes (default all)")
    parser.add_argument("--inside", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        _measure(args.inside, args.calls, args.stream)
        return 0
    modes = args.mode or list(MODES)
    if "none" not in modes:
        modes.insert(0, "none")
    per_call = {mode: _count(mode, args.calls, args.stream) / args.calls for mode in modes}
    print(f"{'mode':<11} {'instructions/call':>18} {'added':>10}")
    for mode, count in per_call.items():
        print(f"{mode:<11} {count:>18,.0f} {count - per_call['none']:>+10,.0f}")
    if "genai-otel" in per_call and "sdk floor" in per_call:
        own = per_call["genai-otel"] - per_call["sdk floor"]
        print(f"genai-otel's own code: {own:,.0f} instructions per call (added minus the SDK floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
