"""Choosers: which ready node a gated policy trains next (topological, largest gap, random, Exp3.S)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import logsumexp

from curriculum.stats.evidence import Evidence

if TYPE_CHECKING:
    from curriculum.policies.runstate import RunState

__all__ = ["Chooser", "Exp3S", "RandomOrder", "first_in_order", "largest_gap", "paired_progress"]

Chooser = Callable[["RunState", list[str]], tuple[str, str, dict[str, Any]]]


def first_in_order(st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
    return ready[0], "requirements mastered; first in topological order", {}


def largest_gap(st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
    """Largest gap to its gate, measured on the adapter the next stage continues (the flow probes ready
    nodes after every kept stage for this policy), never on a discarded one."""
    fresh = {n: st.on_accepted(n) for n in ready}
    gaps = {n: st.gate(n) - (ev.score if (ev := fresh[n]) else 0.0) for n in ready}
    pick = max(ready, key=lambda n: (gaps[n], -ready.index(n)))
    return pick, f"largest gap to its gate ({gaps[pick]:.3f}) among {len(ready)} ready", {"gaps": gaps}


@dataclass
class RandomOrder:
    """Baseline: a ready node drawn uniformly (seeded), with the same gates and rehearsal as gated."""

    seed: int

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def __call__(self, st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
        pick = self.rng.choice(ready)
        return pick, f"drawn at random among {len(ready)} ready", {}


@dataclass
class Exp3S:
    """Exp3.S over ready nodes, learning progress as reward (Graves et al., 2017).

    Weights live in log space (a few thousand arms with large rewards overflow `exp`); the
    fixed-share step mixes weight among the arms in play at the pull, so arms that left (mastered,
    failed) neither dilute nor absorb it.
    """

    seed: int
    eta: float = 0.5
    epsilon: float = 0.1
    alpha: float = 0.01
    log_w: dict[str, float] = field(default_factory=dict)
    last_pi: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def probabilities(self, ready: list[str]) -> dict[str, float]:
        lw = np.array([self.log_w.get(n, 0.0) for n in ready])
        w = np.exp(lw - logsumexp(lw))
        return {n: float((1 - self.epsilon) * w[i] + self.epsilon / len(ready)) for i, n in enumerate(ready)}

    def __call__(self, st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
        pi = self.probabilities(ready)
        pick = self.rng.choices(ready, weights=[pi[n] for n in ready])[0]
        self.last_pi = pi
        return pick, f"sampled by Exp3.S with p={pi[pick]:.3f} among {len(ready)} ready", {"p": pi}

    def reward(self, node_id: str, progress: float) -> None:
        """Importance-weighted update for the pulled arm, then Exp3.S's fixed share among the arms in play."""
        r = max(-1.0, min(1.0, progress))
        pi = self.last_pi.get(node_id, 1.0)
        self.log_w[node_id] = self.log_w.get(node_id, 0.0) + self.eta * r / pi
        arms = list(self.last_pi) or [node_id]
        k = len(arms)
        if k < 2:
            return
        lw = np.array([self.log_w.get(a, 0.0) for a in arms])
        total = logsumexp(lw)
        with np.errstate(divide="ignore"):
            others = total + np.log(-np.expm1(np.minimum(lw - total, 0.0)))  # log(W - w_i)
        mixed = np.logaddexp(np.log1p(-self.alpha) + lw, math.log(self.alpha / (k - 1)) + others)
        self.log_w.update({a: float(v) for a, v in zip(arms, mixed)})


def paired_progress(before: Evidence | None, after: Evidence | None) -> float:
    """Learning progress on the items both probes share (their means when they share none)."""
    if after is None:
        return 0.0
    if before is None:
        return after.score
    keys = sorted(set(before.items) & set(after.items))
    if not keys:
        return after.score - before.score
    return math.fsum(after.items[k] - before.items[k] for k in keys) / len(keys)
