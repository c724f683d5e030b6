"""Safety evaluations: whether one result of a `gen_ai.evaluation.result` event flags the response.

Which evaluations are safety evaluations, and each one's threshold, is configuration
(`evaluations.safety_thresholds`; by default `hallucination` and `toxicity` at 0.5). Their
scale runs the other way from quality scores: 1 (or true) means the response hallucinated or is
toxic. The rule, in order:

- `gen_ai.evaluation.score.value` is a boolean: true flags the response, false does not;
- it is a number from 0 to 10 (the evaluation contract's range): flagged when it is at least the
  threshold, so 0/1 results and [0, 1] probabilities work with the default 0.5, and a 0-10
  scale with a threshold such as 5;
- there is no score value and `gen_ai.evaluation.score.label` is `true`/`1` or `false`/`0`
  (any case): that decides;
- anything else (a number outside 0-10, NaN, a string score, no score and another label) is a
  bad score, counted as one by the caller like any other unreadable evaluation.
"""

from __future__ import annotations

from typing import Final

from .normalise import finite_number

SCORE_MIN: Final = 0.0
SCORE_MAX: Final = 10.0
FLAG_LABELS: Final = {"true": True, "1": True, "false": False, "0": False}


def flagged(value: object, label: object, threshold: float) -> bool | None:
    """Whether a safety evaluation with score `value` and label `label` flags the response;
    None when the result says neither."""
    if type(value) is bool:
        return value
    score = finite_number(value)
    if score is not None:
        return score >= threshold if SCORE_MIN <= score <= SCORE_MAX else None
    if value is None and isinstance(label, str):
        return FLAG_LABELS.get(label.strip().lower())
    return None
