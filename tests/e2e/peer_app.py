"""The held-out application of the peer tests (test_peers.py): plain SDK code, no telemetry of its own.

It makes the same calls whatever instruments it: OpenAI and Anthropic, plain and streamed, with
cache tokens, and four that fail. It reaches the fake provider through OPENAI_BASE_URL and
ANTHROPIC_BASE_URL and prints one line per call (the name of the call and, for a failure, the
exception's class), which the test checks, so a call that silently did something else is noticed.

`python peer_app.py --openlit` first initialises OpenLIT in code, as OpenLIT's users do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
PROMPT = [{"role": "user", "content": "Name three colours."}]
CACHED = {"x-fake-cache-read-tokens": "64", "x-fake-cache-write-tokens": "32"}


def calls() -> list[tuple[str, Callable[[], object]]]:
    import anthropic
    import openai

    oa = openai.OpenAI(max_retries=0)
    an = anthropic.Anthropic(max_retries=0)

    def openai_stream() -> None:
        stream = oa.chat.completions.create(
            model=OPENAI_MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True}
        )
        for _ in stream:
            pass

    def anthropic_stream() -> None:
        stream = an.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=64, messages=PROMPT, stream=True, extra_headers=CACHED
        )
        for _ in stream:
            pass

    def failing(client: Callable[..., object], scenario: str, **options: object) -> Callable[[], object]:
        return lambda: client(extra_headers={"x-fake-scenario": scenario}, **options)

    openai_chat = oa.chat.completions.create
    anthropic_chat = an.messages.create
    return [
        ("openai chat", lambda: openai_chat(model=OPENAI_MODEL, messages=PROMPT)),
        (
            "openai chat cached",
            lambda: openai_chat(model=OPENAI_MODEL, messages=PROMPT, extra_headers=CACHED),
        ),
        ("openai stream", openai_stream),
        ("openai rate limit", failing(openai_chat, "rate_limit", model=OPENAI_MODEL, messages=PROMPT)),
        (
            "openai context window",
            failing(openai_chat, "context_length", model=OPENAI_MODEL, messages=PROMPT),
        ),
        ("anthropic chat", lambda: anthropic_chat(model=ANTHROPIC_MODEL, max_tokens=64, messages=PROMPT)),
        (
            "anthropic chat cached",
            lambda: anthropic_chat(
                model=ANTHROPIC_MODEL, max_tokens=64, messages=PROMPT, extra_headers=CACHED
            ),
        ),
        ("anthropic stream cached", anthropic_stream),
        (
            "anthropic overloaded",
            failing(anthropic_chat, "overloaded", model=ANTHROPIC_MODEL, max_tokens=64, messages=PROMPT),
        ),
        (
            "anthropic timeout",
            failing(
                anthropic_chat, "hang", model=ANTHROPIC_MODEL, max_tokens=64, messages=PROMPT, timeout=0.5
            ),
        ),
    ]


def main() -> None:
    if "--openlit" in sys.argv:
        import openlit

        openlit.init(application_name="peer-app", disable_metrics=True)
    for name, call in calls():
        try:
            call()
        except Exception as exc:  # the app expects its failures and goes on
            print(f"{name}: {type(exc).__name__}", flush=True)
        else:
            print(f"{name}: ok", flush=True)


if __name__ == "__main__":
    main()
