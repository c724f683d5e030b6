"""Instructions genai-otel adds per call of each `bench_streams.py` case, beside the SDK floor.

Timings on a shared machine move with its load; instruction counts do not. Each (case, mode)
runs in its own process under ``valgrind --tool=callgrind``, counting only inside the measured
loop (a ``functools.reduce`` over the calls), after warm-up calls; the calls, the clients and
the SDK floor are those of `bench_streams.py`.

    cd benchmarks && ../.venv/bin/python instructions_streams.py [--calls 10] [--cases a,b]

Needs valgrind; a (case, mode) takes about a minute (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import functools
import sys

MODES = ("none", "genai-otel", "sdk floor")
# CPython 3.11 quickens a code object on its 8th run and specialises its instructions on the
# runs after: with fewer warm-up calls, the functions run once per call are quickened inside the
# counted loop, a one-off cost the mode running the most such functions (genai-otel) carried.
WARM_UP = 12


def _measure(label: str, mode: str, calls: int) -> None:
    """Runs inside valgrind: set up `mode` for case `label`, warm up, then the counted loop."""
    from _instrumentation_harness import quiet_providers
    from bench_streams import CASES, Floor

    (case,) = [case for case in CASES if case.label == label]
    tracer_provider, meter_provider = quiet_providers(calls + WARM_UP + 2)
    call = case.call
    if mode == "genai-otel":
        case.instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif mode == "sdk floor":
        floor = Floor(case, tracer_provider, meter_provider)

        def call(client: object) -> None:
            case.floor_call(client, floor)

    client = case.client()
    for _ in range(WARM_UP):
        call(client)

    def step(_accumulator: None, _index: int) -> None:
        call(client)

    functools.reduce(step, range(calls), None)  # the only code callgrind counts


def _count(label: str, mode: str, calls: int) -> int:
    from _instrumentation_harness import count_instructions

    arguments = ["--inside", mode, "--cases", label, "--calls", str(calls)]
    return count_instructions(__file__, arguments, f"{label}, mode {mode}")


def main(argv: list[str] | None = None) -> int:
    from bench_streams import CASES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10, help="counted calls per mode (default 10)")
    parser.add_argument("--cases", default="", help="comma-separated labels (default: all)")
    parser.add_argument("--inside", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    wanted = [label.strip() for label in args.cases.split(",") if label.strip()]
    if args.inside:
        _measure(wanted[0], args.inside, args.calls)
        return 0
    print(f"{'call':<24} {'none':>12} {'genai-otel adds':>16} {'floor adds':>12} {'ratio':>6}")
    for case in CASES:
        if wanted and case.label not in wanted:
            continue
        per_call = {mode: _count(case.label, mode, args.calls) / args.calls for mode in MODES}
        ours = per_call["genai-otel"] - per_call["none"]
        floor = per_call["sdk floor"] - per_call["none"]
        ratio = ours / floor
        print(
            f"{case.label:<24} {per_call['none']:>12,.0f} {ours:>+16,.0f} {floor:>+12,.0f} {ratio:>5.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
