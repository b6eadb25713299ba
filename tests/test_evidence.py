"""The statistics behind every decision, checked against the textbook formulas on fixed inputs."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from curriculum.stats.evidence import (Evidence, decidable, draw_order, first_draw, gate_call, interval, paired_drop,
                                 rotating_sample)


def wilson_by_hand(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("k, n, confidence", [(9, 12, 0.8), (3, 4, 0.9), (0, 6, 0.8), (12, 12, 0.95), (5, 8, 0.8)])
def test_wilson_bounds_match_the_formula(k: int, n: int, confidence: float) -> None:
    z = stats.norm.ppf(confidence)  # one-sided at c: the two-sided interval at 2c - 1
    low, high = interval([1.0] * k + [0.0] * (n - k), True, confidence)
    by_hand = wilson_by_hand(k, n, z)
    assert low == pytest.approx(max(0.0, by_hand[0]), abs=1e-9) and high == pytest.approx(min(1.0, by_hand[1]), abs=1e-9)


def test_t_bounds_match_the_formula() -> None:
    scores = [0.62, 0.41, 0.55, 0.70, 0.48, 0.66]
    n = len(scores)
    mean = sum(scores) / n
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    half = stats.t.ppf(0.8, n - 1) * sd / math.sqrt(n)
    low, high = interval(scores, False, 0.8)
    assert low == pytest.approx(mean - half) and high == pytest.approx(mean + half)


def test_exact_mcnemar_is_the_binomial_tail_of_discordant_pairs() -> None:
    before = Evidence({(0, i): v for i, v in enumerate([1, 1, 1, 1, 1, 1, 0, 1])}, True, 8)
    after = Evidence({(0, i): v for i, v in enumerate([0, 0, 0, 1, 1, 0, 1, 1])}, True, 8)
    drop = paired_drop(before, after)
    lost, gained = 4, 1  # right -> wrong on items 0, 1, 2, 5; wrong -> right on item 6
    tail = sum(math.comb(lost + gained, j) for j in range(lost, lost + gained + 1)) / 2 ** (lost + gained)
    assert drop.test == "mcnemar-exact" and drop.p_value == pytest.approx(tail) and drop.n == 8
    assert drop.before == pytest.approx(7 / 8) and drop.after == pytest.approx(4 / 8)


def test_paired_t_matches_the_formula_and_ignores_unshared_items() -> None:
    was = [0.70, 0.65, 0.72, 0.60, 0.68]
    now = [0.50, 0.66, 0.55, 0.52, 0.61]
    before = Evidence({(0, i): v for i, v in enumerate(was)} | {(0, 99): 0.0}, False, 6)
    after = Evidence({(0, i): v for i, v in enumerate(now)}, False, 6)
    d = [a - b for a, b in zip(was, now)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    t = mean / (sd / math.sqrt(len(d)))
    drop = paired_drop(before, after)
    assert drop.test == "paired-t" and drop.n == 5
    assert drop.p_value == pytest.approx(stats.t.sf(t, len(d) - 1))


def test_identical_items_are_never_a_drop() -> None:
    ev = Evidence({(0, i): v for i, v in enumerate([0.5, 0.6, 0.7])}, False, 3)
    assert paired_drop(ev, ev).p_value == 1.0
    binary = Evidence({(0, i): 1.0 for i in range(5)}, True, 5)
    assert paired_drop(binary, binary).p_value == 1.0


def test_gate_call_pass_fail_inconclusive() -> None:
    def ev(right: int, n: int, pool: int) -> Evidence:
        return Evidence({(0, i): float(i < right) for i in range(n)}, True, pool)

    assert gate_call(ev(6, 6, 12), 0.7, 0.8).verdict == "pass"
    assert gate_call(ev(0, 6, 12), 0.7, 0.8).verdict == "fail"
    assert gate_call(ev(4, 6, 12), 0.7, 0.8).verdict == "inconclusive"
    spent = gate_call(ev(8, 12, 12), 0.7, 0.8)
    assert spent.verdict == "fail" and spent.decided_on_point


def test_draws_and_samples() -> None:
    keys = [(0, line) for line in range(1, 13)]
    order = draw_order("node.a", keys)
    assert sorted(order) == keys and order != keys and order == draw_order("node.a", list(reversed(keys)))
    assert first_draw(12) == 6 and first_draw(6) == 4 and first_draw(3) == 3
    windows = [rotating_sample(keys, 4, stage) for stage in range(3)]
    assert sorted(k for w in windows for k in w) == keys  # three stages cover every item once
    assert decidable(3, 0.75, 0.8) and not decidable(2, 0.75, 0.8)
