"""Demo traffic: an ordinary LLM application, instrumented with environment variables only.

    opentelemetry-instrument python -m genai_otel.demo.app [--duration SECONDS | --forever]

It calls the real `openai` and `anthropic` SDKs; the SDKs read OPENAI_BASE_URL / ANTHROPIC_BASE_URL
(pointing at `genai-otel fake-provider`) and OPENAI_API_KEY / ANTHROPIC_API_KEY. The mix covers
several models, streams, a tool-calling loop, reasoning and cached tokens, provider errors, slow
calls, several users and features, LLM-as-judge scores, a self-hosted model with no public price,
and a batch job that overruns the daily cost budget. Each
interaction is one trace: an application span with the GenAI calls as its children.

Environment: DEMO_SEED (default 7), DEMO_RATE (interactions per second, default 4),
DEMO_BUDGET_BREACH_CALLS (default 6 calls of about $19 each; 0 turns the breach off),
DEMO_SLOW_MS (latency of the slow calls, default 6000).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import anthropic
import openai
from opentelemetry import trace

from genai_otel.instrumentation.attribution import attribution
from genai_otel.instrumentation.evaluation import record_evaluation

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("genai_otel.demo")

USERS = ("u-alice", "u-bob", "u-carol", "u-dave", "u-erin")
# The SDKs type their request parameters as TypedDicts; plain literals are what applications write.
PROMPT: Any = [{"role": "user", "content": "Summarise our refund policy in two sentences."}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
OPENAI_ERRORS = ("rate_limit", "context_length", "content_filter", "server_error", "auth")
ANTHROPIC_ERRORS = ("rate_limit", "overloaded", "server_error", "context_length")


@dataclass
class Clients:
    openai: openai.OpenAI
    anthropic: anthropic.Anthropic


def _fake(**headers: object) -> dict[str, str]:
    return {f"x-fake-{key.replace('_', '-')}": str(value) for key, value in headers.items()}


def chat(clients: Clients, rng: random.Random) -> None:
    model = rng.choice(("gpt-4o-mini", "gpt-4o-mini", "gpt-4o"))
    clients.openai.chat.completions.create(
        model=model,
        messages=PROMPT,
        extra_headers=_fake(latency_ms=rng.randint(50, 400)),
    )


def stream(clients: Clients, rng: random.Random) -> None:
    response = clients.openai.chat.completions.create(
        model=rng.choice(("gpt-4o", "gpt-4o-mini")),
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=_fake(ttfc_ms=rng.randint(80, 600), cache_read_tokens=rng.choice((0, 0, 256))),
    )
    for _ in response:
        pass


def tool_loop(clients: Clients, rng: random.Random) -> None:
    """Two calls in one trace: the model asks for a tool, the app runs it and asks again."""
    messages: list[Any] = [{"role": "user", "content": "Do I need an umbrella in Paris?"}]
    first = clients.openai.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for tool_call in call or []:
        with tracer.start_as_current_span("execute_tool get_weather"):
            time.sleep(rng.uniform(0.01, 0.05))
        messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": "light rain, 14 C"})
    clients.openai.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL], tool_choice="none"
    )


def reasoning(clients: Clients, rng: random.Random) -> None:
    clients.openai.chat.completions.create(
        model="o3-mini",
        messages=PROMPT,
        extra_headers=_fake(reasoning_tokens=rng.choice((128, 512, 2048))),
    )


def claude(clients: Clients, rng: random.Random) -> None:
    clients.anthropic.messages.create(
        model=rng.choice(("claude-sonnet-4-5", "claude-haiku-4-5")),
        max_tokens=256,
        messages=PROMPT,
        extra_headers=_fake(cache_read_tokens=rng.choice((0, 1024, 4096)), latency_ms=rng.randint(50, 300)),
    )


def claude_stream(clients: Clients, rng: random.Random) -> None:
    with clients.anthropic.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=PROMPT,
        extra_headers=_fake(ttfc_ms=rng.randint(100, 700)),
    ) as events:
        for _ in events:
            pass


def openai_error(clients: Clients, rng: random.Random) -> None:
    clients.openai.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,
        extra_headers=_fake(scenario=rng.choice(OPENAI_ERRORS)),
    )


def anthropic_error(clients: Clients, rng: random.Random) -> None:
    clients.anthropic.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=256,
        messages=PROMPT,
        extra_headers=_fake(scenario=rng.choice(ANTHROPIC_ERRORS)),
    )


def stream_break(clients: Clients, rng: random.Random) -> None:
    response = clients.openai.chat.completions.create(
        model="gpt-4o",
        messages=PROMPT,
        stream=True,
        extra_headers=_fake(scenario="stream_break"),
    )
    for _ in response:
        pass


def slow(clients: Clients, rng: random.Random) -> None:
    clients.openai.chat.completions.create(
        model="gpt-4o",
        messages=PROMPT,
        extra_headers=_fake(latency_ms=int(os.environ.get("DEMO_SLOW_MS", "6000"))),
    )


# Typical judge scores per model (mean, spread): the fake provider cannot judge, so the demo's
# judge makes a real judge call (its cost shows up under the "quality-judge" feature) and draws
# the score from these; a real application parses the judge model's answer instead.
JUDGE_SCORES = {"gpt-4o": (8.4, 0.8), "gpt-4o-mini": (7.2, 1.2), "claude-sonnet-4-5": (8.8, 0.6)}


def judged_answer(clients: Clients, rng: random.Random) -> None:
    """An answer, then an LLM-as-judge call scoring it; the score goes on the trace."""
    model = rng.choice(tuple(JUDGE_SCORES))
    if model.startswith("claude"):
        answer_id = clients.anthropic.messages.create(model=model, max_tokens=256, messages=PROMPT).id
        provider = "anthropic"
    else:
        answer_id = clients.openai.chat.completions.create(model=model, messages=PROMPT).id
        provider = "openai"
    with attribution(feature="quality-judge"):
        clients.openai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Score the answer from 0 to 10 for helpfulness."}],
        )
    mean, spread = JUDGE_SCORES[model]
    score = min(10.0, max(0.0, round(rng.gauss(mean, spread), 1)))
    record_evaluation("helpfulness", score, response_id=answer_id, provider=provider, model=model)


def self_hosted(clients: Clients, rng: random.Random) -> None:
    """A fine-tuned model on the team's own servers: no public price, so it is reported unpriced
    (add it to the processor's price overrides to price it)."""
    clients.openai.chat.completions.create(model="acme-support-llama-8b", messages=PROMPT)


def budget_burner(clients: Clients, rng: random.Random) -> None:
    """A nightly export job writing a million-token prompt cache: about $19 per call on Opus."""
    clients.anthropic.messages.create(
        model="claude-opus-4-1",
        max_tokens=256,
        messages=PROMPT,
        extra_headers=_fake(cache_write_tokens=1_000_000),
    )


Interaction = Callable[[Clients, random.Random], None]
# (interaction, feature, weight)
MIX: tuple[tuple[Interaction, str, int], ...] = (
    (chat, "support-chat", 30),
    (stream, "support-chat", 15),
    (tool_loop, "trip-planner", 10),
    (reasoning, "code-review", 8),
    (claude, "search-summary", 20),
    (claude_stream, "search-summary", 8),
    (openai_error, "support-chat", 4),
    (anthropic_error, "search-summary", 3),
    (stream_break, "support-chat", 1),
    (slow, "code-review", 1),
    (judged_answer, "support-chat", 6),
    (self_hosted, "support-chat", 2),
)


def run_one(clients: Clients, rng: random.Random, interaction: Interaction, feature: str, user: str) -> str:
    """One trace; returns its outcome ("ok" or the exception's class name). Errors are expected."""
    with (
        tracer.start_as_current_span(
            f"demo {feature}", attributes={"demo.interaction": interaction.__name__}
        ),
        attribution(user_id=user, feature=feature),
    ):
        try:
            interaction(clients, rng)
        except (openai.OpenAIError, anthropic.AnthropicError) as error:
            return type(error).__name__
    return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genai_otel.demo.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    parser.add_argument("--forever", action="store_true", help="run until SIGINT/SIGTERM")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo %(message)s")
    for client_logger in ("httpx", "httpx2"):  # one line per request drowns the summary
        logging.getLogger(client_logger).setLevel(logging.WARNING)
    # the fake provider serves any model name; the SDK's model end-of-life notices are noise here
    warnings.filterwarnings("ignore", message="The model .* is deprecated", category=DeprecationWarning)

    stop = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    rng = random.Random(int(os.environ.get("DEMO_SEED", "7")))
    rate = float(os.environ.get("DEMO_RATE", "4"))
    breach_calls = int(os.environ.get("DEMO_BUDGET_BREACH_CALLS", "6"))
    clients = Clients(
        openai.OpenAI(max_retries=0, timeout=30), anthropic.Anthropic(max_retries=0, timeout=30)
    )
    interactions, features, weights = zip(*MIX, strict=True)
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    deadline = None if args.forever else started + args.duration
    # the budget breach is spread over the first half of the run (or the first minute, forever)
    breach_window = 60.0 if deadline is None else args.duration / 2
    breach_done = 0
    while not stop and (deadline is None or time.monotonic() < deadline):
        elapsed = time.monotonic() - started
        if breach_done < breach_calls and elapsed >= breach_done * breach_window / max(breach_calls, 1):
            outcomes[run_one(clients, rng, budget_burner, "bulk-export", "u-batch-job")] += 1
            breach_done += 1
        else:
            (index,) = rng.choices(range(len(MIX)), weights=weights)
            outcomes[run_one(clients, rng, interactions[index], features[index], rng.choice(USERS))] += 1
        total = sum(outcomes.values())
        if total % 50 == 0:
            logger.info("%d interactions so far: %s", total, dict(outcomes))
        time.sleep(max(0.0, rng.expovariate(rate)))
    logger.info("done: %d interactions: %s", sum(outcomes.values()), dict(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
