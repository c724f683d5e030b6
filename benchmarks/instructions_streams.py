"""Instructions genai-otel adds per call of each `bench_streams.py` case, beside the SDK floor.

Timings on a shared machine move with its load; instruction counts do not. Each (case, mode)
runs in its own process under ``valgrind --tool=callgrind``, counting only inside the measured
loop (a ``functools.reduce`` over the calls), after warm-up calls; the calls, the clients and
the SDK floor are those of `bench_streams.py`.

    cd benchmarks && ../.venv/bin/python instructions_streams.py [--calls 10] [--cases a,b]

Needs valgrind; a (case, mode) takes about a minute (valgrind runs Python ~50x slower).

A process's count also moves with where its objects land in memory: CPython 3.11's type
attribute cache is indexed by the address of the attribute's name, so which lookups miss it
(`find_name_in_mro`) changes with the allocations made before, down to the length of an
environment variable; the same code in the same mode has counted 100,000 instructions per call
apart. `--layouts N` counts every (case, mode) in N processes, process i first keeping i * 1,000
small objects (every later object lands elsewhere), and prints the means and the spread of the
gap (genai-otel's count minus the floor's) over the N layouts.

`--per-chunk` counts what each mode adds per chunk, the measure issue 15 sets (at most 1.2x the
floor per chunk): one process per (case, mode) makes calls of 10 and of 50 output tokens (one
chunk each), warms both up, then counts `--calls` calls of each in two loops of its own (callgrind
writes one part per loop, `--dump-after=functools_reduce`). The slope (50-token count minus
10-token count, per call, over 40 chunks) comes from one process, one layout: what moves a
process's per-call count with its layout cancels out.

    cd benchmarks && ../.venv/bin/python instructions_streams.py --per-chunk [--layouts N] [--cases a,b]
"""

from __future__ import annotations

import sys

# Kept for the process's lifetime, made before any other import: see `--layouts`.
_LAYOUT_PADDING = (
    [object() for _ in range(1000 * int(sys.argv[sys.argv.index("--layout") + 1]))]
    if "--layout" in sys.argv
    else []
)

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402

MODES = ("none", "genai-otel", "sdk floor")
# CPython 3.11 quickens a code object on its 8th run and specialises its instructions on the
# runs after: with fewer warm-up calls, the functions run once per call are quickened inside the
# counted loop, a one-off cost the mode running the most such functions (genai-otel) carried.
WARM_UP = 12


# --per-chunk: output tokens (one chunk each) of the two loops
FEW, MANY = 10, 50


def _measure(label: str, mode: str, calls: int, per_chunk: bool = False) -> None:
    """Runs inside valgrind: set up `mode` for case `label`, warm up, then the counted loop (with
    `per_chunk`, two: FEW-token calls, then MANY-token calls, each its own callgrind part)."""
    from _instrumentation_harness import quiet_providers
    from bench_streams import CASES, TOKENS, Floor

    (case,) = [case for case in CASES if case.label == label]
    tracer_provider, meter_provider = quiet_providers(calls + WARM_UP + 2)
    call = case.call
    if mode == "genai-otel":
        case.instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif mode == "sdk floor":
        floor = Floor(case, tracer_provider, meter_provider)

        def call(client: object) -> None:
            case.floor_call(client, floor)

    if not per_chunk:
        client = case.client()
        for _ in range(WARM_UP):
            call(client)

        def step(_accumulator: None, _index: int) -> None:
            call(client)

        functools.reduce(step, range(calls), None)  # the only code callgrind counts
        return
    clients = {}
    for tokens in (FEW, MANY):  # a client per size (Bedrock's fake answers with its client's count)
        TOKENS["x-fake-output-tokens"] = str(tokens)
        clients[tokens] = case.client()
        for _ in range(WARM_UP):
            call(clients[tokens])
    for tokens in (FEW, MANY):
        TOKENS["x-fake-output-tokens"] = str(tokens)
        client = clients[tokens]

        def step_of(_accumulator: None, _index: int, client: object = client) -> None:
            call(client)

        functools.reduce(step_of, range(calls), None)  # one callgrind part each


