"""Agent and tool spans: never priced, counted as tool calls and agent runs, on both paths."""

from __future__ import annotations

import pytest
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook

from genai_otel import semconv as sc

from .helpers import GENAI, T_2025_07_01, make_pipeline, make_request, make_span, run, samples

TOOL = sc.PROM_LLM_TOOL_CALLS
AGENT = sc.PROM_LLM_AGENT_RUN_DURATION


def tool_span(name: str, *, error: bool = False, error_type: str | None = None, **options: object):
    attributes = {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: name}
    if error_type:
        attributes[sc.ERROR_TYPE] = error_type
    return make_span(attributes, name=f"execute_tool {name}", error=error, **options)  # type: ignore[arg-type]


def agent_span(name: str, duration_s: float, *, error: bool = False):
    attributes = {
        sc.GEN_AI_OPERATION_NAME: "invoke_agent",
        sc.GEN_AI_AGENT_NAME: name,
        sc.GEN_AI_PROVIDER_NAME: "openai",
        # an agent span may carry the totals of the calls inside it: never priced, never counted
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
    }
    return make_span(attributes, name=f"invoke_agent {name}", duration_s=duration_s, error=error)


@pytest.fixture(params=[False, True], ids=["python", "lane"])
def pipeline(request: pytest.FixtureRequest) -> Pipeline:
    if request.param:
        from genai_otel.processors.scan import _accelerator

        if _accelerator is None:
            pytest.skip("the C extension is not built")
        return Pipeline(make_pipeline().registry, PriceBook(), accelerated=True)
    return Pipeline(make_pipeline().registry, PriceBook(), accelerated=False)


def test_tool_calls_are_counted_by_tool_and_status_every_time(pipeline: Pipeline) -> None:
    # three requests: the lane sees the same span kinds again, and must still leave them to Python
    for _ in range(3):
        payload = make_request(
            [
                tool_span("get_weather"),
                tool_span("get_weather", error=True, error_type="ValueError"),
                tool_span("lookup", error_type="McpError"),  # error.type alone says it failed
                make_span(GENAI),
            ]
        )
        run(pipeline, payload)
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, TOOL) == {
        '{service="checkout",tool="get_weather",status="error"}': "3",
        '{service="checkout",tool="get_weather",status="ok"}': "3",
        '{service="checkout",tool="lookup",status="error"}': "3",
    }
    # only the model call is a request, and priced (0.0035 USD each)
    chat = 'service="checkout",provider="openai",model="gpt-4o",operation="chat"'
    assert samples(text, sc.PROM_LLM_REQUESTS) == {"{" + chat + ',status="ok",error_type=""}': "3"}
    (cost,) = samples(text, sc.PROM_LLM_COST).values()
    assert float(cost) == pytest.approx(0.0105, abs=1e-9)
    assert pipeline.registry.received == {"genai": 3, "other": 9}


def test_agent_runs_feed_a_duration_histogram_by_agent_and_status(pipeline: Pipeline) -> None:
    for _ in range(2):
        run(
            pipeline,
            make_request([agent_span("triage", 3.0), agent_span("triage", 30.0, error=True)]),
        )
    run(pipeline, make_request([agent_span("billing", 0.5)]))
    text = pipeline.registry.expose(openmetrics=False)
    got = samples(text, AGENT + "_count")
    assert got == {
        '{service="checkout",agent="billing",status="ok"}': "1",
        '{service="checkout",agent="triage",status="error"}': "2",
        '{service="checkout",agent="triage",status="ok"}': "2",
    }
    assert samples(text, AGENT + "_sum") == {
        '{service="checkout",agent="billing",status="ok"}': "0.5",
        '{service="checkout",agent="triage",status="error"}': "60.0",
        '{service="checkout",agent="triage",status="ok"}': "6.0",
    }
    buckets = samples(text, AGENT + "_bucket")
    assert buckets['{service="checkout",agent="triage",status="ok",le="2.56"}'] == "0"
    assert buckets['{service="checkout",agent="triage",status="ok",le="5.12"}'] == "2"
    assert buckets['{service="checkout",agent="triage",status="error",le="20.48"}'] == "0"
    assert buckets['{service="checkout",agent="triage",status="error",le="40.96"}'] == "2"
    assert buckets['{service="checkout",agent="triage",status="error",le="655.36"}'] == "2"
    # the usage an agent span carries is never a model call nor a cost
    assert samples(text, sc.PROM_LLM_REQUESTS) == {}
    assert samples(text, sc.PROM_LLM_COST) == {}


def test_tool_and_agent_labels_are_bounded() -> None:
    pipeline = make_pipeline(label_limits={sc.LABEL_TOOL: 2, sc.LABEL_AGENT: 1})
    run(
        pipeline,
        make_request(
            [tool_span(f"tool_{i}") for i in range(4)] + [agent_span("a", 1.0), agent_span("b", 1.0)]
        ),
    )
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, TOOL) == {
        '{service="checkout",tool="other",status="ok"}': "2",
        '{service="checkout",tool="tool_0",status="ok"}': "1",
        '{service="checkout",tool="tool_1",status="ok"}': "1",
    }
    assert samples(text, AGENT + "_count") == {
        '{service="checkout",agent="a",status="ok"}': "1",
        '{service="checkout",agent="other",status="ok"}': "1",
    }
    assert samples(text, sc.PROM_PROCESSOR_SERIES_OVERFLOW) == {
        '{label="agent"}': "1",
        '{label="tool"}': "2",
    }


