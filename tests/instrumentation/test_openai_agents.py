"""The OpenAI Agents SDK, run for real against the fake provider: the agent span tree, the agent
and tool duration metrics, and what the processor makes of the exported spans."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIResponsesModel,
    OutputGuardrailTripwireTriggered,
    Runner,
    function_tool,
    input_guardrail,
    output_guardrail,
)
from agents.tracing import custom_span, get_trace_provider, set_trace_processors
from agents.tracing import trace as agents_trace
from genai_otel.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from genai_otel.processors.pipeline import Pipeline
from genai_otel.processors.pricing import PriceBook
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_fixtures import Otel

from genai_otel import semconv as sc
from tests.processor.helpers import attributes_of, make_pipeline, samples, spans_of

INTERNAL, CLIENT = SpanKind.INTERNAL, SpanKind.CLIENT


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@function_tool
def broken_lookup(order: str) -> str:
    """Looks an order up (and fails)."""
    raise ValueError("the order database is down")


@contextmanager
def instrumented(otel: Otel) -> Iterator[Otel]:
    """The agents instrumentor on the test's providers; the SDK's own exporter (which would send
    traces to OpenAI) removed meanwhile. Entered after any environment the test sets."""
    multi = get_trace_provider()._multi_processor  # type: ignore[attr-defined]
    before = list(multi._processors)
    set_trace_processors([])
    OpenAIAgentsInstrumentor().instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    try:
        yield otel
    finally:
        OpenAIAgentsInstrumentor().uninstrument()
        set_trace_processors(before)


@pytest.fixture
def agents_otel(otel: Otel) -> Iterator[Otel]:
    with instrumented(otel):
        yield otel


def tree(spans: list[ReadableSpan]) -> list[tuple[str, SpanKind, str | None]]:
    """(name, kind, parent's name) in start order; every span in one trace."""
    names = {span.context.span_id: span.name for span in spans}
    assert len({span.context.trace_id for span in spans}) == 1
    ordered = sorted(spans, key=lambda span: span.start_time or 0)
    return [(s.name, s.kind, names.get(s.parent.span_id) if s.parent else None) for s in ordered]


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [span for span in spans if span.name == name]
    return span


def model(client: openai.AsyncOpenAI) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(model="gpt-4o", openai_client=client)


async def triage_run(client: openai.AsyncOpenAI) -> Any:
    billing = Agent(name="Billing", instructions="Answer billing questions.", model=model(client))
    triage = Agent(
        name="Triage",
        instructions="Route the question.",
        model=model(client),
        tools=[get_weather],
        handoffs=[billing],
    )
    return await Runner.run(triage, "Is it sunny, and what do I owe?")


def through_processor(spans: list[ReadableSpan], pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """The exported spans through the processor: each forwarded span's attributes, by name."""
    payload = encode_spans(spans).SerializeToString()
    blocks, _ = pipeline.split(payload)
    return {span.name: attributes_of(span) for span in spans_of(pipeline.process(payload, blocks))}


async def test_agent_with_a_tool_and_a_handoff_makes_the_conventional_span_tree(
    agents_otel: Otel, aoai: openai.AsyncOpenAI
) -> None:
    result = await triage_run(aoai)
    assert result.last_agent.name == "Billing"
    spans = agents_otel.spans()
    assert tree(spans) == [
        ("invoke_workflow Agent workflow", INTERNAL, None),
        ("invoke_agent Triage", INTERNAL, "invoke_workflow Agent workflow"),
        ("chat gpt-4o", CLIENT, "invoke_agent Triage"),  # asks for get_weather
        ("execute_tool get_weather", INTERNAL, "invoke_agent Triage"),
        ("chat gpt-4o", CLIENT, "invoke_agent Triage"),  # asks for transfer_to_billing
        ("handoff Billing", INTERNAL, "invoke_agent Triage"),
        ("invoke_agent Billing", INTERNAL, "invoke_workflow Agent workflow"),
        ("chat gpt-4o", CLIENT, "invoke_agent Billing"),  # the answer
    ]
    assert dict(named(spans, "invoke_agent Triage").attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "invoke_agent",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_AGENT_NAME: "Triage",
    }
    tool = named(spans, "execute_tool get_weather")
    # no content without the opt-in: neither the arguments nor the result
    assert dict(tool.attributes or {}) == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "get_weather",
        sc.GEN_AI_TOOL_TYPE: "function",
    }
    assert tool.status.status_code == StatusCode.UNSET
    assert dict(named(spans, "handoff Billing").attributes or {}) == {
        sc.GENAI_OTEL_HANDOFF_FROM_AGENT: "Triage",
        sc.GENAI_OTEL_HANDOFF_TO_AGENT: "Billing",
    }
    calls = [span for span in spans if span.kind == CLIENT]
    assert [list(span.attributes.get(sc.GENAI_OTEL_RESPONSE_TOOL_CALL_NAMES, [])) for span in calls] == [  # type: ignore[union-attr]
        ["get_weather"],
        ["transfer_to_billing"],
        [],
    ]
    # the conventions' agent and tool duration metrics: one point per agent and per tool
    agent_points = agents_otel.points(sc.METRIC_INVOKE_AGENT_DURATION)
    assert sorted((attrs[sc.GEN_AI_AGENT_NAME], point.count) for attrs, point in agent_points) == [
        ("Billing", 1),
        ("Triage", 1),
    ]
    ((tool_attrs, tool_point),) = agents_otel.points(sc.METRIC_EXECUTE_TOOL_DURATION)
    assert tool_attrs == {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: "get_weather"}
    assert tool_point.count == 1


async def test_only_the_model_calls_under_an_agent_are_priced(
    agents_otel: Otel, aoai: openai.AsyncOpenAI
) -> None:
    await triage_run(aoai)
    spans = agents_otel.spans()
    pipeline = Pipeline(make_pipeline().registry, PriceBook())
    payload = encode_spans(spans).SerializeToString()
    blocks, _ = pipeline.split(payload)
    forwarded = spans_of(pipeline.process(payload, blocks))
    priced = sorted(span.name for span in forwarded if sc.GEN_AI_USAGE_COST_AMOUNT in attributes_of(span))
    assert priced == ["chat gpt-4o"] * 3
    for span in forwarded:
        if span.name != "chat gpt-4o":
            assert not any(key.startswith(("gen_ai.usage", "genai_otel.cost")) for key in attributes_of(span))
    text = pipeline.registry.expose(openmetrics=False)
    (requests,) = samples(text, sc.PROM_LLM_REQUESTS).values()
    assert requests == "3"
    assert samples(text, sc.PROM_LLM_TOOL_CALLS) == {
        '{service="unknown_service:python",tool="get_weather",status="ok"}': "1"
    }
    assert samples(text, sc.PROM_LLM_AGENT_RUN_DURATION + "_count") == {
        '{service="unknown_service:python",agent="Billing",status="ok"}': "1",
        '{service="unknown_service:python",agent="Triage",status="ok"}': "1",
    }


async def test_a_failing_tool_is_an_error_span_and_a_failed_tool_call(
    agents_otel: Otel, aoai: openai.AsyncOpenAI
) -> None:
    agent = Agent(name="Orders", instructions="Look orders up.", model=model(aoai), tools=[broken_lookup])
    result = await Runner.run(agent, "Where is order 7?")
    assert result.final_output  # the SDK hands the failure to the model, which answers
    spans = agents_otel.spans()
    tool = named(spans, "execute_tool broken_lookup")
    assert tool.status.status_code == StatusCode.ERROR
    assert (tool.attributes or {})[sc.ERROR_TYPE] == "_OTHER"
    ((attrs, point),) = agents_otel.points(sc.METRIC_EXECUTE_TOOL_DURATION)
    assert attrs == {
        sc.GEN_AI_OPERATION_NAME: "execute_tool",
        sc.GEN_AI_TOOL_NAME: "broken_lookup",
        sc.ERROR_TYPE: "_OTHER",
    }
    assert point.count == 1
    pipeline = make_pipeline()
    through_processor(spans, pipeline)
    text = pipeline.registry.expose(openmetrics=False)
    assert samples(text, sc.PROM_LLM_TOOL_CALLS) == {
        '{service="unknown_service:python",tool="broken_lookup",status="error"}': "1"
    }


async def test_tool_content_is_captured_only_with_the_opt_in(
    otel: Otel, aoai: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sc.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    with instrumented(otel):
        agent = Agent(name="Weather", instructions="Say the weather.", model=model(aoai), tools=[get_weather])
        await Runner.run(agent, "Weather?")
    attributes = dict(named(otel.spans(), "execute_tool get_weather").attributes or {})
    assert attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"city":""}'
    assert attributes[sc.GEN_AI_TOOL_CALL_RESULT] == "sunny in "


async def test_uninstrument_removes_the_bridge(agents_otel: Otel, aoai: openai.AsyncOpenAI) -> None:
    OpenAIAgentsInstrumentor().uninstrument()
    agent = Agent(name="Quiet", instructions="Answer.", model=model(aoai))
    await Runner.run(agent, "Hello?")
    assert [span.name for span in agents_otel.spans()] == ["chat gpt-4o"]
    assert get_trace_provider()._multi_processor._processors == ()  # type: ignore[attr-defined]
    OpenAIAgentsInstrumentor().instrument(
        tracer_provider=agents_otel.tracer_provider, meter_provider=agents_otel.meter_provider
    )


@pytest.mark.parametrize("setting", ["false", "true", None])
def test_the_sdks_own_export_to_openai_is_removed_only_when_asked(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    from agents.tracing.processors import default_processor

    multi = get_trace_provider()._multi_processor  # type: ignore[attr-defined]
    before = list(multi._processors)
    sdk_export = default_processor()  # what the SDK registers: traces to OpenAI's dashboard
    set_trace_processors([sdk_export])
    if setting is None:
        monkeypatch.delenv("GENAI_OTEL_OPENAI_AGENTS_EXPORT_TO_OPENAI", raising=False)
    else:
        monkeypatch.setenv("GENAI_OTEL_OPENAI_AGENTS_EXPORT_TO_OPENAI", setting)
    try:
        OpenAIAgentsInstrumentor().instrument(
            tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
        )
        bridge = OpenAIAgentsInstrumentor._bridge
        if setting == "false":
            assert list(multi._processors) == [bridge]
        else:
            assert list(multi._processors) == [sdk_export, bridge]
        OpenAIAgentsInstrumentor().uninstrument()
        assert list(multi._processors) == [sdk_export]  # as the application had it
    finally:
        OpenAIAgentsInstrumentor().uninstrument()
        set_trace_processors(before)


MCP_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("shop")


@server.tool()
def stock(item: str) -> int:
    return 5


server.run("stdio")
"""


async def test_an_agents_mcp_tool_is_one_tool_span_with_the_mcp_instrumentor_on(
    agents_otel: Otel, aoai: openai.AsyncOpenAI, tmp_path: Path
) -> None:
    from agents.mcp import MCPServerStdio
    from genai_otel.instrumentation.mcp import MCPInstrumentor

    script = tmp_path / "server.py"
    script.write_text(MCP_SERVER)
    MCPInstrumentor().instrument(
        tracer_provider=agents_otel.tracer_provider, meter_provider=agents_otel.meter_provider
    )
    try:
        async with MCPServerStdio(params={"command": sys.executable, "args": [str(script)]}) as server:
            agent = Agent(name="Shop", instructions="Check stock.", model=model(aoai), mcp_servers=[server])
            await Runner.run(agent, "Is tea in stock?")
    finally:
        MCPInstrumentor().uninstrument()
    spans = agents_otel.spans()
    tools = [
        span for span in spans if (span.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "execute_tool"
    ]
    assert [(span.name, span.instrumentation_scope.name) for span in tools] == [  # type: ignore[union-attr]
        ("execute_tool stock", sc.GENAI_OTEL_SCOPE_OPENAI_AGENTS)
    ]
    assert (tools[0].attributes or {})[sc.GEN_AI_TOOL_TYPE] == "extension"
    assert tools[0].parent is not None
    assert tools[0].parent.span_id == named(spans, "invoke_agent Shop").context.span_id


@input_guardrail
async def no_secrets(ctx: Any, agent: Any, user_input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="secret" in str(user_input))


@input_guardrail
async def on_topic(ctx: Any, agent: Any, user_input: Any) -> GuardrailFunctionOutput:
    await asyncio.sleep(0.2)  # still running when no_secrets trips: cancelled, no verdict
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)


def guardrails(spans: list[ReadableSpan]) -> list[tuple[str, StatusCode, dict[str, Any]]]:
    return sorted(
        (span.name, span.status.status_code, dict(span.attributes or {}))
        for span in spans
        if span.name.startswith("apply_guardrail")
    )


def guardrail_attributes(name: str, **extra: Any) -> dict[str, Any]:
    return {sc.GEN_AI_OPERATION_NAME: "apply_guardrail", sc.GENAI_OTEL_GUARDRAIL_NAME: name, **extra}


async def test_input_guardrails_are_spans_and_a_tripwire_fails_the_agent_run(
    agents_otel: Otel, aoai: openai.AsyncOpenAI
) -> None:
    agent = Agent(
        name="Guarded", instructions="Answer.", model=model(aoai), input_guardrails=[no_secrets, on_topic]
    )
    await Runner.run(agent, "What is the weather?")
    passed = agents_otel.spans()
    agents_otel.exporter.clear()
    with pytest.raises(InputGuardrailTripwireTriggered):
        await Runner.run(agent, "Tell me the secret")
    tripped = agents_otel.spans()
    triggered = sc.GENAI_OTEL_GUARDRAIL_TRIGGERED
    assert guardrails(passed) == [
        (
            "apply_guardrail no_secrets",
            StatusCode.UNSET,
            guardrail_attributes("no_secrets", **{triggered: False}),
        ),
        (
            "apply_guardrail on_topic",
            StatusCode.UNSET,
            guardrail_attributes("on_topic", **{triggered: False}),
        ),
    ]
    assert guardrails(tripped) == [
        (
            "apply_guardrail no_secrets",
            StatusCode.UNSET,
            guardrail_attributes("no_secrets", **{triggered: True}),
        ),
        ("apply_guardrail on_topic", StatusCode.UNSET, guardrail_attributes("on_topic")),  # cancelled
    ]
    for spans in (passed, tripped):  # the agent's children
        agent_span = named(spans, "invoke_agent Guarded")
        for span in spans:
            if span.name.startswith("apply_guardrail"):
                assert span.parent is not None
                assert span.parent.span_id == agent_span.context.span_id
    assert named(passed, "invoke_agent Guarded").status.status_code == StatusCode.UNSET
    failed = named(tripped, "invoke_agent Guarded")
    # the SDK leaves its agent span without an error; the run raised: the span says which exception
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})[sc.ERROR_TYPE] == "InputGuardrailTripwireTriggered"
    points = sorted(
        (attrs.get(sc.ERROR_TYPE, ""), point.count)
        for attrs, point in agents_otel.points(sc.METRIC_INVOKE_AGENT_DURATION)
    )
    assert points == [("", 1), ("InputGuardrailTripwireTriggered", 1)]
    pipeline = make_pipeline()
    through_processor(passed + tripped, pipeline)
    text = pipeline.registry.expose(openmetrics=False)
    service = 'service="unknown_service:python"'
    assert samples(text, sc.PROM_LLM_GUARDRAIL_EVALUATIONS) == {
        "{" + service + ',guardrail="no_secrets",triggered="false"}': "1",
        "{" + service + ',guardrail="no_secrets",triggered="true"}': "1",
        "{" + service + ',guardrail="on_topic",triggered="false"}': "1",
    }
    assert samples(text, sc.PROM_LLM_AGENT_RUN_DURATION + "_count") == {
        "{" + service + ',agent="Guarded",status="error"}': "1",
        "{" + service + ',agent="Guarded",status="ok"}': "1",
    }


@output_guardrail
async def no_refunds(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered=True)


@output_guardrail
async def broken_check(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
    raise ValueError("the moderation service is down")


async def test_an_output_tripwire_and_a_guardrail_that_raises(
    agents_otel: Otel, aoai: openai.AsyncOpenAI
) -> None:
    with pytest.raises(OutputGuardrailTripwireTriggered):
        await Runner.run(
            Agent(name="Refunds", instructions="Answer.", model=model(aoai), output_guardrails=[no_refunds]),
            "Refund me",
        )
    with pytest.raises(ValueError, match="moderation service is down"):
        await Runner.run(
            Agent(
                name="Checked", instructions="Answer.", model=model(aoai), output_guardrails=[broken_check]
            ),
            "Hello",
        )
    spans = agents_otel.spans()
    assert guardrails(spans) == [
        # raised: no verdict, an error (the exception's class)
        (
            "apply_guardrail broken_check",
            StatusCode.ERROR,
            guardrail_attributes("broken_check", **{sc.ERROR_TYPE: "ValueError"}),
        ),
        (
            "apply_guardrail no_refunds",
            StatusCode.UNSET,
            guardrail_attributes("no_refunds", **{sc.GENAI_OTEL_GUARDRAIL_TRIGGERED: True}),
        ),
    ]
    assert (named(spans, "invoke_agent Refunds").attributes or {})[
        sc.ERROR_TYPE
    ] == "OutputGuardrailTripwireTriggered"
    assert (named(spans, "invoke_agent Checked").attributes or {})[sc.ERROR_TYPE] == "ValueError"
    pipeline = make_pipeline()
    through_processor(spans, pipeline)
    assert samples(pipeline.registry.expose(openmetrics=False), sc.PROM_LLM_GUARDRAIL_EVALUATIONS) == {
        '{service="unknown_service:python",guardrail="no_refunds",triggered="true"}': "1"
    }


def custom_run() -> None:
    with agents_trace("Nightly import"), custom_span("load orders", {"rows": 3}) as span:
        span.span_data.data.update(
            {"source": "orders.csv", "ok": True, "ratio": 0.5, "ids": [1, 2], "meta": {"a": 1}}
        )


def test_a_custom_span_is_a_span_of_its_name_without_its_data_by_default(agents_otel: Otel) -> None:
    custom_run()
    spans = agents_otel.spans()
    assert tree(spans) == [
        ("invoke_workflow Nightly import", INTERNAL, None),
        ("load orders", INTERNAL, "invoke_workflow Nightly import"),
    ]
    custom = named(spans, "load orders")
    assert dict(custom.attributes or {}) == {}  # its data may be content
    assert custom.status.status_code == StatusCode.UNSET


def test_a_custom_spans_primitive_data_with_the_content_opt_in(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sc.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_ONLY")
    monkeypatch.setenv(sc.ENV_CAPTURE_MESSAGE_CONTENT_MAX_LENGTH, "6")
    with instrumented(otel):
        custom_run()
    prefix = sc.GENAI_OTEL_CUSTOM_DATA_PREFIX
    assert dict(named(otel.spans(), "load orders").attributes or {}) == {
        f"{prefix}rows": 3,
        f"{prefix}source": "orders",  # cut to the maximum length
        f"{prefix}ok": True,
        f"{prefix}ratio": 0.5,
    }


@pytest.mark.parametrize(
    ("options", "raised"),
    [
        ({"input_guardrails": [no_secrets]}, InputGuardrailTripwireTriggered),
        ({"output_guardrails": [no_refunds]}, OutputGuardrailTripwireTriggered),
    ],
    ids=["input", "output"],
)
async def test_a_streamed_runs_tripwire_fails_its_agent_span_too(
    agents_otel: Otel, aoai: openai.AsyncOpenAI, options: dict[str, Any], raised: type[Exception]
) -> None:
    agent = Agent(name="Streamed", instructions="Answer.", model=model(aoai), **options)
    result = Runner.run_streamed(agent, "Tell me the secret")
    with pytest.raises(raised):
        async for _ in result.stream_events():
            pass
    spans = agents_otel.spans()
    ((_, status, attributes),) = guardrails(spans)
    assert (status, attributes[sc.GENAI_OTEL_GUARDRAIL_TRIGGERED]) == (StatusCode.UNSET, True)
    failed = named(spans, "invoke_agent Streamed")
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes or {})[sc.ERROR_TYPE] == raised.__qualname__
