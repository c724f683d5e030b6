"""Judge calibration: agreement and Cohen's kappa between judge scores and human labels.

Input rows pair a judge's verdict with a human's for the same response, either as 0-10 scores
(`id,judge_score,human_score`) or as categorical labels (`id,judge_label,human_label`).

* Scores are binned into labels (edges `bins`, default 4 and 7: low [0,4), medium [4,7),
  high [7,10]) for the agreement rate and the unweighted kappa, and rounded half up to whole
  points for the quadratic-weighted kappa on the 0-10 scale (11 categories).
* Labels give the agreement rate and the unweighted kappa.

Every figure is an exact `Fraction`; a kappa is None when chance agreement is already total.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

TARGET_KAPPA = Fraction(85, 100)  # DESIGN: judge/human agreement target, kappa > 0.85
DEFAULT_BINS: tuple[float, ...] = (4.0, 7.0)
BIN_NAMES = {2: ("low", "medium", "high"), 1: ("fail", "pass")}
SCALE_POINTS = 11  # 0..10


@dataclass(frozen=True)
class BadRow:
    line: int  # line number in the file, header = 1
    reason: str


@dataclass
class Pairs:
    ids: list[str] = field(default_factory=list)
    judge: list[Hashable] = field(default_factory=list)
    human: list[Hashable] = field(default_factory=list)
    numeric: bool = True
    bad_rows: list[BadRow] = field(default_factory=list)


def agreement(judge: Sequence[Hashable], human: Sequence[Hashable]) -> Fraction:
    if len(judge) != len(human) or not judge:
        raise ValueError("agreement needs two equally long, non-empty sequences")
    return Fraction(sum(a == b for a, b in zip(judge, human, strict=True)), len(judge))


def cohen_kappa(judge: Sequence[Hashable], human: Sequence[Hashable]) -> Fraction | None:
    """Unweighted Cohen's kappa: (po - pe) / (1 - pe); None when pe == 1."""
    observed = agreement(judge, human)
    n = len(judge)
    judge_counts, human_counts = Counter(judge), Counter(human)
    chance = Fraction(sum(judge_counts[c] * human_counts[c] for c in judge_counts), n * n)
    if chance == 1:
        return None
    return (observed - chance) / (1 - chance)


def quadratic_weighted_kappa(
    judge: Sequence[int], human: Sequence[int], points: int = SCALE_POINTS
) -> Fraction | None:
    """1 - sum(w * observed) / sum(w * expected), w = (i - j)^2, categories 0..points-1."""
    if len(judge) != len(human) or not judge:
        raise ValueError("kappa needs two equally long, non-empty sequences")
    n = len(judge)
    observed = sum((a - b) ** 2 for a, b in zip(judge, human, strict=True))
    judge_counts, human_counts = Counter(judge), Counter(human)
    expected = Fraction(
        sum(judge_counts[i] * human_counts[j] * (i - j) ** 2 for i in range(points) for j in range(points)),
        n,
    )
    if expected == 0:
        return None
    return 1 - observed / expected


def to_bin(score: float, bins: Sequence[float] = DEFAULT_BINS) -> str:
    names = BIN_NAMES.get(len(bins)) or tuple(f"bin{i}" for i in range(len(bins) + 1))
    return names[sum(score >= edge for edge in bins)]


def round_half_up(score: float) -> int:
    return math.floor(score + 0.5)


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or not 0.0 <= value <= 10.0:
        raise ValueError(f"{text!r} is not a score within 0-10")
    return value


def read_pairs(path: Path) -> Pairs:
    """Reads the CSV; rows that cannot be used are kept in `bad_rows` with their line numbers."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if {"judge_score", "human_score"} <= columns:
            judge_key, human_key, numeric = "judge_score", "human_score", True
        elif {"judge_label", "human_label"} <= columns:
            judge_key, human_key, numeric = "judge_label", "human_label", False
        else:
            raise ValueError(
                "need columns id,judge_score,human_score or id,judge_label,human_label; "
                f"found {','.join(reader.fieldnames or ()) or 'none'}"
            )
        pairs = Pairs(numeric=numeric)
        for row in reader:
            line = reader.line_num
            if None in row or any(row.get(key) is None for key in (judge_key, human_key)):
                pairs.bad_rows.append(BadRow(line, "wrong number of columns"))
                continue
            judged, labelled = (row[judge_key] or "").strip(), (row[human_key] or "").strip()
            if not judged or not labelled:
                pairs.bad_rows.append(BadRow(line, "missing judge or human value"))
                continue
            if numeric:
                try:
                    judge_value: Hashable = _score(judged)
                    human_value: Hashable = _score(labelled)
                except ValueError as error:
                    pairs.bad_rows.append(BadRow(line, str(error)))
                    continue
            else:
                judge_value, human_value = judged, labelled
            pairs.ids.append((row.get("id") or "").strip() or f"line {line}")
            pairs.judge.append(judge_value)
            pairs.human.append(human_value)
    return pairs


@dataclass(frozen=True)
class Calibration:
    samples: int
    agreement: Fraction
    kappa: Fraction | None  # unweighted, on labels (binned scores)
    weighted_kappa: Fraction | None  # quadratic, on the 0-10 scale; None for label input
    bad_rows: tuple[BadRow, ...]
    target: Fraction = TARGET_KAPPA

    @property
    def headline_kappa(self) -> Fraction | None:
        """The kappa the target applies to: weighted for scores, unweighted for labels."""
        return self.weighted_kappa if self.weighted_kappa is not None or self.kappa is None else self.kappa

    @property
    def passed(self) -> bool:
        kappa = self.headline_kappa
        return kappa is not None and kappa > self.target


def calibrate(pairs: Pairs, bins: Sequence[float] = DEFAULT_BINS) -> Calibration:
    if not pairs.judge:
        raise ValueError("no usable rows")
    if pairs.numeric:
        judge_scores = [float(v) for v in pairs.judge]  # type: ignore[arg-type]
        human_scores = [float(v) for v in pairs.human]  # type: ignore[arg-type]
        judge_labels: list[Hashable] = [to_bin(s, bins) for s in judge_scores]
        human_labels: list[Hashable] = [to_bin(s, bins) for s in human_scores]
        weighted = quadratic_weighted_kappa(
            [round_half_up(s) for s in judge_scores], [round_half_up(s) for s in human_scores]
        )
    else:
        judge_labels, human_labels, weighted = pairs.judge, pairs.human, None
    return Calibration(
        samples=len(judge_labels),
        agreement=agreement(judge_labels, human_labels),
        kappa=cohen_kappa(judge_labels, human_labels),
        weighted_kappa=weighted,
        bad_rows=tuple(pairs.bad_rows),
    )
