"""LLM-as-judge: score a sample of responses on a rubric with a judge model, record the score.

The judge is asked for structured output (`response_format` json_schema, `{"score": n}`), and
its reply is parsed robustly: JSON with a `score`, else a number in the text ("8/10",
"score: 7.5", or the only number in the reply). A reply without a score, a failed judge call or a
score outside 0-10 is counted in `Judge.stats` and skipped: the judge never raises into the
application. Scores go through `record_evaluation` (event `gen_ai.evaluation.result`), from which
the processor derives `llm_quality_score{service,provider,model,evaluation}`.

Privacy: the question and answer are sent to the judge model (that is its job) but are never
logged; neither is the judge's reply.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from genai_otel.instrumentation.evaluation import SCORE_MAX, SCORE_MIN, record_evaluation

logger = logging.getLogger(__name__)

SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": SCORE_MIN, "maximum": SCORE_MAX}},
    "required": ["score"],
    "additionalProperties": False,
}
_NUMBER = r"(\d+(?:\.\d+)?)"
_OUT_OF_TEN = re.compile(_NUMBER + r"\s*/\s*10\b")
_LABELLED = re.compile(r"\bscore\b\W{0,4}" + _NUMBER, re.IGNORECASE)
_ANY_NUMBER = re.compile(r"(?<![\w.-])" + _NUMBER + r"(?!\w|\.\d)")
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Rubric:
    """`name` becomes the evaluation name (the metric's `evaluation` label); `criteria` the prompt."""

    name: str
    criteria: str
    pass_score: float = 7.0  # label "pass" at or above, "fail" below


@dataclass
class JudgeStats:
    """What happened to every `score()` call: none is silent."""

    not_sampled: int = 0
    recorded: int = 0
    unparseable: int = 0
    failed: int = 0  # the judge call raised (network, provider error)


def _in_range(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if SCORE_MIN <= number <= SCORE_MAX else None


def parse_score(reply: str | None) -> float | None:
    """The 0-10 score in a judge's reply, or None when there is none (never raises)."""
    if not reply:
        return None
    match = _JSON_OBJECT.search(reply)
    if match:
        try:
            parsed = json.loads(match.group(0))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "score" in parsed:
            return _in_range(parsed["score"])
    for pattern in (_OUT_OF_TEN, _LABELLED):
        found = pattern.search(reply)
        if found:
            return _in_range(found.group(1))
    numbers = {float(n) for n in _ANY_NUMBER.findall(reply)}
    if len(numbers) == 1:
        return _in_range(numbers.pop())
    return None


@dataclass
class Judge:
    """Scores `sample_rate` of the answers it is given with `model`, through an `openai.OpenAI` client."""

    client: Any
    model: str
    rubric: Rubric
    sample_rate: float = 1.0
    seed: int | None = None
    tracer_provider: trace.TracerProvider | None = None
    stats: JudgeStats = field(default_factory=JudgeStats)

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"Judge sample_rate must be within 0-1, got {self.sample_rate!r}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def _sampled(self) -> bool:
        with self._lock:
            return self._rng.random() < self.sample_rate

    def _count(self, outcome: str) -> None:
        with self._lock:
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    def _messages(self, question: str, answer: str) -> list[dict[str, str]]:
        system = (
            "You are a strict evaluator. Score the answer to the question from 0 (useless) to 10 "
            f"(perfect) on this rubric: {self.rubric.criteria}\n"
            'Reply with JSON only: {"score": <number 0-10>}.'
        )
        user = f"Question:\n{question}\n\nAnswer:\n{answer}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _ask(self, question: str, answer: str) -> str | None:
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=self._messages(question, answer),
            temperature=0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "judgement", "schema": SCORE_SCHEMA, "strict": True},
            },
        )
        content = completion.choices[0].message.content
        return content if isinstance(content, str) else None

    def score(
        self,
        question: str,
        answer: str,
        *,
        provider: str,
        model: str,
        response_id: str | None = None,
    ) -> float | None:
        """Judges one answer (if sampled) and records the score; returns it, or None if none was recorded."""
        if not self._sampled():
            self._count("not_sampled")
            return None
        try:
            reply = self._ask(question, answer)
        except Exception as error:  # the judge must never break the application
            self._count("failed")
            logger.debug("judge call to %s failed: %s", self.model, type(error).__name__)
            return None
        value = parse_score(reply)
        if value is None:
            self._count("unparseable")
            logger.debug("judge %s gave no 0-10 score; skipped", self.model)
            return None
        try:
            record_evaluation(
                self.rubric.name,
                value,
                label="pass" if value >= self.rubric.pass_score else "fail",
                response_id=response_id,
                provider=provider,
                model=model,
                tracer_provider=self.tracer_provider,
            )
        except Exception as error:  # telemetry never changes behaviour
            self._count("failed")
            logger.debug("recording the judge score failed: %s", type(error).__name__)
            return None
        self._count("recorded")
        return value
