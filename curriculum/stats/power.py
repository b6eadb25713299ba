"""Power, said out loud: what a paired comparison over seeds could have detected, and what to do next.

A comparison of two policies is paired by seed: each seed gives one difference D_i (policy A's score minus
policy B's, on the same exam items), and the verdict is a t interval over those n differences. An interval that
straddles 0 says nothing by itself: the arms may be level, or the comparison may simply be too small to see a
difference that matters. This module tells the two apart with the *minimum detectable effect* (mde): the
smallest true difference a two-sided paired t test at alpha 0.05 would find with 80 % power, given n and the
spread of the differences the data showed. It is solved exactly with the noncentral t, as statsmodels'
`TTestPower` does, not with the normal approximation (which gives half the exact mde at 3 seeds, three
quarters of it at 5: the t's heavy tails are what a handful of seeds pays for).

Then the advice: with each D_i a mean over the same exam items in both arms, var(D_i) has an item part (which
items a seed happens to get right: shrinks with more items, costs only probing) and a seed part (how training
itself varies: shrinks only with more seeds, costs whole runs). Where per-item scores are known, the item
share says which one to buy.

Pure: numpy and scipy only, so the CLI, the benchmark script and the tests share it without Prefect or DuckDB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
# The effect that matters, in score points (a score is a share of items right, 0..1): 0.05 is five items in a
# hundred. Below it, two curricula are the same in practice for a user choosing one: it is about the spread one
# seed of LoRA training already shows on a node, and the smallest gain worth a policy's extra machinery. Callers
# with a different stake pass their own (`--matters`).
MATTERS = 0.05
# For gates held (a count of nodes), one gate a run is the effect that matters: less is not a node learned.
GATES_MATTER = 1.0
# Where the item part of the variance is over this share, adding items is the cheaper remedy.
ITEM_SHARE_FOR_ITEMS = 0.5
_MAX_SEEDS = 10**6


class Verdict(str, Enum):
    """What a paired interval says. `undetermined`: fewer than 2 seeds, or no spread at all (no t interval)."""

    AHEAD = "ahead"
    BEHIND = "behind"
    LEVEL = "level"
    UNDERPOWERED = "underpowered"
    UNDETERMINED = "undetermined"


class Advice(str, Enum):
    """What the user should do next: the answer is in (stop), or buy variance down where it is cheapest."""

    STOP = "stop"
    ADD_SEEDS = "add seeds"
    ADD_ITEMS = "add items"


def power_t(nc: float, df: float, alpha: float = ALPHA) -> float:
    """Power of a two-sided t test with `df` degrees of freedom whose statistic has noncentrality `nc` (the true
    difference over its standard error): both tails of the noncentral t."""
    crit = stats.t.isf(alpha / 2, df)
    lower = float(stats.nct.cdf(-crit, df, nc))  # the wrong-sign tail: ~0 and NaN in scipy far out, where it is 0
    return float(stats.nct.sf(crit, df, nc)) + (lower if math.isfinite(lower) else 0.0)


def power_paired(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample t test (paired = one sample of differences) at standardized effect
    `effect` (difference / sd of the differences) with n pairs: df = n − 1, noncentrality effect·√n — the same
    identity as statsmodels' `ttest_power`."""
    if n < 2:
        raise ValueError("a t test needs at least 2 pairs")
    return power_t(effect * math.sqrt(n), n - 1, alpha)