def test_a_tool_span_without_a_name_is_counted_as_unknown() -> None:
    pipeline = make_pipeline()
    run(
        pipeline, make_request([make_span({sc.GEN_AI_OPERATION_NAME: "execute_tool"}, start_ns=T_2025_07_01)])
    )
    assert samples(pipeline.registry.expose(openmetrics=False), TOOL) == {
        '{service="checkout",tool="unknown",status="ok"}': "1"
    }


def server_span(name: str, *, error_type: str | None = None):
    """An MCP server's tools/call span (mcp 2.3: SERVER, error.type "tool_error" or a JSON-RPC
    code with status ERROR on failure)."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    attributes = {
        sc.MCP_METHOD_NAME: "tools/call",
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: name,
    }
    if error_type:
        attributes[sc.ERROR_TYPE] = error_type
    span = make_span(attributes, name=f"tools/call {name}", error=error_type is not None)
    span.kind = Span.SPAN_KIND_SERVER
    return span


def test_a_servers_executions_are_their_own_metric_and_never_a_second_call(pipeline: Pipeline) -> None:
    # an instrumented client's call and the server's execution of it (one call), then two
    # executions served to uninstrumented clients, one failed; the server in another service
    for _ in range(2):  # the lane sees the kinds again, and must still leave them to Python
        run(pipeline, make_request([tool_span("stock")]))
        run(
            pipeline,
            make_request(
                [server_span("stock"), server_span("stock"), server_span("refund", error_type="tool_error")],
                service="shop-mcp",
            ),
        )
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, TOOL) == {'{service="checkout",tool="stock",status="ok"}': "2"}
    assert samples(text, sc.PROM_LLM_TOOL_EXECUTIONS) == {
        '{service="shop-mcp",tool="refund",status="error"}': "2",
        '{service="shop-mcp",tool="stock",status="ok"}': "4",
    }
    assert samples(text, sc.PROM_LLM_REQUESTS) == {}


def guardrail_span(name: str, triggered: bool | None, *, error: bool = False):
    attributes: dict[str, object] = {
        sc.GEN_AI_OPERATION_NAME: "apply_guardrail",
        sc.GENAI_OTEL_GUARDRAIL_NAME: name,
    }
    if triggered is not None:
        attributes[sc.GENAI_OTEL_GUARDRAIL_TRIGGERED] = triggered
    return make_span(attributes, name=f"apply_guardrail {name}", error=error)


def test_guardrail_verdicts_are_counted_by_guardrail_and_tripwire(pipeline: Pipeline) -> None:
    for _ in range(3):
        run(
            pipeline,
            make_request(
                [
                    guardrail_span("no_secrets", False),
                    guardrail_span("no_secrets", True),
                    guardrail_span("on_topic", False),
                    guardrail_span("on_topic", None),  # cancelled: no verdict
                    guardrail_span("pii", None, error=True),  # raised: no verdict
                    make_span(GENAI),
                ]
            ),
        )
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, sc.PROM_LLM_GUARDRAIL_EVALUATIONS) == {
        '{service="checkout",guardrail="no_secrets",triggered="false"}': "3",
        '{service="checkout",guardrail="no_secrets",triggered="true"}': "3",
        '{service="checkout",guardrail="on_topic",triggered="false"}': "3",
    }
    chat = 'service="checkout",provider="openai",model="gpt-4o",operation="chat"'
    assert samples(text, sc.PROM_LLM_REQUESTS) == {"{" + chat + ',status="ok",error_type=""}': "3"}
    assert pipeline.registry.received == {"genai": 3, "other": 15}


def test_guardrail_and_served_tool_labels_are_bounded() -> None:
    pipeline = make_pipeline(label_limits={sc.LABEL_TOOL: 1, sc.LABEL_GUARDRAIL: 1})
    run(
        pipeline,
        make_request(
            [server_span("a"), server_span("b"), guardrail_span("g1", True), guardrail_span("g2", True)]
        ),
    )
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, sc.PROM_LLM_TOOL_EXECUTIONS) == {
        '{service="checkout",tool="a",status="ok"}': "1",
        '{service="checkout",tool="other",status="ok"}': "1",
    }
    assert samples(text, sc.PROM_LLM_GUARDRAIL_EVALUATIONS) == {
        '{service="checkout",guardrail="g1",triggered="true"}': "1",
        '{service="checkout",guardrail="other",triggered="true"}': "1",
    }
    assert samples(text, sc.PROM_PROCESSOR_SERIES_OVERFLOW) == {
        '{label="guardrail"}': "1",
        '{label="tool"}': "1",
    }
