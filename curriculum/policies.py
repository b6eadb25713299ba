"""Policies: which node to train next, and what a stage's probe scores mean for the run.

All policies see the same signals (each node's probe score after each stage) and the
graph. `gated`, `greedy` and `bandit` share the gate rules and differ only in which ready
node they pick; `fixed` and `flat` are the baselines. Everything here is deterministic
given the scores and the seed, so a resumed run replays its recorded stages through the
same state machine and lands exactly where it stopped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx

from curriculum.evidence import Drop, Evidence, GateCall, gate_call, paired_drop
from curriculum.spec import Curriculum

FLAT = "*"
Observed = dict[str, Evidence | None]  # node -> its items at this stage (None: the node has no probes)


@dataclass
class Step:
    """A stage to run: train `node_id` (or every node, for flat) on these nodes' data."""

    kind: str  # train | rehearse | flat
    node_id: str
    attempt: int
    epochs: int
    data_nodes: list[str]
    replay_nodes: list[str] = field(default_factory=list)
    reason: str = ""
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    node_id: str | None
    action: str  # train | pass | retry | branch | back-off | rehearse | skip
    reason: str
    attempt: int | None = None
    score_before: float | None = None
    score_after: float | None = None
    gate: float | None = None
    signals: dict[str, Any] = field(default_factory=dict)
    n_items: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @classmethod
    def on(cls, node_id: str, action: str, reason: str, call: GateCall | None, gate: float | None, *,
           attempt: int | None = None, before: float | None = None, signals: dict[str, Any] | None = None) -> Decision:
        """A decision that carries the gate call's score, item count and interval."""
        return cls(node_id, action, reason, attempt, before, call.score if call else None, gate, signals or {},
                   call.n if call else None, call.low if call else None, call.high if call else None)


@dataclass
class RunState:
    """What the run knows: node statuses, attempts, the score history and the adapter chain."""

    cur: Curriculum
    order: list[str]
    status: dict[str, str]  # locked | mastered | trained (no gates) | failed | skipped | dormant | waiting
    attempts: dict[str, int] = field(default_factory=dict)
    scores: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    rehearsals: dict[str, int] = field(default_factory=dict)
    pending_rehearsal: list[str] = field(default_factory=list)
    branched: set[str] = field(default_factory=set)
    accepted_stage: int | None = None  # the stage whose adapter the next stage continues
    trained: set[str] = field(default_factory=set)
    mastered_on: dict[str, Evidence] = field(default_factory=dict)  # the items each node was last mastered on
    auto_gates: dict[str, float] = field(default_factory=dict)  # gates of `min_score: auto`, fixed at baseline

    @classmethod
    def start(cls, cur: Curriculum, graph: nx.DiGraph) -> RunState:
        requires = nx.subgraph_view(graph, filter_edge=lambda u, v: graph[u][v]["kind"] == "requires")
        order = list(nx.lexicographical_topological_sort(requires, key=list(cur.nodes).index))
        status = {n: "dormant" if cur.nodes[n].entered_by == "on_fail" else "locked" for n in order}
        return cls(cur, order, status)

    def gate(self, node_id: str) -> float:
        value = self.cur.gate_config(node_id).min_score
        return self.auto_gates[node_id] if value == "auto" else value

    def confidence(self, node_id: str) -> float:
        return self.cur.gate_config(node_id).confidence

    def call(self, node_id: str, ev: Evidence) -> GateCall:
        return gate_call(ev, self.gate(node_id), self.confidence(node_id))

    def latest(self, node_id: str) -> float | None:
        history = self.scores.get(node_id)
        return history[-1][1] if history else None

    def ready(self) -> list[str]:
        """Nodes that may train now: every requirement mastered, not finished, not dormant."""
        return [
            n for n in self.order
            if self.status[n] == "locked" and all(self.status[r] in ("mastered", "trained") for r in self.cur.nodes[n].requires)
        ]

    def descendants(self, node_id: str) -> list[str]:
        """Nodes that can never unlock once `node_id` has failed."""
        out, frontier = [], {node_id}
        for n in self.order:
            if n != node_id and set(self.cur.nodes[n].requires) & frontier:
                out.append(n)
                frontier.add(n)
        return out

    def record_scores(self, stage: int, observed: Observed) -> None:
        for node_id, ev in observed.items():
            if ev is not None:
                self.scores.setdefault(node_id, []).append((stage, ev.score))


