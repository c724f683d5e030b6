"""CPU the agent and tool instrumentations add: an MCP tool call and an Agents SDK run, none vs
genai-otel vs the SDK floor.

The same method as the other instrumentation benchmarks: one thread, a real `TracerProvider` with
a `BatchSpanProcessor` to an exporter that drops spans, a real `MeterProvider`; blocks of calls
rotate between the modes ("none", "genai-otel", "sdk floor", "official" where there is one) and
each figure is the median over blocks of the calling thread's CPU time. Both SDKs are
asynchronous: the blocks run in one event loop, and the thread's CPU time covers everything the
loop runs (the MCP server included).

* ``mcp call_tool``: ``mcp.Client(server).call_tool("stock", {...})`` against an in-process
  ``MCPServer`` (the SDK's in-memory transport; the tool is ``async``, so the server runs it in
  the loop rather than in a worker thread). mcp 2 makes spans of its own through the global tracer
  provider: it is the same dropping provider in every mode, so only the added work differs.
  genai-otel adds one INTERNAL ``execute_tool stock`` span (current during the call) and one
  ``gen_ai.execute_tool.duration`` record; the floor makes exactly these around the uninstrumented
  call.
* ``agents run``: one ``Runner.run`` of an agent with one function tool: two model calls (a tool
  call, then the answer) answered in-process by a canned `agents.Model` (no openai SDK, no HTTP;
  it opens the SDK's ``response_span`` as the SDK's own OpenAI models do). The SDK's default
  exporter to OpenAI is removed in every mode (``set_trace_processors([])``). "none" registers no
  processor; genai-otel registers its bridge (``OpenAIAgentsInstrumentor``); the floor registers a
  minimal ``TracingProcessor`` of this file making the same spans (``invoke_workflow``,
  ``invoke_agent``, ``execute_tool``; same names, kinds, attributes, parents, each current while
  it runs) and the same ``gen_ai.invoke_agent.duration`` / ``gen_ai.execute_tool.duration``
  records. Before measuring, both modes' telemetry for one call is captured and compared.
  "official" is `opentelemetry-instrumentation-genai-openai-agents` (the `bench` extra), where
  installed: its spans are the same three, its records the same two plus
  ``gen_ai.invoke_workflow.duration``. No official instrumentation of MCP client calls exists.

    cd benchmarks && ../.venv/bin/python bench_instrumentation_agents.py [--calls 20] [--blocks 30]
    cd benchmarks && ../.venv/bin/python bench_instrumentation_agents.py --instructions [--calls 20]

``--instructions`` counts instructions instead, under callgrind (each case and mode in its own
process, only the counted calls; needs valgrind, about a minute per case and mode).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from _instrumentation_harness import (
    FLOOR,
    Mode,
    Results,
    count_instructions,
    dropping_providers,
    idle,
    instrumented,
    parser,
    print_ratios,
    print_table,
    quiet_providers,
)
from agents import Agent, Model, ModelResponse, Runner, Usage, function_tool
from agents.tracing import Span as AgentsSpan
from agents.tracing import Trace as AgentsTrace
from agents.tracing import (
    TracingProcessor,
    add_trace_processor,
    response_span,
    set_trace_processors,
)
from genai_otel.instrumentation.mcp import MCPInstrumentor
from genai_otel.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from mcp import Client
from mcp.server.mcpserver import MCPServer
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from genai_otel import semconv

WARM_UP = 3
OFFICIAL = "official"
OTHER_ERROR = "_OTHER"


# -- MCP ---------------------------------------------------------------------------------------
def _mcp_server() -> MCPServer:
    server = MCPServer("shop")

    @server.tool()
    async def stock(item: str) -> int:
        """Units in stock."""
        return 3

    return server


async def _call_tool(client: Client) -> Any:
    return await client.call_tool("stock", {"item": "tea"})


class McpFloor:
    """genai-otel's telemetry of an MCP tool call, made with the SDK alone: the span (current
    during the call, so the SDK's own spans are its children), then the duration record."""

    NAME = f"{semconv.Operation.EXECUTE_TOOL.value} stock"
    ATTRIBUTES = {
        semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL.value,
        semconv.GEN_AI_TOOL_NAME: "stock",
        semconv.GEN_AI_TOOL_TYPE: semconv.ToolType.EXTENSION.value,
        semconv.MCP_METHOD_NAME: "tools/call",
    }
    METRIC_ATTRIBUTES = {
        semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL.value,
        semconv.GEN_AI_TOOL_NAME: "stock",
    }

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("sdk-floor")
        self.duration = _histograms(meter_provider)[semconv.METRIC_EXECUTE_TOOL_DURATION]

    async def call(self, client: Client) -> Any:
        span = self.tracer.start_span(self.NAME, kind=SpanKind.INTERNAL, attributes=self.ATTRIBUTES)
        token = otel_context.attach(trace.set_span_in_context(span))
        start = perf_counter()
        try:
            result = await _call_tool(client)
        finally:
            elapsed = perf_counter() - start
            otel_context.detach(token)
        attributes = self.METRIC_ATTRIBUTES
        if result.is_error:
            span.set_attribute(semconv.ERROR_TYPE, "tool_error")
            span.set_status(Status(StatusCode.ERROR, "tool_error"))
            attributes = {**attributes, semconv.ERROR_TYPE: "tool_error"}
        span.end()
        self.duration.record(elapsed, attributes)
        return result


