"""Calibration: exact kappas for small hand-computed tables, CSV reading and the command."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from genai_otel.cli import main as cli_main
from genai_otel.quality.calibration import (
    BadRow,
    agreement,
    calibrate,
    cohen_kappa,
    quadratic_weighted_kappa,
    read_pairs,
    round_half_up,
    to_bin,
)


def test_unweighted_kappa_of_a_two_by_two_table() -> None:
    # judge yes/human yes 4, yes/no 2, no/yes 1, no/no 3: po = 7/10,
    # pe = (6*5 + 4*5) / 100 = 1/2, kappa = (7/10 - 1/2) / (1 - 1/2) = 2/5
    judge = ["y"] * 4 + ["y"] * 2 + ["n"] * 1 + ["n"] * 3
    human = ["y"] * 4 + ["n"] * 2 + ["y"] * 1 + ["n"] * 3
    assert agreement(judge, human) == Fraction(7, 10)
    assert cohen_kappa(judge, human) == Fraction(2, 5)


def test_unweighted_kappa_of_a_three_label_table() -> None:
    # po = 2/3; judge low/medium/high 1/1/1, human low/high 1/2: pe = (1 + 0 + 2) / 9 = 1/3,
    # kappa = (2/3 - 1/3) / (2/3) = 1/2
    assert cohen_kappa(["low", "medium", "high"], ["low", "high", "high"]) == Fraction(1, 2)


def test_kappa_is_one_for_perfect_agreement_and_undefined_when_chance_is_total() -> None:
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == 1
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None


def test_kappa_is_negative_for_systematic_disagreement() -> None:
    # po = 0, pe = (1*1 + 1*1) / 4 = 1/2: kappa = -1
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1


def test_quadratic_weighted_kappa_by_hand() -> None:
    # observed sum of (i-j)^2 = 0 + 25 + 0 = 25;
    # expected = sum over judge i, human j of n_i * m_j * (i-j)^2 / n
    #          = (0*0 + 2*100 + 1*25 + 2*25 + 1*100 + 0) / 3 = 375 / 3 = 125; kappa = 1 - 25/125 = 4/5
    assert quadratic_weighted_kappa([0, 5, 10], [0, 10, 10]) == Fraction(4, 5)


def test_quadratic_weighting_penalises_distance_unlike_unweighted() -> None:
    # off by one everywhere: no exact agreement (po = pe = 0, unweighted kappa 0), weighted stays high
    judge, human = [2, 4, 6, 8], [3, 5, 7, 9]
    assert cohen_kappa(judge, human) == 0
    # observed 4 * 1 = 4; expected = (84 + 36 + 20 + 36) / 4 = 44 (rows i = 2, 4, 6, 8 against
    # every human score); kappa = 1 - 4/44 = 10/11
    assert quadratic_weighted_kappa(judge, human) == Fraction(10, 11)


def test_binning_and_rounding() -> None:
    assert [to_bin(s) for s in (0, 3.99, 4, 6.9, 7, 10)] == ["low", "low", "medium", "medium", "high", "high"]
    assert [to_bin(s, (7.0,)) for s in (6.9, 7)] == ["fail", "pass"]
    assert [round_half_up(s) for s in (0.4, 0.5, 2.5, 9.5)] == [0, 1, 3, 10]


CSV = """id,judge_score,human_score
r1,0,0
r2,5,10
r3,10,10
r4,abc,3
r5,11,2
r6,,4
r7,1
"""


def test_read_pairs_keeps_bad_rows_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(CSV, encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.ids == ["r1", "r2", "r3"]
    assert pairs.bad_rows == [
        BadRow(5, "'abc' is not a score within 0-10"),
        BadRow(6, "'11' is not a score within 0-10"),
        BadRow(7, "missing judge or human value"),
        BadRow(8, "wrong number of columns"),
    ]
    result = calibrate(pairs)
    assert (result.samples, result.agreement) == (3, Fraction(2, 3))
    assert (result.kappa, result.weighted_kappa) == (Fraction(1, 2), Fraction(4, 5))
    assert not result.passed


def test_calibrate_command_reports_kappas_bad_rows_and_fails_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(CSV, encoding="utf-8")
    assert cli_main(["calibrate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "samples: 3",
        "bad rows: 4 (skipped)",
        "  line 5: 'abc' is not a score within 0-10",
        "  line 6: '11' is not a score within 0-10",
        "  line 7: missing judge or human value",
        "  line 8: wrong number of columns",
        "agreement: 66.7% (scores binned at 4, 7)",
        "cohen kappa (unweighted) (scores binned at 4, 7): 0.500",
        "cohen kappa (quadratic-weighted, 0-10 scale): 0.800",
        "target kappa > 0.85: FAIL",
    ]


def test_calibrate_command_passes_on_labels_that_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "labels.csv"
    rows = ["id,judge_label,human_label"] + [
        f"{i},{'good' if i % 3 else 'bad'},{'good' if i % 3 else 'bad'}" for i in range(9)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert cli_main(["calibrate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "samples: 9",
        "agreement: 100.0%",
        "cohen kappa (unweighted): 1.000",
        "target kappa > 0.85: PASS",
    ]


def test_calibrate_command_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["calibrate", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err == f"genai-otel calibrate: {tmp_path / 'missing.csv'}: no such file\n"
    path = tmp_path / "wrong.csv"
    path.write_text("id,score\n1,2\n", encoding="utf-8")
    assert cli_main(["calibrate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"genai-otel calibrate: {path}: need columns id,judge_score,human_score or "
        "id,judge_label,human_label; found id,score\n"
    )
    path.write_text("id,judge_score,human_score\n1,x,2\n", encoding="utf-8")
    assert cli_main(["calibrate", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"genai-otel calibrate: {path}: no usable rows\n  line 2: 'x' is not a score within 0-10\n"
    )
