"""`policy: mix`: every stage trains a mixture of every node still to learn, and the mixture moves with the signals.

Node-by-node stages forget what earlier stages taught; one flat stage on all the data cannot focus. A mix stage
trains every *open* node (not yet settled, not dormant) together, each weighted by what is left to learn, plus
every *held* node (mastered, kept below its gate, forgotten) at a replay weight, forgotten ones at twice it;
finished nodes get nothing. The weights follow Skill-It's online update over a skills graph (Chen et al. 2023,
Algorithm 1): log w_i += eta * sum_j A_ij * gap_j, where gap_j is node j's distance to its gate on the adapter the
run continues and A holds the graph's `requires` edges (A_ii = 1, A_ij = 1 when j requires i): a prerequisite
weighs more while the nodes that require it are far from their gates. The graph orders by weight, not by waiting:
Skill-It's mixture covers every skill from its first step, and a mixture of only the nodes whose prerequisites
were settled made every chain blocked sequential training, which lost to a flat fine-tune at the same steps
(docs/benchmarks.md, "a generated chain"). After each stage every open node and every node held since it passed is probed: one that passes
drops to the replay weight; one whose budget is spent below its gate ends `below-gate` (still replayed).

`policy: skill-it` is the same loop as Skill-It has it: a held node stays in the softmax at its accumulated weight
instead of a fixed replay share (`train.replay` is not read), its own gap stops counting (a forgotten one's counts
again) while the gaps of its dependants still learning (open or forgotten) add to it, the held nodes together take at most MAX_HELD_SHARE of a
stage, and each open node is charged by its share of the whole stage, so the held nodes' examples ride on top. It
was `mix` for a day and reverted by the rule fixed before its runs (docs/benchmarks.md, "`mix` keeping a learned
node at its weight"): one seed a curriculum, ahead of `mix` on the one curriculum where both ran and differed beyond
the exam's noise, so it is a policy of its own, to be compared with `mix` on the same curriculum, seed by seed.

Everything here is a pure function of the recorded signals, so a resumed run replays its stages exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from curriculum.models.chat import Example
from curriculum.stats.evidence import paired_drop
from curriculum.policies.choosers import first_in_order
from curriculum.policies.gated import GatedPolicy, back_off, worse_on_held
from curriculum.policies.runstate import FLAT, Decision, Observed, RunState, Step
from curriculum.policies.states import SETTLED, Action, Outcome, StageKind, Status

ETA = 1.0  # Skill-It's step size on gaps in [0, 1]; chosen before any run, not tuned on results
FORGOTTEN_WEIGHT = 2.0  # a forgotten node's replay weight, in units of a held node's
MIX_ROUNDS = 3  # a stage trains at most this many check rounds before the mixture moves again
# `skill-it`: the held nodes together take at most this share of a stage. A stage is one pass over its open nodes'
# data with the held ones on top, so this bounds it at 4 such passes: a held prerequisite keeps gaining its open
# dependants' gaps, and with several of them its share heads for 1 and the stage for no end. The mirror of `mix`'s
# default replay share (0.25 held): the open nodes keep at least that. Chosen before any run of it.
MAX_HELD_SHARE = 0.75


def gap(st: RunState, node_id: str) -> float:
    """How far the node is from its gate on the adapter the run continues (0 once over it)."""
    ev = st.on_accepted(node_id)
    return max(0.0, st.gate(node_id) - (ev.score if ev is not None else 0.0))


def skill_it_step(log_w: dict[str, float], members: Sequence[str], gaps: dict[str, float],
                  dependants: dict[str, list[str]], eta: float = ETA) -> dict[str, float]:
    """One online update of the mixture's log weights: log w_i += eta * (gap_i + sum of its dependants' gaps), with
    `gaps` holding only the nodes still learning. Nodes not in the mix keep what they had (a node that leaves and
    returns resumes its weight)."""
    out = dict(log_w)
    for i in members:
        out[i] = log_w.get(i, 0.0) + eta * (gaps.get(i, 0.0) + sum(gaps.get(j, 0.0) for j in dependants.get(i, [])))
    return out


def mixture_shares(log_w: dict[str, float], open_nodes: Sequence[str], held: Sequence[str], forgotten: Sequence[str],
                   replay: float) -> dict[str, float]:
    """Each node's share of a stage's examples (they add up to 1): the open nodes split 1 - replay by the softmax
    of their log weights, the held nodes split `replay` evenly, a forgotten node counting FORGOTTEN_WEIGHT."""
    replay = replay if held and open_nodes else (1.0 if held else 0.0)
    out: dict[str, float] = {}
    if open_nodes:
        top = max(log_w.get(n, 0.0) for n in open_nodes)
        raw = {n: math.exp(log_w.get(n, 0.0) - top) for n in open_nodes}
        total = sum(raw.values())
        out |= {n: (1 - replay) * raw[n] / total for n in open_nodes}
    if held:
        raw = {m: FORGOTTEN_WEIGHT if m in forgotten else 1.0 for m in held}
        total = sum(raw.values())
        out |= {m: replay * raw[m] / total for m in held}
    return out


def _softmax(log_w: dict[str, float], nodes: Sequence[str]) -> dict[str, float]:
    top = max(log_w.get(n, 0.0) for n in nodes)
    raw = {n: math.exp(log_w.get(n, 0.0) - top) for n in nodes}
    total = sum(raw.values())
    return {n: raw[n] / total for n in nodes}


def weighted_shares(log_w: dict[str, float], members: Sequence[str], held: Sequence[str] = (),
                    max_held: float = MAX_HELD_SHARE) -> dict[str, float]:
    """`skill-it`'s shares (they add up to 1): the softmax of every member's log weight, held nodes included, with the
    `held` nodes' together capped at `max_held` while any node is open. Over the cap each group is a softmax of its
    own, scaled to its part: the same as scaling the joint softmax, but with no `1 - held share` to lose to rounding
    (a held prerequisite ~37 nats ahead made it 0, and a stage of 10^18 examples)."""
    if not members:
        return {}
    out = _softmax(log_w, members)
    held = [n for n in members if n in held]
    open_nodes = [n for n in members if n not in held]
    if held and open_nodes and sum(out[n] for n in held) > max_held:
        out = ({n: max_held * x for n, x in _softmax(log_w, held).items()}
               | {n: (1 - max_held) * x for n, x in _softmax(log_w, open_nodes).items()})
    return out


def draw_counts(shares: dict[str, float], sizes: dict[str, int], open_nodes: Sequence[str]) -> dict[str, int]:
    """Examples drawn from each node: the stage is as long as the open nodes' data (one pass on average),
    stretched so that the held nodes take their share on top; every node in the mix gets at least one."""
    open_share = sum(shares[n] for n in open_nodes) or 1.0
    total = sum(sizes[n] for n in open_nodes) / open_share if open_nodes else sum(sizes[m] for m in shares)
    return {n: max(1, round(s * total)) for n, s in shares.items()}


def draw_mixture(pools: Mapping[str, Sequence[Example]], counts: dict[str, int], seed: int) -> list[Example]:
    """The stage's examples: from each node, whole shuffled passes over its data, then a sample for the rest (so a
    node drawn 2.5 times its size is seen 2 or 3 times per example, never 0 and 5)."""
    rng = random.Random(seed)
    out: list[Example] = []
    for n in sorted(counts):
        pool = pools[n]  # a view reads only the rows it draws
        full, rest = divmod(counts[n], len(pool))
        for _ in range(full):
            out += rng.sample(pool, len(pool))
        out += rng.sample(pool, rest)
    return out


@dataclass
class MixPolicy:
    """Stages that train a moving mixture of every open node (see the module's docstring)."""

    name: str = "mix"
    held_at_weight: bool = False  # `skill-it`: held nodes keep their weights in the softmax (module docstring)
    gates: bool = True
    probes_ready: bool = False
    log_w: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)  # steps charged to each node, by its share of each stage
    stages: int = 0

    def baseline(self, st: RunState, observed: Observed) -> list[Decision]:
        """As gated: a node over its gate at baseline is mastered without training (it joins replay)."""
        return GatedPolicy(self.name, first_in_order).baseline(st, observed)

    def recheck(self, st: RunState, observed: Observed) -> list[Decision]:
        return []

    def next_step(self, st: RunState) -> Step | None:
        open_nodes = [n for n in st.order if st.status[n] == Status.LOCKED]  # prerequisites settled or not
        if not open_nodes:
            return None
        held = [m for m in st.order if st.status[m] in SETTLED and st.sizes.get(m)]
        forgotten = [m for m in held if st.status[m] == Status.FORGOTTEN]
        if self.held_at_weight:  # every member in the softmax; a mastered or below-gate node's own gap stops counting
            members, learning = open_nodes + held, {n: gap(st, n) for n in open_nodes + forgotten}
        else:
            members, learning = open_nodes, {n: gap(st, n) for n in open_nodes}
        dependants = {i: [j for j in members if i in st.cur.nodes[j].requires] for i in members}
        log_w = skill_it_step(self.log_w, members, learning, dependants)
        if self.held_at_weight:
            shares = weighted_shares(log_w, members, held)
            reason = (f"mix of {len(open_nodes)} open node(s) and {len(held)} held, weighted by the gaps to their gates"
                      + (f" ({len(forgotten)} forgotten, learning again)" if forgotten else ""))
        else:
            shares = mixture_shares(log_w, open_nodes, held, forgotten, st.cur.defaults.train.replay)
            reason = (f"mix of {len(open_nodes)} open node(s) by their gaps to the gate, {len(held)} held in replay"
                      + (f" ({len(forgotten)} forgotten, at twice the weight)" if forgotten else ""))
        counts = draw_counts(shares, st.sizes, open_nodes)
        charged = self._charged(counts, open_nodes)
        left = {n: max(0.0, st.budgets[n] - self.spent.get(n, 0.0)) for n in open_nodes}
        budget = max(1, math.ceil(min(left[n] * charged / counts[n] for n in open_nodes)))
        return Step(StageKind.MIX, FLAT, self.stages + 1, list(open_nodes), held, reason,
                    signals={"weights": {n: round(shares[n], 4) for n in shares},
                             "gaps": {n: round(g, 4) for n, g in learning.items()}, "log_w": log_w},
                    parent=st.accepted_stage, mixture=counts, weights=shares, budget=budget)

    def _charged(self, counts: dict[str, int], open_nodes: Sequence[str]) -> int:
        """The examples a stage's steps are charged over: the open nodes' (`mix`: replay rides along free, as in a
        node-by-node stage) or the whole stage's (`skill-it`: the held nodes ride on top of each open node's share,
        so a run may take more steps than its nodes' budgets add up to; the plain fine-tune it is compared with gets
        the same steps)."""
        return sum(counts.values()) if self.held_at_weight else sum(counts[n] for n in open_nodes)

    def observe(self, st: RunState, step: Step, stage: int, observed: Observed,
                trained: dict[str, Any] | None = None) -> tuple[Outcome, list[Decision]]:
        trained = trained or {}
        self._charge(st, step, int(trained.get("steps") or 0))
        before = {n: st.on_accepted(n) for n in observed}
        st.record(stage, observed)
        worse = worse_on_held(st, observed, None, None)
        gained = [n for n in step.data_nodes if (b := before.get(n)) is not None and (o := observed.get(n)) is not None
                  and paired_drop(o, b).significant(st.confidence(n))]
        signals = {"stage": stage, "scores": {m: e.score for m, e in observed.items() if e is not None},
                   "stop_reason": trained.get("stop_reason"), "steps": trained.get("steps")}
        if worse and not gained:  # the stage cost what the run held and taught the frontier nothing: back off
            decisions = [Decision(FLAT, Action.BACK_OFF, f"the mix made {', '.join(worse)} significantly worse and no "
                                  "frontier node significantly better: adapter discarded, parent's kept",
                                  step.attempt, signals={**signals, "worse": worse})]
            for n in step.data_nodes:  # a node skipped by a prerequisite's strict back-off above is done with
                if st.status[n] == Status.LOCKED and self._out_of_budget(st, n):
                    kept = st.on_accepted(n)
                    decisions += self._spent_below(st, n, st.call(n, kept) if kept is not None else None, step)
            return Outcome.DISCARDED, decisions
        st.keep(stage)
        decisions = []
        calls = {n: st.call(n, ev) if (ev := observed.get(n)) is not None else None for n in step.data_nodes}
        # passes first: a node that passed in this stage keeps its pass whatever its prerequisites' calls below
        # (as one that passed a stage earlier does), so the end does not hang on the order of the loop
        for n, call in calls.items():
            if call is None or call.passed:
                st.status[n] = Status.MASTERED
                if (ev := observed.get(n)) is not None:
                    st.mastered_on[n] = ev
                verdict = call.describe(st.gate(n), st.confidence(n)) if call else "no probes"
                decisions.append(Decision.on(n, Action.PASS, f"{verdict}; {self._kept_as}", call, st.gate(n), attempt=st.attempts[n],
                                             before=b.score if (b := before.get(n)) else None, signals=signals))
        for n, call in calls.items():  # a node skipped by a prerequisite's strict back-off above is done with
            if st.status[n] == Status.LOCKED and self._out_of_budget(st, n):
                decisions += self._spent_below(st, n, call, step)
        return Outcome.DONE, decisions + self._held(st, observed)

    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]:
        """A mix stage that raised (bad data, out of memory after retries, each retried first): every open node was
        in it, so every one backs off (`failed`, what requires it skipped) and the run ends with what it holds."""
        decisions: list[Decision] = []
        for n in step.data_nodes:
            if st.status[n] != Status.LOCKED:
                continue
            st.attempts[n] = st.attempts.get(n, 0) + 1
            decisions += back_off(st, n, Decision(n, Action.BACK_OFF, f"mix stage {stage} failed: {error}", st.attempts[n],
                                                  st.latest(n), None, st.gate(n), {"stage": stage, "error": error}))
        self.log_w = step.signals["log_w"]
        self.stages += 1
        return decisions

    def _charge(self, st: RunState, step: Step, steps: int) -> None:
        """The stage's steps are charged to the open nodes by their share of what it charges over (`_charged`), and
        the update of the weights is committed."""
        self.log_w = step.signals["log_w"]
        self.stages += 1
        charged = self._charged(step.mixture, step.data_nodes)
        for n in step.data_nodes:
            self.spent[n] = self.spent.get(n, 0.0) + steps * step.mixture[n] / charged
            st.spent[n] = round(self.spent[n])
            st.attempts[n] = st.attempts.get(n, 0) + 1
            st.trained.add(n)

    @property
    def _kept_as(self) -> str:
        """What becomes of a node that passes, as its decision says it."""
        return "stays in the mix, its own gap no longer adding weight" if self.held_at_weight else "drops to the replay weight"

    def _out_of_budget(self, st: RunState, n: str) -> bool:
        """What is left would not pay for the shortest round (`round_steps`) even with a stage to itself. The stage's
        own round is no measure of that: a first stage's round is one pass over every open node's data, longer than
        most nodes' budgets (measured by it, a node was called spent with half its budget left); and every node
        kept open can pay for a next stage of at least `round_steps` whatever its share there (no 1-step stages)."""
        return st.budgets[n] - self.spent.get(n, 0.0) < st.train_config(n).round_steps

    def _spent_below(self, st: RunState, n: str, call, step: Step) -> list[Decision]:
        """Budget spent under the gate: `below-gate` (still replayed; under `skill-it` held at its weight) or, for a
        `required` gate, the
        strict back-off; an `on_fail` branch still opens."""
        verdict = call.describe(st.gate(n), st.confidence(n)) if call else "no probes"
        why = f"{verdict}; its budget is spent ({round(self.spent.get(n, 0.0))} of {st.budgets[n]} steps)"
        if st.cur.gate_config(n).required:
            return back_off(st, n, Decision.on(n, Action.BACK_OFF, f"{why}; its gate is required", call, st.gate(n),
                                               attempt=st.attempts.get(n)))
        st.status[n] = Status.BELOW_GATE
        decisions = [Decision.on(n, Action.BELOW_GATE, f"{why}; {'stays in the mix, held' if self.held_at_weight else 'stays in replay'}", call,
                                 st.gate(n), attempt=st.attempts.get(n))]
        remedial = st.cur.nodes[n].on_fail
        if remedial and st.status.get(remedial) == Status.DORMANT:
            st.status[remedial] = Status.LOCKED
            decisions.append(Decision(n, Action.BRANCH, f"remedial branch '{remedial}' joins the mix"))
        return decisions

    def _held(self, st: RunState, observed: Observed) -> list[Decision]:
        """Held nodes after a kept stage: a mastered one that fell significantly below its gate is forgotten
        (`mix`: replayed at twice the weight; `skill-it`: its gap counts in the weights again); a forgotten one back over its gate on the same items is mastered again."""
        decisions = []
        for m, ev in observed.items():
            if ev is None or m not in st.mastered_on:
                continue
            if st.status[m] == Status.MASTERED:
                drop = paired_drop(st.mastered_on[m], ev)
                if drop.significant(st.confidence(m)) and drop.after < st.gate(m):
                    st.status[m] = Status.FORGOTTEN
                    decisions.append(Decision(m, Action.REHEARSE, f"forgetting: {drop.before:.3f} → {drop.after:.3f} on the "
                                              f"same {drop.n} items ({drop.test}, p = {drop.p_value:.3f}); "
                                              + ("its gap counts in the weights again" if self.held_at_weight
                                                 else "replayed at twice the weight"), score_before=drop.before, score_after=drop.after,
                                              gate=st.gate(m), n_items=drop.n))
            elif st.status[m] == Status.FORGOTTEN:
                call = st.call(m, ev.restricted(sorted(st.mastered_on[m].items)))
                if call.passed:
                    st.status[m] = Status.MASTERED
                    decisions.append(Decision.on(m, Action.PASS, "recovered its gate in the mix: "
                                                 + call.describe(st.gate(m), st.confidence(m)), call, st.gate(m)))
        return decisions

