"""Python bytecodes genai-otel's own code runs per OpenAI chat call, by function.

Exact and load-free, like the instruction counts of `instructions_instrumentation.py`, but
limited to the instrumentation's own modules (the SDKs, the fake provider and the interpreter
are left out), so a change of a few bytecodes on the hot path shows, where the instruction count
of the whole call moves by thousands with the build. Same set-up as `bench_instrumentation.py`;
`OTEL_SEMCONV_STABILITY_OPT_IN` chooses the metric names as for an application.

    .venv/bin/python benchmarks/bytecodes_instrumentation.py [--calls 10] [--stream] [--top 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import FrameType
from typing import Any

OWN = str(Path(__file__).resolve().parents[1] / "instrumentation") + "/"


def count(calls: int, stream: bool) -> dict[str, int]:
    """Bytecodes per function of genai-otel's modules over `calls` calls, after warm-up."""
    from _instrumentation_harness import quiet_providers
    from bench_instrumentation import OpenAIInstrumentor, _chat, _chat_stream, _client

    call = _chat_stream if stream else _chat
    tracer_provider, meter_provider = quiet_providers(calls + 10)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = _client()
    for _ in range(5):
        call(client)
    counts: dict[str, int] = {}

    def opcodes(frame: FrameType, event: str, _arg: Any) -> Any:
        if event == "opcode":
            code = frame.f_code
            name = f"{code.co_filename.removeprefix(OWN)}:{code.co_name}"
            counts[name] = counts.get(name, 0) + 1
        return opcodes

    def calls_into(frame: FrameType, _event: str, _arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(OWN):
            return None
        frame.f_trace_opcodes = True
        return opcodes

    sys.settrace(calls_into)
    try:
        for _ in range(calls):
            call(client)
    finally:
        sys.settrace(None)
        client.close()
        OpenAIInstrumentor().uninstrument()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10, help="counted calls (default 10)")
    parser.add_argument("--stream", action="store_true", help="streamed chat calls (usage chunk on)")
    parser.add_argument("--top", type=int, default=15, help="functions listed (default 15)")
    args = parser.parse_args(argv)
    counts = count(args.calls, args.stream)
    print(f"genai-otel bytecodes per call: {sum(counts.values()) / args.calls:,.1f}")
    for name, total in sorted(counts.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{total / args.calls:>8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