def _count(label: str, mode: str, calls: int, layout: int) -> int:
    from _instrumentation_harness import count_instructions

    arguments = ["--inside", mode, "--cases", label, "--calls", str(calls), "--layout", str(layout)]
    return count_instructions(__file__, arguments, f"{label}, mode {mode}, layout {layout}")


def _slope(label: str, mode: str, calls: int, layout: int) -> float:
    """Instructions per chunk of `mode`'s calls: (MANY-token loop - FEW-token loop) / chunks."""
    from _instrumentation_harness import count_instruction_parts

    arguments = [
        "--inside",
        mode,
        "--per-chunk",
        "--cases",
        label,
        "--calls",
        str(calls),
        "--layout",
        str(layout),
    ]
    few, many = count_instruction_parts(__file__, arguments, f"{label}, mode {mode}, layout {layout}", 2)
    return (many - few) / calls / (MANY - FEW)


def _per_chunk(labels: list[str], calls: int, layouts: int) -> None:
    print(f"{'call':<24} {'none /chunk':>12} {'genai-otel adds':>16} {'floor adds':>11} {'ratio':>6}"
          + (f" {'ratio per layout':>18}" if layouts > 1 else ""))  # fmt: skip
    for label in labels:
        slopes = {mode: [_slope(label, mode, calls, layout) for layout in range(layouts)] for mode in MODES}
        ours = [g - n for g, n in zip(slopes["genai-otel"], slopes["none"], strict=True)]
        floor = [f - n for f, n in zip(slopes["sdk floor"], slopes["none"], strict=True)]
        each = " ".join(_ratio(o, f) for o, f in zip(ours, floor, strict=True))
        spread = f" {each:>18}" if layouts > 1 else ""
        ratio = _ratio(statistics.mean(ours), statistics.mean(floor))
        print(f"{label:<24} {statistics.mean(slopes['none']):>12,.0f} {statistics.mean(ours):>+16,.0f}"
              f" {statistics.mean(floor):>+11,.0f} {ratio:>6}{spread}", flush=True)  # fmt: skip


def _ratio(ours: float, floor: float) -> str:
    """ours / floor, or what it is when a ratio would mislead (a slope at or below zero)."""
    if ours <= 0:
        return "below" if floor > 0 else "~0"
    return f"{ours / floor:.2f}x" if floor > 0 else "above"


def main(argv: list[str] | None = None) -> int:
    from bench_streams import CASES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10, help="counted calls per mode (default 10)")
    parser.add_argument("--cases", default="", help="comma-separated labels (default: all)")
    parser.add_argument("--layouts", type=int, default=1, help="processes per (case, mode), see above")
    parser.add_argument("--inside", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--per-chunk", action="store_true", help="instructions per chunk, see above")
    args = parser.parse_args(argv)
    wanted = [label.strip() for label in args.cases.split(",") if label.strip()]
    if args.inside:
        _measure(wanted[0], args.inside, args.calls, args.per_chunk)
        return 0
    if args.per_chunk:
        streams = [case.label for case in CASES if case.chunks and (not wanted or case.label in wanted)]
        _per_chunk(streams, args.calls, args.layouts)
        return 0
    header = f"{'call':<24} {'none':>12} {'genai-otel adds':>16} {'floor adds':>12} {'ratio':>6}"
    print(header + (f" {'gap per layout':>16}" if args.layouts > 1 else ""))
    for case in CASES:
        if wanted and case.label not in wanted:
            continue
        counts = {
            mode: [
                _count(case.label, mode, args.calls, layout) / args.calls for layout in range(args.layouts)
            ]
            for mode in MODES
        }
        per_call = {mode: statistics.mean(values) for mode, values in counts.items()}
        ours = per_call["genai-otel"] - per_call["none"]
        floor = per_call["sdk floor"] - per_call["none"]
        ratio = ours / floor
        gaps = [g - f for g, f in zip(counts["genai-otel"], counts["sdk floor"], strict=True)]
        spread = f" {min(gaps):>+8,.0f}..{max(gaps):+,.0f}" if args.layouts > 1 else ""
        figures = f"{per_call['none']:>12,.0f} {ours:>+16,.0f} {floor:>+12,.0f} {ratio:>5.2f}x"
        print(f"{case.label:<24} {figures}{spread}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
