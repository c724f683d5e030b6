"""A small LLM application for the end-to-end tests, run as
`opentelemetry-instrument python tests/e2e/traffic_app.py OUTPUT.json` with OTEL_* and the SDKs'
own *_BASE_URL / *_API_KEY environment variables: nothing in it knows about telemetry except
the application span it opens around each request, as any traced application does.

Writes one JSON object per request to OUTPUT.json: name, trace id, model and whether it failed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anthropic
import openai
from opentelemetry import trace

tracer = trace.get_tracer("e2e.traffic_app")
PROMPT: Any = [{"role": "user", "content": "Give me three facts about otters."}]
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}


def main(output: str) -> None:
    oai = openai.OpenAI(max_retries=0)
    claude = anthropic.Anthropic(max_retries=0)
    requests: list[tuple[str, str, Any]] = []

    def chat(model: str, **extra: Any) -> Any:
        return lambda: oai.chat.completions.create(model=model, messages=PROMPT, **extra)

    def stream(model: str) -> Any:
        def run() -> None:
            chunks = oai.chat.completions.create(
                model=model, messages=PROMPT, stream=True, stream_options={"include_usage": True}
            )
            for _ in chunks:
                pass

        return run

    def tool_loop() -> None:
        first = oai.chat.completions.create(model="gpt-4o", messages=PROMPT, tools=[TOOL])
        messages = [*PROMPT, first.choices[0].message.model_dump(exclude_none=True)]
        for call in first.choices[0].message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "shipped"})
        oai.chat.completions.create(model="gpt-4o", messages=messages, tools=[TOOL], tool_choice="none")

    def message(model: str, **extra: Any) -> Any:
        return lambda: claude.messages.create(model=model, max_tokens=200, messages=PROMPT, **extra)

    for i in range(3):
        requests.append(
            (f"gpt-4o-{i}", "gpt-4o", chat("gpt-4o", extra_headers={"x-fake-cache-read-tokens": "8"}))
        )
    requests.append(("gpt-4o-stream", "gpt-4o", stream("gpt-4o")))
    requests.append(("gpt-4o-tools", "gpt-4o", tool_loop))
    for i in range(5):
        requests.append((f"mini-{i}", "gpt-4o-mini", chat("gpt-4o-mini")))
    requests.append(("mini-stream", "gpt-4o-mini", stream("gpt-4o-mini")))
    requests.append(("claude-0", "claude-sonnet-4-5", message("claude-sonnet-4-5")))
    for scenario in ("rate_limit", "server_error", "content_filter"):
        headers = {"x-fake-scenario": scenario}
        requests.append((f"error-{scenario}", "gpt-4o-mini", chat("gpt-4o-mini", extra_headers=headers)))
    headers = {"x-fake-scenario": "overloaded"}
    requests.append(
        ("error-overloaded", "claude-sonnet-4-5", message("claude-sonnet-4-5", extra_headers=headers))
    )

    records = []
    for name, model, call in requests:
        with tracer.start_as_current_span(f"e2e {name}") as span:
            failed = False
            try:
                call()
            except (openai.OpenAIError, anthropic.AnthropicError):
                failed = True
            trace_id = format(span.get_span_context().trace_id, "032x")
        records.append({"name": name, "model": model, "trace_id": trace_id, "failed": failed})
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(records, handle)


if __name__ == "__main__":
    main(sys.argv[1])
