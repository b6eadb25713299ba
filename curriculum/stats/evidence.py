"""A node's probe items as evidence: the score with its n and interval, gate calls, paired drops.

A probe score is a measurement on a handful of items, so every decision built on it says how
sure it is: a gate is passed only when the score's lower bound clears it, failed only when the
upper bound is below it, and forgetting is a paired test on the very same items. The
statistics are scipy's (Wilson interval, Student's t, exact binomial for McNemar).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from curriculum.graph.spec import CONTINUOUS_PROBE_KINDS

ItemKey = tuple[int, int]  # (probe index, line of the item in its JSONL file)
Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Evidence:
    """One node's item scores at one stage, and how many items its probes hold in all."""

    items: Mapping[ItemKey, float]
    binary: bool  # every item is right (1) or wrong (0): Wilson; else Student's t
    pool: int

    @property
    def n(self) -> int:
        return len(self.items)

    @property
    def score(self) -> float:
        """The mean item score; fsum, so a resumed run re-derives the very same float."""
        return math.fsum(self.items.values()) / self.n if self.items else 0.0

    @property
    def spent(self) -> bool:
        return self.n >= self.pool

    def bounds(self, confidence: float) -> tuple[float, float]:
        """(lower, upper) one-sided bounds, each at `confidence`, clipped to [0, 1]."""
        return interval([self.items[k] for k in sorted(self.items)], self.binary, confidence)

    def restricted(self, keys: Sequence[ItemKey]) -> Evidence:
        return Evidence({k: self.items[k] for k in keys if k in self.items}, self.binary, self.pool)


def interval(scores: Sequence[float], binary: bool, confidence: float) -> tuple[float, float]:
    """Wilson bounds for right/wrong items, Student's t bounds for continuous scores.

    A one-sided bound at c is a two-sided interval at 2c − 1.
    """
    n = len(scores)
    if n == 0:
        return 0.0, 1.0
    two_sided = 2 * confidence - 1
    if binary:
        ci = stats.binomtest(int(round(math.fsum(scores))), n).proportion_ci(two_sided, method="wilson")
        return max(0.0, float(ci.low)), min(1.0, float(ci.high))
    mean = math.fsum(scores) / n
    if n < 2:
        return 0.0, 1.0
    sem = stats.sem(scores)
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(two_sided, n - 1, loc=mean, scale=sem)
    return max(0.0, float(low)), min(1.0, float(high))


@dataclass(frozen=True)
class GateCall:
    verdict: Verdict
    score: float
    low: float
    high: float
    n: int
    decided_on_point: bool  # the pool was spent while the bounds still straddled the gate

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def describe(self, gate: float, confidence: float) -> str:
        band = f"{self.score:.3f} [{self.low:.3f}, {self.high:.3f}] on {self.n} items"
        if self.decided_on_point:
            side = "≥" if self.passed else "<"
            return (f"score {band} straddles gate {gate:.3f} at {confidence:.0%} with every item drawn; "
                    f"decided on the point estimate ({self.score:.3f} {side} {gate:.3f})")
        if self.verdict == "inconclusive":  # items left to draw, and none drawn: a call the gate could not make
            return f"score {band} straddles gate {gate:.3f} at {confidence:.0%}"
        side = "lower bound clears" if self.passed else "upper bound is below"
        return f"score {band}: its {confidence:.0%} {side} gate {gate:.3f}"


def gate_call(ev: Evidence, gate: float, confidence: float) -> GateCall:
    """pass / fail / inconclusive; with every item drawn, inconclusive falls back to the point estimate."""
    low, high = ev.bounds(confidence)
    if low >= gate:
        verdict: Verdict = "pass"
    elif high < gate:
        verdict = "fail"
    else:
        verdict = "inconclusive"
    if verdict == "inconclusive" and ev.spent:
        return GateCall("pass" if ev.score >= gate else "fail", ev.score, low, high, ev.n, True)
    return GateCall(verdict, ev.score, low, high, ev.n, False)


@dataclass(frozen=True)
class Drop:
    """A paired comparison of the same items then and now."""

    test: str  # mcnemar-exact | paired-t | none
    n: int
    before: float
    after: float
    p_value: float

    def significant(self, confidence: float) -> bool:
        return self.p_value < 1 - confidence


def paired_drop(before: Evidence, after: Evidence) -> Drop:
    """Did the score fall on the items both stages share? Exact McNemar (one-sided) for right/wrong
    items, a one-sided paired t test otherwise."""
    keys = sorted(set(before.items) & set(after.items))
    was = [before.items[k] for k in keys]
    now = [after.items[k] for k in keys]
    mean_was = math.fsum(was) / len(keys) if keys else 0.0
    mean_now = math.fsum(now) / len(keys) if keys else 0.0
    if not keys:
        return Drop("none", 0, mean_was, mean_now, 1.0)
    if before.binary and after.binary:
        lost = sum(1 for a, b in zip(was, now) if a >= 0.5 > b)
        gained = sum(1 for a, b in zip(was, now) if b >= 0.5 > a)
        p = stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost + gained else 1.0
        return Drop("mcnemar-exact", len(keys), mean_was, mean_now, float(p))
    diffs = [a - b for a, b in zip(was, now)]
    if len(keys) < 2 or all(abs(d - diffs[0]) < 1e-12 for d in diffs):
        # no spread: a t test is undefined; an exact tie is no drop, a uniform shift is read as certain
        p = 0.0 if diffs[0] > 1e-12 and len(keys) >= 2 else 1.0
        return Drop("paired-t", len(keys), mean_was, mean_now, p)
    p = stats.ttest_rel(was, now, alternative="greater").pvalue
    return Drop("paired-t", len(keys), mean_was, mean_now, float(p))


def draw_order(node_id: str, keys: Sequence[ItemKey]) -> list[ItemKey]:
    """A node's items in a fixed shuffled order (seeded by its id), so draws do not always start at line 1."""
    seed = zlib.crc32(node_id.encode())
    return sorted(keys, key=lambda k: zlib.crc32(f"{seed}:{k[0]}:{k[1]}".encode()))


def first_draw(pool: int) -> int:
    """Half the pool (at least 4 items) first; the rest only when the first half is inconclusive."""
    return min(pool, max(4, math.ceil(pool / 2)))


def rotating_sample(keys: Sequence[ItemKey], size: int, stage: int) -> list[ItemKey]:
    """`size` of `keys`, a different window each stage, so regression sweeps cover the whole set over time."""
    if size >= len(keys):
        return list(keys)
    start = (stage * size) % len(keys)
    return [keys[(start + i) % len(keys)] for i in range(size)]


def decidable(n: int, gate: float, confidence: float) -> bool:
    """Can n right/wrong items ever pass and ever fail this gate at this confidence?"""
    low_all_right, _ = interval([1.0] * n, True, confidence)
    _, high_all_wrong = interval([0.0] * n, True, confidence)
    return low_all_right >= gate and high_all_wrong < gate


CONTINUOUS_KINDS = CONTINUOUS_PROBE_KINDS  # every other probe kind scores items right (1) or wrong (0)


def evidence_from(items: Sequence[tuple[int, int, str, float]], pool: int) -> Evidence:
    """(probe index, item line, probe kind, score) rows as evidence; the pool is never smaller than what was drawn."""
    return Evidence({(i, line): score for i, line, _, score in items},
                    all(kind not in CONTINUOUS_KINDS for _, _, kind, _ in items), max(pool, len(items)))
