"""The OpenAI Agents SDK and MCP through the local stack: an application under
`opentelemetry-instrument` (environment variables only) runs a two-agent workflow (a function tool,
then a handoff) against the fake provider's Responses API, then calls an MCP server's tools (one
succeeds, one fails). Prometheus shows the three model calls, each counted once with its exact
tokens and cost (computed here by genai-prices' `calc_price` from the usage the SDK returned), the
tool calls by status and the agent runs; Jaeger has the whole run as one trace in which only the
model calls carry a cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from genai_otel import semconv as sc
from genai_otel.fake_provider import FakeProvider
from genai_otel.stack.query import jaeger_traces, prometheus_query, prometheus_scalar, span_tags, wait_for
from genai_otel.stack.runner import LocalStack, free_ports
from tests.e2e.apps import KEEP_EVERYTHING, demo_environment, run_app

SERVICE = "e2e-agents-mcp"
MODEL = "gpt-4o"

APP = """
import asyncio, json, sys
from agents import Agent, Runner, function_tool
from mcp import Client
from mcp.server.mcpserver import MCPServer

output = sys.argv[1]


@function_tool
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"sunny in {city}"


def shop() -> MCPServer:
    server = MCPServer("shop")

    @server.tool()
    def stock(item: str) -> int:
        \"\"\"Units in stock.\"\"\"
        return 3

    @server.tool()
    def refund(order: str) -> str:
        \"\"\"Refunds an order (and fails).\"\"\"
        raise RuntimeError("the payment service is down")

    return server


async def main() -> None:
    billing = Agent(name="Billing", instructions="Answer billing questions.", model="MODEL")
    triage = Agent(
        name="Triage",
        instructions="Route the question.",
        model="MODEL",
        tools=[get_weather],
        handoffs=[billing],
    )
    result = await Runner.run(triage, "Is it sunny, and what do I owe?")
    async with Client(shop()) as client:
        stocked = await client.call_tool("stock", {"item": "tea"})
        refunded = await client.call_tool("refund", {"order": "A-1"})
    with open(output, "w") as out:
        json.dump(
            {
                "last_agent": result.last_agent.name,
                "usage": [response.usage.__dict__ for response in result.raw_responses],
                "tool_errors": [stocked.is_error, refunded.is_error],
            },
            out,
            default=lambda details: details.__dict__,
        )


