"""MCP client tool calls, made for real: an mcp Client talking to an MCPServer in the same process
(the SDK's in-memory transport), and a ClientSession talking to a server over stdio."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from genai_otel.instrumentation.mcp import MCPInstrumentor
from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel

from genai_otel import semconv as sc
from tests.processor.helpers import make_pipeline, samples

SCOPE = sc.GENAI_OTEL_SCOPE_MCP


def make_server() -> MCPServer:
    server = MCPServer("shop")

    @server.tool()
    def stock(item: str) -> int:
        """Units in stock."""
        return 3

    @server.tool()
    def refund(order: str) -> str:
        """Refunds an order (and fails)."""
        raise RuntimeError("the payment service is down")

    return server


@pytest.fixture
def mcp_otel(otel: Otel) -> Iterator[Otel]:
    MCPInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        yield otel
    finally:
        MCPInstrumentor().uninstrument()


def ours(otel: Otel) -> list[ReadableSpan]:
    return [
        span
        for span in otel.spans()
        if span.instrumentation_scope and span.instrumentation_scope.name == SCOPE
    ]


async def test_a_tool_call_that_succeeds_and_one_that_fails(mcp_otel: Otel) -> None:
    async with Client(make_server()) as client:
        ok = await client.call_tool("stock", {"item": "tea"})
        failed = await client.call_tool("refund", {"order": "7"})
    assert ok.is_error is False
    assert failed.is_error is True  # the server turns the exception into an error result
    first, second = ours(mcp_otel)  # one span per call, not one per SDK layer
    assert (first.name, first.kind, first.status.status_code) == (
        "execute_tool stock",
        SpanKind.INTERNAL,
        StatusCode.UNSET,
    )
    assert dict(first.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "stock",
        sc.GEN_AI_TOOL_TYPE: "extension",
        sc.MCP_METHOD_NAME: "tools/call",
    }
    assert (second.name, second.status.status_code) == ("execute_tool refund", StatusCode.ERROR)
    assert dict(second.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "refund",
        sc.GEN_AI_TOOL_TYPE: "extension",
        sc.MCP_METHOD_NAME: "tools/call",
        sc.ERROR_TYPE: "tool_error",
    }
    points = sorted(
        (attrs[sc.GEN_AI_TOOL_NAME], attrs.get(sc.ERROR_TYPE), point.count)
        for attrs, point in mcp_otel.points(sc.METRIC_EXECUTE_TOOL_DURATION)
    )
    assert points == [("refund", "tool_error", 1), ("stock", None, 1)]
    # the SDK's own spans of the call (mcp 2) are inside ours, never a second tool call
    for span in mcp_otel.spans():
        if span.name.startswith("MCP send tools/call"):
            assert span.parent is not None
            assert span.parent.span_id in {first.context.span_id, second.context.span_id}


async def test_the_processor_counts_each_tool_call_by_status(mcp_otel: Otel) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    async with Client(make_server()) as client:
        for _ in range(2):
            await client.call_tool("stock", {"item": "tea"})
        await client.call_tool("refund", {"order": "7"})
    pipeline = make_pipeline()
    payload = encode_spans(mcp_otel.spans()).SerializeToString()
    blocks, _ = pipeline.split(payload)
    pipeline.process(payload, blocks)
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, sc.PROM_LLM_TOOL_CALLS) == {
        '{service="unknown_service:python",tool="refund",status="error"}': "1",
        '{service="unknown_service:python",tool="stock",status="ok"}': "2",
    }
    # the server's own spans of the same calls (mcp's SERVER tools/call spans): its executions,
    # never a second call
    assert samples(text, sc.PROM_LLM_TOOL_EXECUTIONS) == {
        '{service="unknown_service:python",tool="refund",status="error"}': "1",
        '{service="unknown_service:python",tool="stock",status="ok"}': "2",
    }


async def test_a_tool_served_to_an_uninstrumented_client_is_an_execution(otel: Otel) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    async with Client(make_server()) as client:  # no MCPInstrumentor: only the server's spans
        await client.call_tool("stock", {"item": "tea"})
        await client.call_tool("refund", {"order": "7"})
    servers = [
        span for span in otel.spans() if span.kind == SpanKind.SERVER and span.name.startswith("tools/call")
    ]
    assert sorted(
        (span.name, span.status.status_code, (span.attributes or {}).get(sc.ERROR_TYPE)) for span in servers
    ) == [
        ("tools/call refund", StatusCode.ERROR, "tool_error"),
        ("tools/call stock", StatusCode.UNSET, None),
    ]
    pipeline = make_pipeline()
    payload = encode_spans(otel.spans()).SerializeToString()
    blocks, _ = pipeline.split(payload)
    pipeline.process(payload, blocks)
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, sc.PROM_LLM_TOOL_CALLS) == {}
    assert samples(text, sc.PROM_LLM_TOOL_EXECUTIONS) == {
        '{service="unknown_service:python",tool="refund",status="error"}': "1",
        '{service="unknown_service:python",tool="stock",status="ok"}': "1",
    }


async def test_no_content_without_the_opt_in_and_both_sides_with_it(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sc.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    MCPInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        async with Client(make_server()) as client:
            await client.call_tool("stock", {"item": "tea"})
    finally:
        MCPInstrumentor().uninstrument()
    (span,) = ours(otel)
    assert (span.attributes or {})[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"item": "tea"}'
    result = (span.attributes or {})[sc.GEN_AI_TOOL_CALL_RESULT]
    assert '"text": "3"' in str(result)


SERVER_SCRIPT = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("stdio-shop")

    @server.tool()
    def stock(item: str) -> int:
        return 5

    server.run("stdio")
    """
)


async def test_a_client_session_over_stdio_and_an_unknown_tool(mcp_otel: Otel, tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT)
    params = StdioServerParameters(command=sys.executable, args=[str(script)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("stock", {"item": "tea"})
        unknown = await session.call_tool("no_such_tool", {})
    assert result.is_error is False
    assert unknown.is_error is True
    spans = ours(mcp_otel)
    assert [(s.name, s.status.status_code, (s.attributes or {}).get(sc.ERROR_TYPE)) for s in spans] == [
        ("execute_tool stock", StatusCode.UNSET, None),
        ("execute_tool no_such_tool", StatusCode.ERROR, "tool_error"),
    ]


async def test_uninstrument_restores_the_sdk(otel: Otel) -> None:
    MCPInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    MCPInstrumentor().uninstrument()
    async with Client(make_server()) as client:
        await client.call_tool("stock", {"item": "tea"})
    assert ours(otel) == []