Chooser = Callable[[RunState, list[str]], tuple[str, str, dict[str, Any]]]


def first_in_order(st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
    return ready[0], "requirements mastered; first in topological order", {}


def largest_gap(st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
    gaps = {n: st.gate(n) - (st.latest(n) or 0.0) for n in ready}
    pick = max(ready, key=lambda n: (gaps[n], -ready.index(n)))
    return pick, f"largest gap to its gate ({gaps[pick]:.3f}) among {len(ready)} ready", {"gaps": gaps}


@dataclass
class Exp3S:
    """Exp3.S over ready nodes, learning progress as reward (Graves et al., 2017)."""

    seed: int
    eta: float = 0.5
    epsilon: float = 0.1
    alpha: float = 0.01
    log_w: dict[str, float] = field(default_factory=dict)
    last_pi: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def probabilities(self, ready: list[str]) -> dict[str, float]:
        top = max(self.log_w.get(n, 0.0) for n in ready)
        w = {n: math.exp(self.log_w.get(n, 0.0) - top) for n in ready}
        total = sum(w.values())
        return {n: (1 - self.epsilon) * w[n] / total + self.epsilon / len(ready) for n in ready}

    def __call__(self, st: RunState, ready: list[str]) -> tuple[str, str, dict[str, Any]]:
        pi = self.probabilities(ready)
        pick = self.rng.choices(ready, weights=[pi[n] for n in ready])[0]
        self.last_pi = pi
        return pick, f"sampled by Exp3.S with p={pi[pick]:.3f} among {len(ready)} ready", {"p": pi}

    def reward(self, node_id: str, progress: float) -> None:
        """Importance-weighted update for the pulled arm, then Exp3.S's share of the rest."""
        r = max(-1.0, min(1.0, progress))
        pi = self.last_pi.get(node_id, 1.0)
        self.log_w[node_id] = self.log_w.get(node_id, 0.0) + self.eta * r / pi
        if len(self.log_w) > 1:
            w = {n: math.exp(v) for n, v in self.log_w.items()}
            total = sum(w.values())
            k = len(w)
            self.log_w = {n: math.log((1 - self.alpha) * w[n] + self.alpha / (k - 1) * (total - w[n])) for n in w}


@dataclass
class GatedPolicy:
    """Gate rules: pass unlocks children; fail retries with more epochs, then on_fail, else back-off."""

    name: str
    choose: Chooser
    gates: bool = True

    def baseline(self, st: RunState, observed: Observed) -> list[Decision]:
        st.record_scores(0, observed)
        decisions = []
        if not self.gates:
            return decisions
        for n in st.order:
            ev = observed.get(n)
            if st.status[n] != "locked" or ev is None:
                continue
            call = st.call(n, ev)
            if call.passed:
                st.status[n] = "mastered"
                st.mastered_on[n] = ev
                decisions.append(Decision.on(n, "pass", f"over its gate at baseline, not trained: "
                                             f"{call.describe(st.gate(n), st.confidence(n))}", call, st.gate(n),
                                             signals={"stage": 0}))
        return decisions

    def next_step(self, st: RunState) -> Step | None:
        epochs = st.cur.defaults.train.epochs
        if st.pending_rehearsal:
            n = st.pending_rehearsal[0]
            others = [m for m in st.order if st.status[m] == "mastered" and m != n]
            return Step("rehearse", n, st.rehearsals.get(n, 0) + 1, st.cur.train_config(n).epochs, [n], others,
                        f"significant drop below its gate ({st.latest(n):.3f} < {st.gate(n):.3f}); rehearsing with replay")
        ready = st.ready()
        if not ready:
            return None
        n, reason, signals = self.choose(st, ready)
        attempt = st.attempts.get(n, 0) + 1
        epochs = st.cur.train_config(n).epochs
        if self.gates and attempt > 1:
            epochs += (attempt - 1) * max(1, epochs // 2)
            reason = f"attempt {attempt} with {epochs} epochs"
        replay = [m for m in st.order if st.status[m] == "mastered" and m != n] if st.cur.train_config(n).replay else []
        return Step("train", n, attempt, epochs, [n], replay, reason=reason, signals={"ready": ready, **signals})

    def observe(self, st: RunState, step: Step, stage: int, observed: Observed) -> tuple[bool, list[Decision]]:
        """Digest a stage's probe items: (keep the stage's adapter?, decisions taken)."""
        n = step.node_id
        before = st.latest(n)
        st.record_scores(stage, observed)
        ev, gate = observed.get(n), st.gate(n)
        call = st.call(n, ev) if ev is not None else None
        passed = call is None or call.passed
        after = call.score if call else None
        verdict = "no probes" if call is None else call.describe(gate, st.confidence(n))
        signals = {"stage": stage, "scores": {m: e.score for m, e in observed.items() if e is not None},
                   "verdict": call.verdict if call else None, "decided_on_point": call.decided_on_point if call else None}
        if isinstance(self.choose, Exp3S) and step.kind == "train":
            self.choose.reward(n, (after or 0.0) - (before or 0.0))
        if step.kind == "rehearse":
            st.pending_rehearsal.pop(0)
            st.rehearsals[n] = step.attempt
            if passed and ev is not None:
                st.mastered_on[n] = ev
            action, reason = ("pass", f"recovered its gate after rehearsal: {verdict}") if passed else (
                "skip", f"still below its gate after {step.attempt} rehearsal(s): {verdict}; moving on")
            decisions = [Decision.on(n, action, reason, call, gate, attempt=step.attempt, before=before, signals=signals)]
            return True, decisions + self._forgetting(st, observed, exclude=n)
        st.attempts[n] = step.attempt
        st.trained.add(n)
        if passed or not self.gates:
            st.status[n] = "mastered" if passed else "trained"  # without gates, children unlock either way
            if passed and ev is not None:
                st.mastered_on[n] = ev
            reason = verdict if passed else f"{verdict}; no gates in this policy"
            decisions = [Decision.on(n, "pass", reason, call, gate, attempt=step.attempt, before=before, signals=signals)]
            return True, decisions + (self._forgetting(st, observed, exclude=n) if self.gates else [])
        max_attempts = st.cur.gate_config(n).max_attempts
        on_fail = st.cur.nodes[n].on_fail
        if step.attempt < max_attempts:
            return False, [Decision.on(n, "retry", f"{verdict}; attempt {step.attempt} of {max_attempts}, "
                                       "retrying from the same parent with more epochs", call, gate, attempt=step.attempt,
                                       before=before, signals=signals)]
        if on_fail and n not in st.branched and st.status.get(on_fail) == "dormant":
            st.branched.add(n)
            st.status[on_fail] = "locked"
            st.status[n] = "waiting"
            return False, [Decision.on(n, "branch", f"{verdict} after {step.attempt} attempts; "
                                       f"taking remedial branch '{on_fail}', then one more attempt", call, gate,
                                       attempt=step.attempt, before=before, signals=signals)]
        return False, self._back_off(st, n, Decision.on(n, "back-off", f"{verdict} after {step.attempt} attempts; "
                                                        "adapter discarded, parent's kept", call, gate,
                                                        attempt=step.attempt, before=before, signals=signals))

    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]:
        """A stage that raised (bad data, out of memory): its node backs off, the run goes on."""
        n = step.node_id
        if step.kind == "rehearse":
            st.pending_rehearsal.pop(0)
            st.rehearsals[n] = step.attempt
            return [Decision(n, "skip", f"rehearsal stage {stage} failed: {error}", step.attempt)]
        st.attempts[n] = step.attempt
        return self._back_off(st, n, Decision(n, "back-off", f"stage {stage} failed: {error}", step.attempt, st.latest(n),
                                              None, st.gate(n), {"stage": stage, "error": error}))

    def _back_off(self, st: RunState, n: str, decision: Decision) -> list[Decision]:
        st.status[n] = "failed"
        decisions = [decision]
        for d in st.descendants(n):
            if st.status[d] in ("locked", "dormant", "waiting"):
                st.status[d] = "skipped"
                decisions.append(Decision(d, "skip", f"requires '{n}', which failed"))
        for waiting, remedial in ((w, st.cur.nodes[w].on_fail) for w in st.order if st.status[w] == "waiting"):
            if remedial == n:
                decisions += self._back_off(st, waiting, Decision(waiting, "back-off", f"its remedial branch '{n}' failed"))
        return decisions

    def _forgetting(self, st: RunState, observed: Observed, exclude: str) -> list[Decision]:
        """A mastered node is rehearsed when its items dropped significantly since it was mastered (a paired
        test on the same items) and its score on them is now below its gate: probe noise alone never triggers it."""
        decisions = []
        for m, ev in observed.items():
            if m == exclude or ev is None or st.status.get(m) != "mastered" or m in st.pending_rehearsal:
                continue
            if m not in st.mastered_on or st.rehearsals.get(m, 0) >= st.cur.gate_config(m).max_attempts:
                continue
            drop = paired_drop(st.mastered_on[m], ev)
            if drop.significant(st.confidence(m)) and drop.after < st.gate(m):
                st.pending_rehearsal.append(m)
                decisions.append(Decision(m, "rehearse", f"forgetting: {_drop_text(drop)}, below gate {st.gate(m):.3f}",
                                          score_before=drop.before, score_after=drop.after, gate=st.gate(m),
                                          signals={"test": drop.test, "p_value": drop.p_value, "n": drop.n},
                                          n_items=drop.n))
        for w in st.order:  # a remedial branch that passed gives its origin one more try
            if st.status[w] == "waiting" and st.status.get(st.cur.nodes[w].on_fail or "") == "mastered":
                st.status[w] = "locked"
                st.attempts[w] = st.cur.gate_config(w).max_attempts - 1
                decisions.append(Decision(w, "retry", f"remedial '{st.cur.nodes[w].on_fail}' mastered; one more attempt"))
        return decisions


def _drop_text(drop: Drop) -> str:
    return f"{drop.before:.3f} → {drop.after:.3f} on the same {drop.n} items ({drop.test}, p = {drop.p_value:.3f})"


@dataclass
class FlatPolicy:
    """Baseline: one stage on every node's data mixed, then probe everything."""

    name: str = "flat"
    done: bool = False

    def baseline(self, st: RunState, observed: Observed) -> list[Decision]:
        st.record_scores(0, observed)
        return []

    def next_step(self, st: RunState) -> Step | None:
        if self.done:
            return None
        nodes = [n for n in st.order if st.status[n] != "dormant"]
        return Step("flat", FLAT, 1, st.cur.defaults.train.epochs, nodes, reason="baseline: all nodes' data in one stage")

    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]:
        raise RuntimeError(f"the flat stage failed, so there is nothing to compare: {error}")

    def observe(self, st: RunState, step: Step, stage: int, observed: Observed) -> tuple[bool, list[Decision]]:
        self.done = True
        st.record_scores(stage, observed)
        decisions = []
        for n, ev in observed.items():
            st.trained.add(n)
            call = st.call(n, ev) if ev is not None else None
            passed = call is None or call.passed
            st.status[n] = "mastered" if passed else "failed"
            verdict = call.describe(st.gate(n), st.confidence(n)) if call else "no probes"
            decisions.append(Decision.on(n, "pass", f"flat stage; {verdict}", call, st.gate(n), attempt=1,
                                         signals={"stage": stage}))
        return True, decisions


def make_policy(name: str, seed: int = 0):
    """The policy named in the YAML or on the command line."""
    if name == "gated":
        return GatedPolicy("gated", first_in_order)
    if name == "greedy":
        return GatedPolicy("greedy", largest_gap)
    if name == "bandit":
        return GatedPolicy("bandit", Exp3S(seed))
    if name == "fixed":
        return GatedPolicy("fixed", first_in_order, gates=False)
    if name == "flat":
        return FlatPolicy()
    raise ValueError(f"unknown policy '{name}' (expected gated, greedy, bandit, flat or fixed)")
