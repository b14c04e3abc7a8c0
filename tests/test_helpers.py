"""The regeneration tolerance accepts float rounding in the last printed digit and nothing else."""

from __future__ import annotations

from tests.helpers import same_up_to_rounding


def test_rounding_in_the_last_digit_passes():
    assert same_up_to_rounding("gru,3.52618,0.25\n", "gru,3.52617,0.25\n") == []
    assert same_up_to_rounding("r = 1.000000e-03", "r = 1.000001e-03") == []
    assert same_up_to_rounding("| 12 | 0.5 |", "| 12 | 0.5 |") == []


def test_real_differences_fail():
    assert same_up_to_rounding("gru,3.52618", "gru,3.52718") == ["3.52618 became 3.52718"]
    assert same_up_to_rounding("8 of 32 runs", "9 of 32 runs") == ["8 became 9"]
    assert same_up_to_rounding("lstm 1.45", "gru 1.45") != []
    assert same_up_to_rounding("a 1\nb 2\n", "a 1\nb 2\nc 3\n") != []
