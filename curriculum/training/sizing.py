"""Stages sized by mastery: how long a round is, what a node may spend, and when a stage stops.

A fixed epoch count is wrong for almost every node: too long for what is learned quickly, far too
short for a node of 8 examples. A stage trains in rounds instead and looks at a cheap check after
each; these rules turn the checks into "go on" or a reason to stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from curriculum.graph.spec import TrainConfig

MIN_ROUNDS = 6  # a node's budget always allows this many rounds, however few its examples
MIN_STEPS = 48  # and this many optimizer steps: a node of 8 examples needs many epochs, not a handful of steps


@dataclass(frozen=True)
class Check:
    """One look at the node after a round: its score on the checked items and the gate's call on them."""

    round: int
    step: int  # optimizer steps of the stage so far
    score: float
    verdict: str  # pass | fail | inconclusive (the gate call on the checked items)
    n: int


def steps_per_epoch(n_items: int, cfg: TrainConfig) -> int:
    return max(1, math.ceil(math.ceil(n_items / cfg.batch_size) / cfg.grad_accum))


def round_length(n_items: int, cfg: TrainConfig) -> int:
    """Optimizer steps between two checks: `epochs` epochs, and never fewer than `round_steps`."""
    return max(cfg.epochs * steps_per_epoch(n_items, cfg), cfg.round_steps)


def node_budget(n_items: int, cfg: TrainConfig) -> int:
    """Steps a node may spend over all its attempts: `max_epochs` epochs (capped by `max_steps`), and at
    least MIN_ROUNDS rounds and MIN_STEPS steps, so a node of 8 examples gets as many looks as one of 800."""
    by_epochs = cfg.max_epochs * steps_per_epoch(n_items, cfg)
    budget = min(by_epochs, cfg.max_steps) if cfg.max_steps else by_epochs
    floor = max(MIN_ROUNDS * round_length(n_items, cfg), MIN_STEPS)
    return max(budget, min(floor, cfg.max_steps) if cfg.max_steps else floor)


def stop_reason(checks: list[Check], spent: int, budget: int, cfg: TrainConfig) -> str | None:
    """None to train another round, else why the stage stops: gate-met, plateau or budget."""
    if checks and checks[-1].verdict == "pass":
        return "gate-met"
    if spent >= budget:
        return "budget"
    if len(checks) > cfg.patience:
        best_before = max(c.score for c in checks[: -cfg.patience])
        if all(c.score < best_before + cfg.min_delta for c in checks[-cfg.patience:]):
            return "plateau"
    return None


def best_check(checks: list[Check]) -> Check | None:
    """The round whose adapter the stage keeps: the best score, the latest among ties."""
    return max(reversed(checks), key=lambda c: c.score) if checks else None
