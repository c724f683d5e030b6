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


def test_the_server_side_of_a_tool_call_is_not_counted_again() -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    pipeline = make_pipeline()
    client = tool_span("stock")
    server = tool_span("stock")
    server.kind = Span.SPAN_KIND_SERVER  # an MCP server's tools/call span, child of the client's
    run(pipeline, make_request([client, server]))
    assert samples(pipeline.registry.expose(openmetrics=False), TOOL) == {
        '{service="checkout",tool="stock",status="ok"}': "1"
    }