asyncio.run(main())
""".replace("MODEL", MODEL)


@dataclass(frozen=True)
class Run:
    prometheus: str
    jaeger: str
    app: dict[str, Any]  # what the app saw: the last agent, each model call's usage, tool errors
    started: datetime


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, require_binaries: Callable[..., None], require_processor: None
) -> Iterator[Run]:
    require_binaries("collector", "jaeger", "prometheus", "alertmanager")
    tmp_path = tmp_path_factory.mktemp("agents-mcp")
    stack = LocalStack(
        tmp_path / "run",
        ports=free_ports(),
        build_missing=False,
        scrape_interval="1s",
        collector_env=KEEP_EVERYTHING,
    )
    try:
        endpoints = stack.start(timeout=60)
        app, output = tmp_path / "app.py", tmp_path / "app.json"
        app.write_text(APP)
        started = datetime.now(UTC)
        with FakeProvider() as provider:
            # the Agents SDK would also send its traces to OpenAI's dashboard (not reachable here)
            env = demo_environment(
                endpoints, provider.base_url, SERVICE, GENAI_OTEL_OPENAI_AGENTS_EXPORT_TO_OPENAI="false"
            )
            done = run_app(str(app), str(output), env=env)
        assert "Tracing request failed" not in done.stderr  # nothing was sent to OpenAI
        yield Run(
            endpoints["prometheus_url"], endpoints["jaeger_url"], json.loads(output.read_text()), started
        )
    finally:
        stack.stop()


def by_labels(run: Run, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
        for sample in prometheus_query(run.prometheus, expr)
    }


def test_the_model_calls_under_the_agents_are_counted_once_with_exact_tokens_and_cost(run: Run) -> None:
    assert run.app["last_agent"] == "Billing"  # the tool, then the handoff, then the answer
    usages = run.app["usage"]
    assert len(usages) == 3
    selector = f'service="{SERVICE}"'
    wait_for(
        lambda: prometheus_scalar(run.prometheus, f"sum(llm_requests_total{{{selector}}}) >= 3"),
        timeout=60,
        what="the three model calls in Prometheus",
    )
    assert by_labels(
        run,
        f"sum by (provider, model, status) (llm_requests_total{{{selector}}})",
        "provider",
        "model",
        "status",
    ) == {("openai", MODEL, "ok"): 3.0}
    input_tokens = sum(usage["input_tokens"] for usage in usages)
    output_tokens = sum(usage["output_tokens"] for usage in usages)
    assert all(usage["input_tokens_details"]["cached_tokens"] == 0 for usage in usages)
    assert by_labels(run, f"sum by (token_type) (llm_tokens_total{{{selector}}})", "token_type") == {
        ("input",): float(input_tokens),
        ("output",): float(output_tokens),
    }
    price = sum(
        float(
            calc_price(
                Usage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]),
                MODEL,
                provider_id="openai",
                genai_request_timestamp=run.started,
            ).total_price
        )
        for usage in usages
    )
    (cost,) = by_labels(run, f"sum(llm_cost_usd_total{{{selector}}})").values()
    assert cost == pytest.approx(price, rel=0, abs=1e-9)  # each cost part rounded to 2**-32 USD


def test_tool_calls_are_counted_by_status_and_agent_runs_by_agent(run: Run) -> None:
    assert run.app["tool_errors"] == [False, True]
    selector = f'service="{SERVICE}"'
    calls, executions = sc.PROM_LLM_TOOL_CALLS, sc.PROM_LLM_TOOL_EXECUTIONS
    counted = f"sum({calls}{{{selector}}}) + sum({executions}{{{selector}}})"
    wait_for(
        lambda: prometheus_scalar(run.prometheus, f"{counted} >= 5"),
        timeout=60,
        what="the tool calls in Prometheus",
    )
    assert by_labels(run, f"{sc.PROM_LLM_TOOL_CALLS}{{{selector}}}", "tool", "status") == {
        ("get_weather", "ok"): 1.0,  # the agent's function tool
        ("stock", "ok"): 1.0,  # the MCP client's calls
        ("refund", "error"): 1.0,
    }
    # the in-process MCP server's own spans (mcp's SERVER-kind tools/call): its executions
    assert by_labels(run, f"{sc.PROM_LLM_TOOL_EXECUTIONS}{{{selector}}}", "tool", "status") == {
        ("stock", "ok"): 1.0,
        ("refund", "error"): 1.0,
    }
    assert by_labels(run, f"{sc.PROM_LLM_AGENT_RUN_DURATION}_count{{{selector}}}", "agent", "status") == {
        ("Triage", "ok"): 1.0,
        ("Billing", "ok"): 1.0,
    }


def test_the_run_is_one_trace_in_jaeger_and_only_the_model_calls_carry_a_cost(run: Run) -> None:
    def workflow_trace() -> dict[str, Any] | None:
        for trace in jaeger_traces(run.jaeger, SERVICE):
            names = [span["operationName"] for span in trace["spans"]]
            if "invoke_workflow Agent workflow" in names and len(names) >= 8:
                return trace
        return None

    trace = wait_for(workflow_trace, timeout=60, what="the agent run's trace in Jaeger")
    spans = {span["spanID"]: span for span in trace["spans"]}
    parent = {
        span_id: next(
            (ref["spanID"] for ref in span.get("references", []) if ref["refType"] == "CHILD_OF"), None
        )
        for span_id, span in spans.items()
    }

    def under(span_id: str) -> str | None:
        up = parent[span_id]
        return spans[up]["operationName"] if up in spans else None

    shape = sorted((span["operationName"], under(span_id)) for span_id, span in spans.items())
    assert shape == sorted(
        [
            ("invoke_workflow Agent workflow", None),
            ("invoke_agent Triage", "invoke_workflow Agent workflow"),
            (f"chat {MODEL}", "invoke_agent Triage"),
            ("execute_tool get_weather", "invoke_agent Triage"),
            (f"chat {MODEL}", "invoke_agent Triage"),
            ("handoff Billing", "invoke_agent Triage"),
            ("invoke_agent Billing", "invoke_workflow Agent workflow"),
            (f"chat {MODEL}", "invoke_agent Billing"),
        ]
    )
    costed = sorted(
        span["operationName"] for span in spans.values() if sc.GEN_AI_USAGE_COST_AMOUNT in span_tags(span)
    )
    assert costed == [f"chat {MODEL}"] * 3