def _mcp_modes(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list[Mode]:
    floor = McpFloor(tracer_provider, meter_provider)
    return [
        idle("none"),
        instrumented(
            "genai-otel", MCPInstrumentor, tracer_provider=tracer_provider, meter_provider=meter_provider
        ),
        idle(FLOOR, floor.call),
    ]


# -- Agents SDK --------------------------------------------------------------------------------
@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class CannedModel(Model):
    """Asks for `get_weather` until the input has its output, then answers; opens the SDK's
    response span as the SDK's OpenAI models do (the bridge sees it and maps nothing)."""

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        tracing = args[5] if len(args) > 5 else kwargs["tracing"]
        with response_span(disabled=tracing.is_disabled()):
            answered = not isinstance(input, str) and any(
                isinstance(item, dict) and item.get("type") == "function_call_output" for item in input
            )
            item: Any
            if answered:
                text = ResponseOutputText(annotations=[], text="Sunny in Paris.", type="output_text")
                item = ResponseOutputMessage(
                    id="msg_1", content=[text], role="assistant", status="completed", type="message"
                )
            else:
                item = ResponseFunctionToolCall(
                    arguments='{"city": "Paris"}',
                    call_id="call_1",
                    name="get_weather",
                    type="function_call",
                    id="fc_1",
                    status="completed",
                )
            usage = Usage(requests=1, input_tokens=40, output_tokens=8, total_tokens=48)
            return ModelResponse(output=[item], usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


_AGENT = Agent(name="Weather", instructions="Answer with the tool.", model=CannedModel(), tools=[get_weather])


async def _run(agent: Agent[Any]) -> Any:
    result = await Runner.run(agent, "Is it sunny in Paris?")
    assert result.final_output == "Sunny in Paris."
    return result


WORKFLOW = "invoke_workflow"
# the conventions' values, read once (an enum member's `.value` is a Python-level property)
INVOKE_AGENT = semconv.Operation.INVOKE_AGENT.value
EXECUTE_TOOL = semconv.Operation.EXECUTE_TOOL.value
OPENAI = semconv.Provider.OPENAI.value
FUNCTION = semconv.ToolType.FUNCTION.value


class AgentsFloor(TracingProcessor):
    """The least `TracingProcessor` making genai-otel's spans and records of an agents run: the
    trace is an `invoke_workflow` span, an agent span `invoke_agent` and a function span
    `execute_tool`, each a child of its parent's span and current until it ends."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("sdk-floor")
        histograms = _histograms(meter_provider)
        self.agent_duration = histograms[semconv.METRIC_INVOKE_AGENT_DURATION]
        self.tool_duration = histograms[semconv.METRIC_EXECUTE_TOOL_DURATION]
        self.open: dict[str, tuple[Any, object, float, Any, dict[str, Any]]] = {}

    def _start(
        self, key: str, name: str, attributes: dict[str, Any], parent: str | None, *record: Any
    ) -> None:
        opened = self.open.get(parent) if parent is not None else None
        context = trace.set_span_in_context(opened[0]) if opened is not None else None
        span = self.tracer.start_span(name, context=context, kind=SpanKind.INTERNAL, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        histogram, metric_attributes = record or (None, {})
        self.open[key] = (span, token, perf_counter(), histogram, metric_attributes)

    def _end(self, key: str, failed: bool) -> None:
        opened = self.open.pop(key, None)
        if opened is None:
            return
        span, token, start, histogram, metric_attributes = opened
        elapsed = perf_counter() - start
        otel_context.detach(token)  # type: ignore[arg-type]
        if failed:
            span.set_attribute(semconv.ERROR_TYPE, OTHER_ERROR)
            span.set_status(Status(StatusCode.ERROR, OTHER_ERROR))
            metric_attributes = {**metric_attributes, semconv.ERROR_TYPE: OTHER_ERROR}
        span.end()
        if histogram is not None:
            histogram.record(elapsed, metric_attributes)

    def on_trace_start(self, trace: AgentsTrace) -> None:
        attributes = {semconv.GEN_AI_OPERATION_NAME: WORKFLOW}
        self._start(trace.trace_id, f"{WORKFLOW} {trace.name}", attributes, None)

    def on_trace_end(self, trace: AgentsTrace) -> None:
        self._end(trace.trace_id, False)

    def on_span_start(self, span: AgentsSpan[Any]) -> None:
        data = span.span_data
        kind = data.type
        parent = span.parent_id or span.trace_id
        if kind == "agent":
            metric_attributes = {
                semconv.GEN_AI_OPERATION_NAME: INVOKE_AGENT,
                semconv.GEN_AI_PROVIDER_NAME: OPENAI,
                semconv.GEN_AI_AGENT_NAME: data.name,
            }
            name = f"{INVOKE_AGENT} {data.name}"
            self._start(
                span.span_id, name, dict(metric_attributes), parent, self.agent_duration, metric_attributes
            )
        elif kind == "function":
            metric_attributes = {
                semconv.GEN_AI_OPERATION_NAME: EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: data.name,
            }
            attributes = {**metric_attributes, semconv.GEN_AI_TOOL_TYPE: FUNCTION}
            name = f"{EXECUTE_TOOL} {data.name}"
            self._start(span.span_id, name, attributes, parent, self.tool_duration, metric_attributes)

    def on_span_end(self, span: AgentsSpan[Any]) -> None:
        self._end(span.span_id, span.error is not None)

    def shutdown(self) -> None:
        return None

    def force_flush(self) -> None:
        return None


def _agents_modes(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> list[Mode]:
    floor = AgentsFloor(tracer_provider, meter_provider)
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    modes = [
        idle("none"),
        instrumented("genai-otel", OpenAIAgentsInstrumentor, **providers),
        Mode(FLOOR, lambda: add_trace_processor(floor), lambda: set_trace_processors([])),
    ]
    try:
        from opentelemetry.instrumentation.genai.openai_agents import OpenAIAgentsInstrumentor as Official
    except ImportError:
        print("official instrumentation not installed (pip install '.[bench]'); skipping it", file=sys.stderr)
    else:
        modes.append(instrumented(OFFICIAL, Official, **providers))
    return modes


# -- cases, the check, the rotation --------------------------------------------------------------
def _histograms(meter_provider: MeterProvider) -> dict[str, Any]:
    meter = meter_provider.get_meter("sdk-floor")
    return {
        semconv.METRIC_INVOKE_AGENT_DURATION: meter.create_histogram(
            semconv.METRIC_INVOKE_AGENT_DURATION,
            unit="s",
            explicit_bucket_boundaries_advisory=semconv.AGENT_RUN_DURATION_BUCKETS,
        ),
        semconv.METRIC_EXECUTE_TOOL_DURATION: meter.create_histogram(
            semconv.METRIC_EXECUTE_TOOL_DURATION,
            unit="s",
            explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
        ),
    }


@contextlib.asynccontextmanager
async def _mcp_client() -> AsyncIterator[Client]:
    async with Client(_mcp_server()) as client:
        yield client


@contextlib.asynccontextmanager
async def _agent() -> AsyncIterator[Agent[Any]]:
    yield _AGENT


@dataclass
class Case:
    label: str
    client: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
    call: Callable[[Any], Awaitable[Any]]
    modes: Callable[[TracerProvider, MeterProvider], list[Mode]]
    spans_per_call: int  # every span a call makes, the SDK's own included (the quiet queue's size)


CASES = (
    Case("mcp call_tool", _mcp_client, _call_tool, _mcp_modes, 4),
    Case("agents run", _agent, _run, _agents_modes, 4),
)


def _set_up() -> None:
    """Once per process: no exporter of the agents SDK's own (nothing is sent anywhere)."""
    set_trace_processors([])


async def _telemetry(case: Case, mode_name: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One call in `mode_name` on capturing providers: the spans of genai-otel's or the floor's
    scope (name, kind, attributes, status, parent's name) and the histogram records (name, unit,
    attributes, count)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    (mode,) = [mode for mode in case.modes(tracer_provider, meter_provider) if mode.name == mode_name]
    async with case.client() as client:
        mode.on()
        try:
            await (mode.call or case.call)(client)
        finally:
            mode.off()
    spans = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in spans}
    span_rows = sorted(
        (
            span.name,
            span.kind,
            tuple(sorted((span.attributes or {}).items())),
            span.status.status_code,
            names.get(span.parent.span_id) if span.parent else None,
        )
        for span in spans
    )
    records = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    assert isinstance(point, HistogramDataPoint)
                    buckets = tuple(point.explicit_bounds)
                    records.append(
                        (
                            metric.name,
                            metric.unit,
                            buckets,
                            tuple(sorted((point.attributes or {}).items())),
                            point.count,
                        )
                    )
    return span_rows, sorted(records)


async def check(case: Case) -> None:
    """genai-otel and the floor make the same telemetry for one call, or the benchmark stops."""
    ours, floor = await _telemetry(case, "genai-otel"), await _telemetry(case, FLOOR)
    if ours != floor:
        raise SystemExit(f"{case.label}: the floor's telemetry differs from genai-otel's:\n{ours}\n{floor}")


async def _block(call: Callable[[Any], Awaitable[Any]], client: Any, calls: int) -> float:
    """CPU of the thread per call, in µs."""
    gc.collect()
    start = time.thread_time()
    for _ in range(calls):
        await call(client)
    return (time.thread_time() - start) / calls * 1e6


async def rotate(
    case: Case, modes: Sequence[Mode], calls: int, blocks: int
) -> dict[str, tuple[float, float]]:
    """`_instrumentation_harness.rotate` for an asynchronous call: block 0 warms every mode up and
    is discarded, each block starts the rotation one mode later; per mode, the median thread µs
    per call and the median added µs over "none" in the same block.

    Each mode's first call after it is switched on runs outside the timed block, in every mode:
    wrapping a class's method (the MCP instrumentor's `instrument()`, and `uninstrument()` after
    it) makes the interpreter drop what it had specialised on that class, and the first call
    after it costs ~230 µs more (measured at load ~5), a per-`instrument()` cost an application
    pays once, which a block of 20 calls would spread as ~11 µs over each of its calls."""
    per_call: dict[str, list[float]] = {mode.name: [] for mode in modes}
    added: dict[str, list[float]] = {mode.name: [] for mode in modes}
    async with case.client() as client:
        for index in range(blocks + 1):
            order = [*modes[index % len(modes) :], *modes[: index % len(modes)]]
            sample: dict[str, float] = {}
            for mode in order:
                mode.on()
                try:
                    call = mode.call or case.call
                    await call(client)  # untimed: the first call after instrument() (see `rotate`)
                    sample[mode.name] = await _block(call, client, calls)
                finally:
                    mode.off()
            if index:
                for name, value in sample.items():
                    per_call[name].append(value)
                    added[name].append(value - sample["none"])
    return {name: (statistics.median(per_call[name]), statistics.median(added[name])) for name in per_call}


async def run(calls: int, blocks: int, labels: Sequence[str] = ()) -> Results:
    _set_up()
    tracer_provider, meter_provider = dropping_providers()
    trace.set_tracer_provider(tracer_provider)  # the SDKs' own spans (mcp 2), in every mode
    results: Results = {}
    for case in CASES:
        if labels and case.label not in labels:
            continue
        await check(case)
        results[case.label] = await rotate(case, case.modes(tracer_provider, meter_provider), calls, blocks)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


# -- instructions ------------------------------------------------------------------------------
def _measure(label: str, mode_name: str, calls: int) -> None:
    """Runs inside valgrind: `mode_name` on for case `label`, warm-up calls, then the counted ones.

    The calls run in one task that holds the client (anyio's task groups must be left in the
    task that entered them); the counted ones are handed to it from inside `functools.reduce`,
    the function callgrind counts in, which runs the event loop until they are done."""
    _set_up()
    (case,) = [case for case in CASES if case.label == label]
    tracer_provider, meter_provider = quiet_providers(case.spans_per_call * (calls + WARM_UP + 2))
    trace.set_tracer_provider(tracer_provider)
    (mode,) = [mode for mode in case.modes(tracer_provider, meter_provider) if mode.name == mode_name]
    call = mode.call or case.call
    loop = asyncio.new_event_loop()
    jobs: asyncio.Queue[tuple[int, asyncio.Future[None]] | None] = asyncio.Queue()

    async def holder() -> None:
        async with case.client() as client:
            while (job := await jobs.get()) is not None:
                count, done = job
                for _ in range(count):
                    await call(client)
                done.set_result(None)

    def calls_of(count: int) -> None:
        done = loop.create_future()
        jobs.put_nowait((count, done))
        loop.run_until_complete(done)

    task = loop.create_task(holder())
    mode.on()
    calls_of(WARM_UP)
    gc.collect()
    functools.reduce(lambda _accumulator, _index: calls_of(calls), range(1), None)  # counted
    mode.off()
    jobs.put_nowait(None)
    loop.run_until_complete(task)
    loop.close()


def instructions(calls: int, labels: Sequence[str]) -> None:
    header = f"{'call':<14} {'none':>12} {'genai-otel adds':>16} {'floor adds':>12} {'ratio':>6}"
    print(f"{header} {'official adds':>14}")
    for case in CASES:
        if labels and case.label not in labels:
            continue
        modes = [mode.name for mode in case.modes(TracerProvider(), MeterProvider())]
        per_call = {
            mode: count_instructions(
                __file__,
                ["--inside", mode, "--cases", case.label, "--calls", str(calls)],
                f"{case.label}, {mode}",
            )
            / calls
            for mode in modes
        }
        ours, floor = per_call["genai-otel"] - per_call["none"], per_call[FLOOR] - per_call["none"]
        row = f"{case.label:<14} {per_call['none']:>12,.0f} {ours:>+16,.0f} {floor:>+12,.0f}"
        official = (
            f"{per_call[OFFICIAL] - per_call['none']:>+14,.0f}" if OFFICIAL in per_call else f"{'—':>14}"
        )
        print(f"{row} {ours / floor:>5.2f}x {official}", flush=True)


def main(argv: list[str] | None = None) -> int:
    arguments = parser(__doc__, calls=20, blocks=30)
    arguments.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    arguments.add_argument("--cases", default="", help="comma-separated case labels (default: all)")
    arguments.add_argument("--inside", help=argparse.SUPPRESS)
    args = arguments.parse_args(argv)
    labels = [label.strip() for label in args.cases.split(",") if label.strip()]
    if args.inside:
        _measure(labels[0], args.inside, args.calls)
    elif args.instructions:
        instructions(args.calls, labels)
    else:
        results = asyncio.run(run(args.calls, args.blocks, labels))
        print_table(results)
        print_ratios(results)
        for label, modes in results.items():
            if OFFICIAL in modes:
                ours, official = modes["genai-otel"][1], modes[OFFICIAL][1]
                print(
                    f"{label}: the official instrumentation adds {official:.1f} µs ({ours / official:.2f}x)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
