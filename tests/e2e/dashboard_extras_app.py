"""What the demo does not send, for the live dashboard test: judge scores, safety evaluations
(hallucination, toxicity), calls refused by the content filter, unpriced calls, a burst of
rate-limited calls, spans as peer instrumentations write them, and agent and tool spans.

Run as `opentelemetry-instrument python tests/e2e/dashboard_extras_app.py` with the demo's
environment. Records LLM-as-judge evaluations of the demo's models (the quality dashboard reads
them), calls a model no price table knows (the cost dashboard's unpriced panel), and makes one
model fail often enough for the error-rate alert: the demo's own errors are spread over many
model/error-type series, and the first increment of a new counter series is no increase to
Prometheus's rate(), so a handful of scattered errors may never show as an error ratio.
"""

from __future__ import annotations

import time
from typing import Any

import openai
from genai_otel.instrumentation.evaluation import record_evaluation
from opentelemetry import trace

from genai_otel import semconv as sc

RATE_LIMITED_MODEL = "gpt-4o-mini"
RATE_LIMITED_CALLS = 20
PROMPT: Any = [{"role": "user", "content": "Rate this answer."}]
JUDGED = (("openai", "gpt-4o-mini", 8.5), ("openai", "gpt-4o", 6.0), ("anthropic", "claude-sonnet-4-0", 9.0))
# safety evaluations: 1 flags the response (the processor's evaluations.safety_thresholds)
SAFETY_RESULTS = (
    (sc.EVALUATION_HALLUCINATION, 1.0),
    (sc.EVALUATION_HALLUCINATION, 0.0),
    (sc.EVALUATION_TOXICITY, 0.02),
)


ANTHROPIC_CALL = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "anthropic",
    sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-0",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
}


def peers_spans() -> None:
    """Spans as other instrumentations write them: one Anthropic call seen by a peer and by the
    anthropic SDK itself (its span a child of the peer's: the processor counts the call once), and
    an OpenLIT Anthropic stream span, whose usage is known to be incomplete."""
    peer = trace.get_tracer("opentelemetry.instrumentation.anthropic")
    sdk = trace.get_tracer(sc.ANTHROPIC_SDK_SCOPE)
    openlit = trace.get_tracer("openlit.otel.tracing")
    with (
        peer.start_as_current_span("chat claude-sonnet-4-0", attributes=ANTHROPIC_CALL),
        sdk.start_as_current_span("anthropic.messages.create", attributes=ANTHROPIC_CALL),
    ):
        time.sleep(0.01)
    streamed = {
        **ANTHROPIC_CALL,
        sc.GEN_AI_REQUEST_STREAM: True,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 0,
        sc.OPENLIT_USAGE_COST: 0.0,  # OpenLIT's own estimate (re-priced)
    }
    with openlit.start_as_current_span("chat claude-sonnet-4-0", attributes=streamed):
        time.sleep(0.01)


def agent_spans() -> None:
    """An agent run as an agent framework's instrumentation writes it: invoke_agent around two
    execute_tool spans, one of them failed, and two guardrail verdicts; and an MCP server's
    tools/call spans (the overview's Agents and tools row)."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = trace.get_tracer("app.agents")
    agent = {
        sc.GEN_AI_OPERATION_NAME: "invoke_agent",
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_AGENT_NAME: "Triage",
    }
    with tracer.start_as_current_span("invoke_agent Triage", attributes=agent):
        for tool, failed in (("get_weather", False), ("lookup_order", True)):
            attributes = {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: tool}
            with tracer.start_as_current_span(f"execute_tool {tool}", attributes=attributes) as span:
                time.sleep(0.01)
                if failed:
                    span.set_attribute(sc.ERROR_TYPE, "TimeoutError")
                    span.set_status(Status(StatusCode.ERROR, "TimeoutError"))
        # two guardrail verdicts, one tripped (the row's guardrail panels)
        for guardrail, tripped in (("no_secrets", False), ("on_topic", True)):
            attributes = {
                sc.GEN_AI_OPERATION_NAME: sc.Operation.APPLY_GUARDRAIL.value,
                sc.GENAI_OTEL_GUARDRAIL_NAME: guardrail,
                sc.GENAI_OTEL_GUARDRAIL_TRIGGERED: tripped,
            }
            with tracer.start_as_current_span(f"apply_guardrail {guardrail}", attributes=attributes):
                time.sleep(0.01)
    # an MCP server's side of two tool calls, one failed (executions served)
    for tool, failed in (("stock", False), ("refund", True)):
        attributes = {
            sc.MCP_METHOD_NAME: "tools/call",
            sc.GEN_AI_OPERATION_NAME: "execute_tool",
            sc.GEN_AI_TOOL_NAME: tool,
        }
        with tracer.start_as_current_span(
            f"tools/call {tool}", kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            if failed:
                span.set_attribute(sc.ERROR_TYPE, "tool_error")
                span.set_status(Status(StatusCode.ERROR))


def main() -> None:
    client = openai.OpenAI(max_retries=0, timeout=30)
    for _ in range(6):  # spread over several scrapes: each one is an increase
        peers_spans()
        agent_spans()
        time.sleep(1.0)
    for _ in range(3):
        for provider, model, score in JUDGED:
            record_evaluation("helpfulness", score, provider=provider, model=model)
        for name, score in SAFETY_RESULTS:
            record_evaluation(name, score, provider="openai", model="gpt-4o")
        client.chat.completions.create(model="acme-mystery-1", messages=PROMPT)
        try:
            client.chat.completions.create(
                model="gpt-4o", messages=PROMPT, extra_headers={"x-fake-scenario": "content_filter"}
            )
        except openai.BadRequestError:
            pass
        else:
            raise AssertionError("the fake provider did not refuse the call with its content filter")
        time.sleep(1.0)  # spread over several scrapes
    for _ in range(RATE_LIMITED_CALLS):
        try:
            client.chat.completions.create(
                model=RATE_LIMITED_MODEL, messages=PROMPT, extra_headers={"x-fake-scenario": "rate_limit"}
            )
        except openai.RateLimitError:
            pass
        else:
            raise AssertionError("the fake provider did not rate-limit the call")
        time.sleep(0.5)  # spread over several scrapes: each one is an increase of the error counter


if __name__ == "__main__":
    main()
