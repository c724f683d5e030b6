"""What the demo does not send, for the live dashboard test: judge scores and unpriced calls.

Run as `opentelemetry-instrument python tests/e2e/dashboard_extras_app.py` with the demo's
environment. Records LLM-as-judge evaluations of the demo's models (the quality dashboard reads
them) and calls a model no price table knows (the cost dashboard's unpriced panel).
"""

from __future__ import annotations

from typing import Any

import openai
from genai_otel.instrumentation.evaluation import record_evaluation

PROMPT: Any = [{"role": "user", "content": "Rate this answer."}]
JUDGED = (("openai", "gpt-4o-mini", 8.5), ("openai", "gpt-4o", 6.0), ("anthropic", "claude-sonnet-4-0", 9.0))


def main() -> None:
    client = openai.OpenAI(max_retries=0, timeout=30)
    for _ in range(3):
        for provider, model, score in JUDGED:
            record_evaluation("helpfulness", score, provider=provider, model=model)
        client.chat.completions.create(model="acme-mystery-1", messages=PROMPT)


if __name__ == "__main__":
    main()