def mde_se(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided t test of standard error `se` and `df` degrees of freedom detects
    with the given power: the noncentral t solved for its noncentrality (the normal approximation z_{1−α/2} + z_power
    only brackets the root: it ignores the t's heavy tails), times the standard error."""
    upper = stats.norm.isf(alpha / 2) + stats.norm.ppf(power)
    while power_t(upper, df, alpha) < power:  # the t is wider than the normal: widen until bracketed
        upper *= 2
    return float(optimize.brentq(lambda nc: power_t(nc, df, alpha) - power, 0.0, upper, xtol=1e-14, rtol=1e-13)) * se


def mde_standardized(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest standardized effect d ≥ 0 with power_paired(d, n) = power, by root finding on the exact
    noncentral-t power. The normal approximation (z_{1−α/2} + z_power)/√n only brackets the root: it ignores the
    t's heavy tails, which are what a handful of seeds pays for."""
    if n < 2:
        raise ValueError("a t test needs at least 2 pairs")
    return mde_se(1 / math.sqrt(n), n - 1, alpha, power)  # d = noncentrality / √n


def mde(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable effect in the data's units: the smallest |true mean difference| that a two-sided paired
    t test over n differences of sample sd `sd` detects with the given power. None where there is no estimate
    (n < 2, or sd 0 or not finite): no spread means no power calculation, not infinite power."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return None
    return mde_standardized(n, alpha, power) * sd


def seeds_for(sd: float, matters: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """How many seeds, at this sd of a seed's difference, bring the mde down to `matters` (None: no estimate, or
    more than a million)."""
    if not math.isfinite(sd) or sd <= 0 or matters <= 0:
        return None
    if mde(2, sd, alpha, power) <= matters:  # type: ignore[operator]
        return 2
    low, high = 2, 4  # mde(low) > matters >= mde(high) once bracketed; mde falls with n
    while mde(high, sd, alpha, power) > matters:  # type: ignore[operator]
        low, high = high, high * 2
        if high > _MAX_SEEDS:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if mde(mid, sd, alpha, power) <= matters else (mid, high)  # type: ignore[operator]
    return high


@dataclass(frozen=True)
class ItemNoise:
    """The item part of a seed's difference.

    Model of one item's difference between the arms on seed i: d_ij = mu + a_j + b_i + e_ij. a_j (this item is
    easier for arm A) is the same on every seed, because every seed sits the same exam: it moves the mean, not the
    spread over seeds. b_i is the seed-to-seed part (one seed's training went better overall). e_ij is the
    item-by-seed noise (which items a seed happens to get right); it averages out over items. A seed's difference
    D_i = sum_j w_j d_ij (weights: the figure's own, e.g. 1/(nodes × items of the node)) then has
        var(D_i) = var(b) + var(e) · sum_j w_j²,
    and var(e) is estimated by the two-way residual without replication, SS_resid / ((n − 1)(m − 1)).
    `effective_items` = 1 / sum_j w_j² is the item count that equal weights would need for the same noise.
    """

    interaction_var: float
    effective_items: float

    @property
    def var_in_seed_difference(self) -> float:
        """var(e) / effective_items: how much of var(D_i) the items contribute."""
        return self.interaction_var / self.effective_items


def item_noise(item_diffs: Sequence[Sequence[float]], weights: Sequence[float] | None = None) -> ItemNoise | None:
    """Estimate the item-by-seed variance from per-seed, per-item differences (rows: seeds, columns: the same
    items in the same order on every seed). None where it cannot be estimated: fewer than 2 seeds or items, or
    rows of different lengths."""
    rows = [list(map(float, r)) for r in item_diffs]
    if len(rows) < 2 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        return None
    d = np.asarray(rows)
    n, m = d.shape
    w = np.full(m, 1.0 / m) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (m,) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        return None
    w = w / w.sum()
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    return ItemNoise(float((resid**2).sum() / ((n - 1) * (m - 1))), float(1.0 / (w**2).sum()))


@dataclass(frozen=True)
class PairedPower:
    """One paired difference, said out loud: its n, interval, p, what it could have detected, and what next.

    `item_share` is the item part's share of the seeds' variance; `items_needed` the total item count (every node
    grown in proportion) that would, at these seeds and this variance, bring the mde down to `matters` (None where
    unknown, or where the seed part alone keeps it above); `seeds_needed` the seeds that would, at this variance.
    """

    n_seeds: int
    n_items: int | None
    mean: float | None
    ci: tuple[float, float] | None
    p: float | None
    sd: float | None
    mde: float | None
    matters: float
    verdict: Verdict
    advice: Advice
    item_share: float | None = None
    seeds_needed: int | None = None
    items_needed: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (enums as their words, the interval as a list)."""
        out = asdict(self)
        out |= {"verdict": self.verdict.value, "advice": self.advice.value, "ci": list(self.ci) if self.ci else None}
        return out


def _verdict(low: float, high: float, detectable: float | None, matters: float) -> Verdict:
    """Ahead or behind where the interval is clear of 0; else level if a difference that matters would have shown."""
    if low > 0 or high < 0:
        return Verdict.AHEAD if low > 0 else Verdict.BEHIND
    return Verdict.LEVEL if detectable is not None and detectable <= matters else Verdict.UNDERPOWERED


def paired_power(diffs: Sequence[float | None], *, n_items: int | None = None,
                 item_diffs: Sequence[Sequence[float]] | None = None, weights: Sequence[float] | None = None,
                 matters: float = MATTERS, alpha: float = ALPHA, power: float = POWER) -> PairedPower:
    """Read per-seed paired differences (None: a seed with no value, left out) and say what they show.

    Verdict: `ahead` / `behind` where the 1 − alpha t interval is clear of 0; where it straddles 0, `level` if
    the mde is at most `matters` (a difference that matters would have shown), else `underpowered`.
    Advice: `stop` once the verdict is in (ahead, behind, level). Underpowered: `add items` where per-item
    differences (`item_diffs`, rows of seeds in the order of `diffs` with None rows dropped alike, and their
    `weights`) show the item part to be over half the variance and more items alone can reach `matters`
    (items cost probing time, a seed costs whole runs), else `add seeds`. Fewer than 2 seeds or no spread:
    `undetermined`, `add seeds`, and a note saying so.
    """
    kept = [i for i, x in enumerate(diffs) if x is not None and math.isfinite(float(x))]
    xs = [float(diffs[i]) for i in kept]  # type: ignore[arg-type]
    n = len(xs)
    base: dict[str, Any] = {"n_seeds": n, "n_items": n_items, "matters": matters}
    if n == 0:
        return PairedPower(**base, mean=None, ci=None, p=None, sd=None, mde=None, verdict=Verdict.UNDETERMINED,
                           advice=Advice.ADD_SEEDS, note="no seed gave both arms")
    mean = sum(xs) / n
    if n < 2:
        return PairedPower(**base, mean=mean, ci=None, p=None, sd=None, mde=None, verdict=Verdict.UNDETERMINED,
                           advice=Advice.ADD_SEEDS, note="one seed: no interval, no power estimate")
    sd = float(np.std(xs, ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # equal differences up to float rounding (0.6 − 0.5 against 0.7 − 0.6)
        return PairedPower(**base, mean=mean, ci=None, p=None, sd=0.0, mde=None, verdict=Verdict.UNDETERMINED,
                           advice=Advice.ADD_SEEDS, note="every seed gave the same difference: no spread, no power estimate")
    test = stats.ttest_1samp(xs, 0.0)
    low, high = (float(v) for v in test.confidence_interval(1 - alpha))
    detectable = mde(n, sd, alpha, power)
    verdict = _verdict(low, high, detectable, matters)
    share = items_needed = None
    noise = None
    if item_diffs is not None:
        rows = list(item_diffs)
        if len(rows) == len(diffs):
            rows = [rows[i] for i in kept]
        noise = item_noise(rows, weights) if len(rows) == n else None
    if noise is not None:
        # the model gives the share; the seeds' own sd (what the t test and the mde read) gives the total, so the
        # items needed agree with the mde printed beside them. The share is capped at 1: with few seeds the sd
        # can come out below the item part alone.
        share = min(1.0, noise.var_in_seed_difference / sd**2)
        item_var, seed_var = share * sd**2, (1.0 - share) * sd**2
        target = (matters / mde_standardized(n, alpha, power)) ** 2  # the largest var(D) that reaches `matters`
        if item_var > 0 and target > seed_var:  # item part shrinks as 1/items; items now: n_items (or effective)
            items_needed = math.ceil((n_items or noise.effective_items) * item_var / (target - seed_var))
    if verdict in (Verdict.AHEAD, Verdict.BEHIND, Verdict.LEVEL):
        advice = Advice.STOP
    elif share is not None and share > ITEM_SHARE_FOR_ITEMS and items_needed is not None:
        advice = Advice.ADD_ITEMS
    else:
        advice = Advice.ADD_SEEDS
    return PairedPower(**base, mean=mean, ci=(low, high), p=float(test.pvalue), sd=sd, mde=detectable,
                       verdict=verdict, advice=advice, item_share=share, seeds_needed=seeds_for(sd, matters, alpha, power),
                       items_needed=items_needed)


def within_seed(node_diffs: Sequence[Sequence[float]], *, matters: float = MATTERS, alpha: float = ALPHA,
                power: float = POWER) -> PairedPower:
    """One seed's two end states, compared item by item on a figure that is a mean of node means (the final score):
    each node's exam items are a stratum, so the difference is the mean of the nodes' mean item differences, its
    standard error sqrt(sum_k s_k² / n_k) / K, and its t has Welch–Satterthwaite degrees of freedom. Pooling the
    items instead would count the spread between the nodes' differences as noise (an interval a third too wide on
    a chain where one node moved and the others did not). With one node it is scipy's paired t over the items.

    With one seed there is no interval over seeds at all; this one says whether these two adapters differ beyond
    the exam's sampling noise, and what the exam could have detected. How much another training seed would move
    them it cannot say, so the advice stays `add seeds` and the note says why."""
    nodes = [np.asarray(list(d), dtype=float) for d in node_diffs if len(d)]
    k, m = len(nodes), sum(len(d) for d in nodes)
    base: dict[str, Any] = {"n_seeds": 1, "n_items": m, "matters": matters, "advice": Advice.ADD_SEEDS, "sd": None}
    note = "within one seed, items paired: the exam's noise, not training's"
    if not k:
        return PairedPower(**base, mean=None, ci=None, p=None, mde=None, verdict=Verdict.UNDETERMINED, note="no items")
    mean = float(sum(d.mean() for d in nodes) / k)
    parts = [float(d.var(ddof=1)) / (len(d) * k * k) if len(d) > 1 else 0.0 for d in nodes]
    var = sum(parts)
    if var <= 1e-24:
        return PairedPower(**base, mean=mean, ci=None, p=None, mde=None, verdict=Verdict.UNDETERMINED,
                           note=note + "; every item gave the same difference: no spread")
    df = var**2 / sum(v**2 / (len(d) - 1) for v, d in zip(parts, nodes) if len(d) > 1)
    se = math.sqrt(var)
    half = float(stats.t.isf(alpha / 2, df)) * se
    low, high = mean - half, mean + half
    detectable = mde_se(se, df, alpha, power)
    return PairedPower(**base, mean=mean, ci=(low, high), p=float(2 * stats.t.sf(abs(mean) / se, df)), mde=detectable,
                       verdict=_verdict(low, high, detectable, matters), note=note)


def n_text(n_seeds: int, n_items: int | None, items: str = "exam items") -> str:
    """'5 seeds × 1,200 exam items', as the tables print n."""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    return seeds if n_items is None else f"{seeds} × {n_items:,} {items}"


def describe(pp: PairedPower, *, digits: int = 3, items: str = "exam items", unit: str = "",
             matters_text: str | None = None) -> str:
    """One line: n, p, the mde, the verdict and the advice, e.g. 'n = 5 seeds × 1,200 exam items, p = 0.41,
    detectable (80 % power) ±0.061: underpowered for 0.05 — add items (items are 83 % of the variance; …)'.
    `unit` follows the mde, `matters_text` replaces the effect that matters in words (e.g. '1 gate')."""
    parts = [f"n = {n_text(pp.n_seeds, pp.n_items, items)}"]
    if pp.p is not None:
        parts.append(f"p = {pp.p:.2g}")
    if pp.mde is not None:
        parts.append(f"detectable (80 % power) ±{pp.mde:.{digits}f}{unit}")
    verdict = pp.verdict.value
    if pp.verdict in (Verdict.LEVEL, Verdict.UNDERPOWERED):
        verdict += f" for {matters_text or f'{pp.matters:g}{unit}'}"
    why = pp.note
    if pp.advice is not Advice.STOP and not why:
        bits = []
        if pp.item_share is not None:
            bits.append(f"items are {pp.item_share * 100:.0f} % of the variance")
        if pp.advice is Advice.ADD_ITEMS and pp.items_needed is not None:
            bits.append(f"≈ {pp.items_needed:,} items at {pp.n_seeds} seeds")
        if pp.seeds_needed is not None:
            bits.append(f"≈ {pp.seeds_needed:,} seeds at this spread")
        why = "; ".join(bits)
    return ", ".join(parts) + f": {verdict} — {pp.advice.value}" + (f" ({why})" if why else "")
