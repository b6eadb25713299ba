"""curriculum.stats.power: the detectable effect is statsmodels' paired t power solved exactly, the interval and p are
scipy's, each verdict is reached, and the item share of a seed's variance is what the two-way model says."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from curriculum.stats.power import (
    MATTERS, Advice, Verdict, describe, item_noise, mde, mde_standardized, n_text, paired_power, power_paired,
    seeds_for,
)

statsmodels_power = pytest.importorskip("statsmodels.stats.power")


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 10, 20, 30])
@pytest.mark.parametrize("sd", [0.07, 0.2, 1.0])
def test_the_mde_is_statsmodels_paired_t_solved_for_the_effect(n: int, sd: float) -> None:
    want = statsmodels_power.TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8) * sd
    assert mde(n, sd) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("n", [3, 50, 200, 1000])
def test_the_mde_has_80_percent_power_to_the_last_digit(n: int) -> None:
    # statsmodels' solver stops at an effect-size xtol of 1e-5, loose beside the effect at large n: check ours on
    # its power function instead, and against the normal approximation it tends to
    d = mde_standardized(n)
    assert statsmodels_power.TTestPower().power(effect_size=d, nobs=n, alpha=0.05) == pytest.approx(0.8, abs=1e-9)
    assert power_paired(d, n) == pytest.approx(0.8, abs=1e-12)
    normal = (stats.norm.isf(0.025) + stats.norm.ppf(0.8)) / math.sqrt(n)
    assert d > normal and (n < 1000 or d == pytest.approx(normal, rel=2e-3))


def test_the_interval_and_p_are_scipys_one_sample_t() -> None:
    diffs = [0.031, -0.012, 0.054, 0.008, 0.022]
    got = paired_power(diffs)
    test = stats.ttest_1samp(diffs, 0.0)
    assert got.ci == pytest.approx(tuple(test.confidence_interval(0.95)), rel=1e-12)
    assert got.p == pytest.approx(test.pvalue, rel=1e-12) and got.mean == pytest.approx(np.mean(diffs))
    assert got.sd == pytest.approx(np.std(diffs, ddof=1)) and got.n_seeds == 5
    assert got.mde == pytest.approx(mde(5, float(np.std(diffs, ddof=1))))
    assert paired_power([*diffs, None]).ci == got.ci  # a seed without both arms is left out


def test_each_verdict_is_reached() -> None:
    ahead = paired_power([0.10, 0.12, 0.09, 0.11])
    assert ahead.verdict is Verdict.AHEAD and ahead.advice is Advice.STOP and ahead.ci[0] > 0  # type: ignore[index]
    behind = paired_power([-0.10, -0.12, -0.09, -0.11])
    assert behind.verdict is Verdict.BEHIND and behind.advice is Advice.STOP
    level = paired_power([0.004, -0.006, 0.002, -0.001, 0.003, -0.004, 0.001, 0.0])
    assert level.verdict is Verdict.LEVEL and level.advice is Advice.STOP and level.mde < MATTERS  # type: ignore[operator]
    under = paired_power([0.10, -0.08, 0.02])
    assert under.verdict is Verdict.UNDERPOWERED and under.advice is Advice.ADD_SEEDS and under.mde > MATTERS  # type: ignore[operator]
    assert under.seeds_needed == seeds_for(under.sd, MATTERS) and under.seeds_needed > 3  # type: ignore[arg-type,operator]
    # the same spread is level when the difference that matters is larger than what it can detect
    assert paired_power([0.10, -0.08, 0.02], matters=1.0).verdict is Verdict.LEVEL


@pytest.mark.parametrize("diffs, note", [([], "no seed"), ([0.2], "one seed"), ([0.02, 0.02, 0.02], "no spread"),
                                         ([0.0, 0.0], "no spread"), ([None, 0.1], "one seed"),
                                         ([0.6 - 0.5, 0.7 - 0.6, 0.4 - 0.3], "no spread")])
def test_too_few_seeds_or_no_spread_is_said_not_a_crash(diffs: list[float | None], note: str) -> None:
    got = paired_power(diffs)
    assert got.verdict is Verdict.UNDETERMINED and got.advice is Advice.ADD_SEEDS and got.mde is None
    assert note in got.note and note in describe(got)
    assert mde(1, 0.1) is None and mde(5, 0.0) is None and seeds_for(0.0, 0.05) is None


def test_seeds_for_is_the_first_n_whose_mde_reaches_what_matters() -> None:
    for sd in (0.02, 0.06, 0.15):
        n = seeds_for(sd, 0.05)
        assert n is not None and mde(n, sd) <= 0.05  # type: ignore[operator]
        assert n == 2 or mde(n - 1, sd) > 0.05  # type: ignore[operator]


def test_item_noise_is_the_two_way_residual() -> None:
    d = [[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0], [1.0, -1.0, 0.0, 0.0]]
    n, m = 3, 4
    row = [sum(r) / m for r in d]
    col = [sum(d[i][j] for i in range(n)) / n for j in range(m)]
    grand = sum(row) / n
    by_hand = sum((d[i][j] - row[i] - col[j] + grand) ** 2 for i in range(n) for j in range(m)) / ((n - 1) * (m - 1))
    got = item_noise(d)
    assert got is not None and got.interaction_var == pytest.approx(by_hand) and got.effective_items == pytest.approx(4)
    # two nodes of 1 and 3 items, each half the score: 1 / (1/4 + 3/36) = 3 effective items
    assert item_noise(d, [0.5, 1 / 6, 1 / 6, 1 / 6]).effective_items == pytest.approx(3)  # type: ignore[union-attr]
    assert item_noise(d[:1]) is None and item_noise([[1.0], [0.0]]) is None and item_noise([[1.0, 0.0], [1.0]]) is None


def _seeds(rng: np.random.Generator, n: int, m: int, seed_sd: float, item_sd: float) -> np.ndarray:
    """d_ij = mu + a_j + b_i + e_ij: a fixed per item (same exam every seed), b per seed, e per item and seed."""
    return 0.01 + rng.normal(0, 0.3, m)[None, :] + rng.normal(0, seed_sd, n)[:, None] + rng.normal(0, item_sd, (n, m))


def test_the_item_share_follows_where_the_variance_is() -> None:
    rng = np.random.default_rng(36)
    estimates = [item_noise(_seeds(rng, 5, 40, 0.05, 0.4).tolist()).interaction_var for _ in range(300)]  # type: ignore[union-attr]
    assert np.mean(estimates) == pytest.approx(0.16, rel=0.03)  # unbiased for var(e); a_j and b_i do not leak in

    items = _seeds(rng, 5, 200, 0.001, 0.6)  # item noise: var(e)/m = 0.0018 against var(b) = 1e-6
    got = paired_power(items.mean(axis=1).tolist(), n_items=200, item_diffs=items.tolist())
    assert got.verdict is Verdict.UNDERPOWERED and got.item_share > 0.9 and got.advice is Advice.ADD_ITEMS  # type: ignore[operator]
    assert got.items_needed is not None and got.items_needed > 200
    var = got.sd**2  # type: ignore[operator]
    for k, reaches in ((got.items_needed, True), (got.items_needed - 1, False)):  # the item part shrinks as 1/items
        at_k = var * (1 - got.item_share) + var * got.item_share * 200 / k  # type: ignore[operator]
        assert (mde(5, math.sqrt(at_k)) <= MATTERS) is reaches  # type: ignore[operator]
    assert "add items" in describe(got) and f"≈ {got.items_needed:,} items at 5 seeds" in describe(got)

    seeds = _seeds(rng, 5, 200, 0.08, 0.3)  # seed-to-seed: var(b) = 0.0064 against var(e)/m = 0.00045
    got = paired_power(seeds.mean(axis=1).tolist(), n_items=200, item_diffs=seeds.tolist())
    assert got.verdict is Verdict.UNDERPOWERED and got.item_share < 0.5 and got.advice is Advice.ADD_SEEDS  # type: ignore[operator]


def test_n_is_said_in_seeds_and_items() -> None:
    assert n_text(5, 1200) == "5 seeds × 1,200 exam items" and n_text(1, None) == "1 seed"
    got = paired_power([0.10, -0.08, 0.02], n_items=1200)
    line = describe(got)
    assert line.startswith("n = 3 seeds × 1,200 exam items, p = ") and "detectable (80 % power) ±" in line
    assert ": underpowered for 0.05 — add seeds" in line
    assert got.as_dict()["verdict"] == "underpowered" and got.as_dict()["ci"] == list(got.ci)  # type: ignore[arg-type]


def test_one_seed_is_read_item_by_item_and_says_it_is_one_seed() -> None:
    """With one seed there is no interval over seeds; the exam items' differences still say what this exam tells
    apart: on one node scipy's paired t over the items; over several, node by node (a mean of node means), with
    the spread between nodes not counted as noise."""
    from curriculum.stats.power import within_seed

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 40).astype(float)
    d = a - b
    got = within_seed([d])  # one node: exactly scipy's paired t over the items
    test = stats.ttest_rel(a, b)
    assert got.mean == pytest.approx(d.mean()) and got.p == pytest.approx(test.pvalue, rel=1e-10)
    assert got.ci == pytest.approx(tuple(test.confidence_interval(0.95)), rel=1e-10)
    by_statsmodels = statsmodels_power.TTestPower().solve_power(nobs=40, alpha=0.05, power=0.8, alternative="two-sided")
    assert got.mde == pytest.approx(by_statsmodels * float(np.std(d, ddof=1)), rel=1e-6)
    assert (got.n_seeds, got.n_items, got.advice) == (1, 40, Advice.ADD_SEEDS) and "one seed" in got.note
    assert describe(got).startswith("n = 1 seed × 40 exam items") and "add seeds (within one seed" in describe(got)
    # two nodes of 10 and 30 items, by hand: the mean of the node means, SE² = (s1²/10 + s2²/30) / 4, Welch df
    two = within_seed([d[:10], d[10:]])
    v1, v2 = np.var(d[:10], ddof=1) / 40, np.var(d[10:], ddof=1) / 120
    df = (v1 + v2) ** 2 / (v1**2 / 9 + v2**2 / 29)
    half = stats.t.ppf(0.975, df) * np.sqrt(v1 + v2)
    centre = (d[:10].mean() + d[10:].mean()) / 2
    assert two.mean == pytest.approx(centre) and two.ci == pytest.approx((centre - half, centre + half), rel=1e-10)
    clear = within_seed([[1.0] * 30 + [0.0] * 10])
    assert clear.verdict == Verdict.AHEAD and clear.advice == Advice.ADD_SEEDS  # ahead within this seed, not proven
    assert within_seed([[0.0] * 5, [1.0] * 5]).verdict == Verdict.UNDETERMINED  # no spread inside a node


def test_the_one_seed_interval_covers_at_its_level_where_nodes_moved_differently() -> None:
    """A chain where one node moved and two did not: the stratified interval covers the true difference about 95 %
    of the time (pooling the items would cover nearly always, wide by the spread between nodes)."""
    from curriculum.stats.power import within_seed

    rng = np.random.default_rng(0)
    moved, still = [0.8, 0.15, 0.05], [0.1, 0.8, 0.1]  # P(item difference +1, 0, −1)
    truth = ((0.8 - 0.05) + 0 + 0) / 3
    covered = 0
    for _ in range(600):
        nodes = [rng.choice([1.0, 0.0, -1.0], size=n, p=p) for n, p in ((60, moved), (70, still), (70, still))]
        low, high = within_seed(nodes).ci  # type: ignore[misc]
        covered += low <= truth <= high
    assert 0.92 <= covered / 600 <= 0.975  # pooled over the items: 0.983
