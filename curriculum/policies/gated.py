"""The gated family: `gated`, `greedy`, `bandit`, `random` and `fixed`, one state machine that differs only in which
ready node it picks (curriculum/policies/choosers.py).

A node trains until its gate is met; a failed gate retries with a fresh budget, takes the node's remedial branch,
goes on below its gate or backs off, and skips what requires a node that failed; a stage that made a mastered node
significantly worse is discarded and rehearsed. Everything here is deterministic given the scores and the seed, so a
resumed run replays its recorded stages through the same state machine and lands exactly where it stopped.

Why it is long: retry, remedial branch, back-off, rehearse and drift are one state machine that every policy of
the family shares; split, each part would reach into the others' state. `mix` builds on its decisions
(back_off, worse_on_held).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curriculum.policies.choosers import Chooser, Exp3S, largest_gap, paired_progress
from curriculum.policies.drift import Drift
from curriculum.stats.evidence import Drop, Evidence, GateCall, paired_drop
from curriculum.policies.runstate import FLAT, Decision, Observed, RunState, Step
from curriculum.policies.states import SETTLED, Action, Outcome, StageKind, Status


@dataclass
class GatedPolicy:
    """Gate rules: pass unlocks children; a failed gate is retried from where the stage stood while the node's
    budget lasts and its checks still improve, then on_fail, else back-off."""

    name: str
    choose: Chooser
    gates: bool = True

    @property
    def probes_ready(self) -> bool:
        """Whether the flow must probe ready nodes after each kept stage (the chooser ranks by their scores)."""
        return self.choose is largest_gap or isinstance(self.choose, Exp3S)

    def baseline(self, st: RunState, observed: Observed) -> list[Decision]:
        st.record(0, observed)
        decisions: list[Decision] = []
        if not self.gates:
            return decisions
        for n in st.order:
            ev = observed.get(n)
            if st.status[n] != Status.LOCKED or ev is None:
                continue
            call = st.call(n, ev)
            if call.passed:
                st.status[n] = Status.MASTERED
                st.mastered_on[n] = ev
                decisions.append(Decision.on(n, Action.PASS, f"over its gate at baseline, not trained: "
                                             f"{call.describe(st.gate(n), st.confidence(n))}", call, st.gate(n),
                                             signals={"stage": 0}))
        return decisions

    def next_step(self, st: RunState) -> Step | None:
        ready = st.ready()
        held = [m for m in st.order if st.status[m] in SETTLED]  # mastered, forgotten, or kept below its gate
        if st.pending_rehearsal and not ready:  # nothing to fold it into: consolidate, every learned node's data at once
            n, others = st.pending_rehearsal[0], st.pending_rehearsal[1:]
            rest = [m for m in held if m not in st.pending_rehearsal]
            return Step(StageKind.REHEARSE, n, st.rehearsals.get(n, 0) + 1, [n, *others, *rest], [],
                        f"significant drop below its gate ({st.latest(n):.3f} < {st.gate(n):.3f}); consolidating with "
                        f"all {1 + len(others) + len(rest)} learned nodes' data", parent=st.accepted_stage, rehearse_nodes=others)
        if not ready:
            return self._closing(st, held)
        n, reason, signals = self.choose(st, ready)
        attempt = st.attempts.get(n, 0) + 1
        parent = st.continue_from.get(n, st.accepted_stage)
        if n in st.continue_from:
            reason = f"attempt {attempt}, continuing stage {parent} ({st.spent.get(n, 0)} steps spent)"
        folded = [m for m in st.pending_rehearsal if m != n]
        cfg = st.train_config(n)
        replay = [m for m in held if m != n and m not in folded] if cfg.replay or cfg.replay_each else []
        if folded:
            reason += f"; rehearsing {', '.join(folded)} in the same stage"
        return Step(StageKind.TRAIN, n, attempt, [n, *folded], replay, reason=reason, signals={"ready": ready, **signals},
                    parent=parent, spent=st.spent.get(n, 0), rehearse_nodes=folded)

    def _closing(self, st: RunState, held: list[str]) -> Step | None:
        """`consolidate`: once nothing is left to train, one round over every held node's data, so the nodes the
        later stages pushed aside are seen again together (what a flat stage does for all of them), before the end."""
        if st.consolidated or st.accepted_stage is None or len(held) < 2 or not st.train_config().consolidate:
            return None
        return Step(StageKind.CONSOLIDATE, FLAT, 1, held, [], f"closing consolidation: one round over the {len(held)} "
                    "held nodes' data", parent=st.accepted_stage)

    def observe(self, st: RunState, step: Step, stage: int, observed: Observed,
                trained: dict[str, Any] | None = None) -> tuple[Outcome, list[Decision]]:
        """Digest a stage's probe items: what becomes of its adapter, and the decisions taken.

        trained: the stage's record (its `stages` row, the same live and on resume): `steps` and `stop_reason` (why
        its rounds stopped: gate-met, plateau, budget), `budget` and `round_steps` (a retry needs one round left).
        """
        n = step.node_id
        trained = trained or {}
        if step.kind == StageKind.CONSOLIDATE:
            return self._consolidated(st, stage, observed, trained)
        before_ev = st.on_accepted(n)
        before = before_ev.score if before_ev else None
        st.record(stage, observed)
        ev, gate = observed.get(n), st.gate(n)
        call = st.call(n, ev) if ev is not None else None
        passed = call is None or call.passed
        verdict = "no probes" if call is None else call.describe(gate, st.confidence(n))
        signals = {"stage": stage, "scores": {m: e.score for m, e in observed.items() if e is not None},
                   "verdict": call.verdict if call else None, "decided_on_point": call.decided_on_point if call else None,
                   "stop_reason": trained.get("stop_reason"), "steps": trained.get("steps")}
        if (drifted := self._drifted(st, step, stage, trained)) is not None:
            return Outcome.DISCARDED, drifted
        if step.kind == StageKind.REHEARSE:
            return self._rehearsed(st, step, stage, observed, call, signals)
        if isinstance(self.choose, Exp3S):
            self.choose.reward(n, paired_progress(before_ev, ev))
        st.attempts[n] = step.attempt
        st.trained.add(n)
        st.spent[n] = step.spent + int(trained.get("steps") or 0)
        if passed or not self.gates:
            st.status[n] = Status.MASTERED if passed else Status.TRAINED  # without gates, children unlock either way
            st.continue_from.pop(n, None)
            if passed and ev is not None:
                st.mastered_on[n] = ev
            st.keep(stage)
            reason = verdict if passed else f"{verdict}; no gates in this policy"
            decisions = [Decision.on(n, Action.PASS, reason, call, gate, attempt=step.attempt, before=before, signals=signals)]
            if self.gates:
                decisions += self._folded(st, step, observed) + self._forgetting(st, observed, exclude=n)
            return Outcome.DONE, decisions
        limit = st.cur.gate_config(n).max_attempts + st.extra_attempts.get(n, 0)
        stop = trained.get("stop_reason")
        left = (trained["budget"] - int(trained.get("steps") or 0)) if trained.get("budget") is not None else None
        if stop != "budget" and left is not None and left < (trained.get("round_steps") or 1):
            stop = "budget"  # what is left would not buy one more round: a retry would only cost its probes
        if stop != "budget" and step.attempt < limit:
            how = f"stopped by {stop}" if stop else ""
            st.continue_from[n] = stage
            return Outcome.RETRIED, [Decision.on(n, Action.RETRY, f"{verdict}; {how}; attempt {step.attempt} of {limit}, continuing "
                                           f"this stage's adapter ({st.spent[n]} steps spent)", call, gate,
                                           attempt=step.attempt, before=before, signals=signals)]
        st.continue_from.pop(n, None)
        why = ("its budget is spent" if left is None or left <= 0 else f"its budget is spent ({left} steps left, "
               f"under one round of {trained.get('round_steps')})") if stop == "budget" else f"progress stopped ({stop}) on attempt {step.attempt} of {limit}"
        on_fail = st.cur.nodes[n].on_fail
        if on_fail and n not in st.branched and st.status.get(on_fail) == Status.DORMANT:
            st.branched.add(n)
            st.status[on_fail] = Status.LOCKED
            st.status[n] = Status.WAITING
            return Outcome.DISCARDED, [Decision.on(n, Action.BRANCH, f"{verdict}; {why}; taking remedial branch '{on_fail}', "
                                             "then one more attempt", call, gate, attempt=step.attempt, before=before,
                                             signals=signals)]
        if not st.cur.gate_config(n).required:  # an unmet gate does not end the graph: the node goes on below it
            return self._below_gate(st, step, stage, observed, call, before_ev, f"{verdict}; {why}", signals)
        gain = paired_drop(ev, before_ev) if ev is not None and before_ev is not None else None  # did it go up?
        if st.cur.gate_config(n).keep_progress and gain is not None and gain.significant(st.confidence(n)):
            st.status[n] = Status.TRAINED
            st.keep(stage)
            decisions = [Decision.on(n, Action.KEEP, f"{verdict}; {why}; but it learned: {_drop_text(gain, 'rose')}; adapter "
                                     "kept below its gate, dependants go on", call, gate, attempt=step.attempt,
                                     before=before, signals={**signals, "gain_p": gain.p_value})]
            return Outcome.DONE, decisions + self._folded(st, step, observed) + self._forgetting(st, observed, exclude=n)
        return Outcome.DISCARDED, self._back_off(st, n, Decision.on(n, Action.BACK_OFF, f"{verdict}; {why}; adapter discarded, "
                                                              "parent's kept", call, gate, attempt=step.attempt,
                                                              before=before, signals=signals))

    def _below_gate(self, st: RunState, step: Step, stage: int, observed: Observed, call: GateCall | None,
                    before_ev: Evidence | None, why: str, signals: dict[str, Any]) -> tuple[Outcome, list[Decision]]:
        """A node whose budget is spent under its gate (not `required`): recorded `below-gate` with its score, kept
        in replay, its dependants go on. Its adapter is kept unless the stage made the model significantly worse on
        what it held (its own items, or a mastered node's, below the gate), or `keep_progress: false`."""
        n, gate = step.node_id, st.gate(step.node_id)
        worse = worse_on_held(st, observed, before_ev, n)
        keep = st.cur.gate_config(n).keep_progress and not worse
        st.status[n] = Status.BELOW_GATE
        before = before_ev.score if before_ev else None
        extra = below_gate_dependants(st, n)
        if keep:
            st.keep(stage)
            decisions = [Decision.on(n, Action.KEEP, f"{why}; adapter kept below its gate, dependants go on", call, gate,
                                     attempt=step.attempt, before=before, signals=signals)]
            return Outcome.DONE, decisions + extra + self._folded(st, step, observed) + self._forgetting(st, observed, exclude=n)
        cause = f"it made {', '.join(worse)} significantly worse" if worse else "keep_progress: false"
        return Outcome.DISCARDED, [Decision.on(n, Action.BACK_OFF, f"{why}; adapter discarded ({cause}), parent's kept; the node "
                                         "stays below its gate in replay, dependants go on", call, gate,
                                         attempt=step.attempt, before=before, signals=signals), *extra]

    def _consolidated(self, st: RunState, stage: int, observed: Observed,
                      trained: dict[str, Any]) -> tuple[Outcome, list[Decision]]:
        """The closing consolidation: kept unless it made a held node significantly worse (a paired test on the same
        items: a mastered node against the items it was mastered on and below its gate, any other against the
        adapter the run had); a held node it brings over its gate is mastered."""
        before = {m: st.on_accepted(m) for m in observed}
        st.record(stage, observed)
        st.consolidated = True
        worse = worse_on_held(st, observed, None, None)
        for m, ev in observed.items():
            was = before.get(m)
            if m in worse or ev is None or was is None or st.status.get(m) == Status.MASTERED:
                continue
            if paired_drop(was, ev).significant(st.confidence(m)):
                worse.append(m)
        signals = {"stage": stage, "scores": {m: e.score for m, e in observed.items() if e is not None},
                   "steps": trained.get("steps")}
        if worse:
            return Outcome.DISCARDED, [Decision(FLAT, Action.BACK_OFF, f"closing consolidation made {', '.join(worse)} "
                                                "significantly worse; adapter discarded, the run ends on its parent",
                                                signals=signals)]
        st.keep(stage)
        decisions = [Decision(FLAT, Action.KEEP, "closing consolidation kept: no held node significantly worse",
                              signals=signals)]
        for m, ev in observed.items():
            if ev is None or not self.gates or st.status.get(m) not in (Status.BELOW_GATE, Status.FORGOTTEN):
                continue
            call = st.call(m, ev)
            if call.passed:
                st.status[m] = Status.MASTERED
                st.mastered_on[m] = ev
                decisions.append(Decision.on(m, Action.PASS, "over its gate after the closing consolidation: "
                                             + call.describe(st.gate(m), st.confidence(m)), call, st.gate(m)))
        return Outcome.DONE, decisions

    def _drifted(self, st: RunState, step: Step, stage: int, trained: dict[str, Any]) -> list[Decision] | None:
        """`max_drift`: a stage that cost the base model's own answers clearly more than the node's gate allows
        is a failed stage for its node, whatever its probes say (None: within the limit, or not measured)."""
        limit = st.cur.gate_config(step.node_id).max_drift if self.gates else None
        drift = Drift.from_row(trained)
        if limit is None or drift is None or not drift.beyond(limit, st.confidence(step.node_id)):
            return None
        confidence = st.confidence(step.node_id)
        why = (f"drift {drift.describe()}: its {confidence:.0%} upper bound {drift.upper(confidence):+.3f} is below "
               f"{-limit:+.3f} (max_drift {limit:g})")
        decisions = self.stage_failed(st, step, stage, why)
        decisions[0].signals.update(drift=drift.mean, drift_n=drift.n, max_drift=limit)
        return decisions

    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]:
        """A stage that raised (bad data, out of memory): its node backs off, the run goes on."""
        n = step.node_id
        if step.kind == StageKind.CONSOLIDATE:  # the run ends on the adapter it had
            st.consolidated = True
            return [Decision(FLAT, Action.BACK_OFF, f"closing consolidation stage {stage} failed: {error}")]
        if step.kind == StageKind.REHEARSE:
            return self._rehearsal_spent(st, n, Decision(n, Action.SKIP, f"rehearsal stage {stage} failed: {error}", step.attempt))
        st.attempts[n] = step.attempt
        st.continue_from.pop(n, None)
        return self._back_off(st, n, Decision(n, Action.BACK_OFF, f"stage {stage} failed: {error}", step.attempt, st.latest(n),
                                              None, st.gate(n), {"stage": stage, "error": error}))

    def recheck(self, st: RunState, observed: Observed) -> list[Decision]:
        """Mastered nodes a run inherited (`--from`), probed on the adapter it continues: one that no longer
        holds is rehearsed, by the very test that catches forgetting after a stage."""
        return self._forgetting(st, observed, exclude="") if self.gates else []

    def _rehearsed(self, st: RunState, step: Step, stage: int, observed: Observed, call: GateCall | None,
                   signals: dict[str, Any]) -> tuple[Outcome, list[Decision]]:
        """A rehearsal stage of its own: kept only when the node recovered its gate."""
        n = step.node_id
        verdict = "no probes" if call is None else call.describe(st.gate(n), st.confidence(n))
        if call is None or call.passed:
            st.pending_rehearsal.remove(n)
            st.status[n] = Status.MASTERED
            st.rehearsals[n] = step.attempt
            st.keep(stage)
            decisions = [Decision.on(n, Action.PASS, f"recovered its gate after rehearsal: {verdict}", call, st.gate(n),
                                     attempt=step.attempt, signals=signals)]
            return Outcome.DONE, decisions + self._folded(st, step, observed) + self._forgetting(st, observed, exclude=n)
        return Outcome.DISCARDED, self._rehearsal_spent(st, n, Decision.on(
            n, Action.SKIP, f"still below its gate after rehearsal {step.attempt}: {verdict}; rehearsal adapter discarded",
            call, st.gate(n), attempt=step.attempt, signals=signals))

    def _rehearsal_spent(self, st: RunState, n: str, decision: Decision) -> list[Decision]:
        """Count a rehearsal that did not recover the node; past max_rehearsals the node stays forgotten."""
        st.rehearsals[n] = st.rehearsals.get(n, 0) + 1
        decisions = [decision]
        if st.rehearsals[n] >= st.cur.gate_config(n).max_rehearsals:
            st.pending_rehearsal.remove(n)
            decisions.append(Decision(n, Action.FORGOTTEN, f"below its gate after {st.rehearsals[n]} rehearsal(s); left "
                                      "forgotten (max_rehearsals)", gate=st.gate(n)))
        return decisions

    def _folded(self, st: RunState, step: Step, observed: Observed) -> list[Decision]:
        """Forgotten nodes whose data rode along in this kept stage: recovered, or one rehearsal spent."""
        decisions = []
        for m in step.rehearse_nodes:
            if m not in st.pending_rehearsal:
                continue
            ev = observed.get(m)
            call = st.call(m, ev.restricted(sorted(st.mastered_on[m].items))) if ev is not None and m in st.mastered_on else None
            if call is None or call.passed:
                st.pending_rehearsal.remove(m)
                st.status[m] = Status.MASTERED
                st.rehearsals[m] = st.rehearsals.get(m, 0) + 1
                decisions.append(Decision.on(m, Action.PASS, "recovered its gate, rehearsed within this stage: "
                                             + (call.describe(st.gate(m), st.confidence(m)) if call else "no probes"),
                                             call, st.gate(m)))
            else:
                decisions += self._rehearsal_spent(st, m, Decision.on(
                    m, Action.SKIP, f"still below its gate after a rehearsal within this stage: "
                    f"{call.describe(st.gate(m), st.confidence(m))}", call, st.gate(m)))
        return decisions

    def _back_off(self, st: RunState, n: str, decision: Decision) -> list[Decision]:
        return back_off(st, n, decision)

    def _forgetting(self, st: RunState, observed: Observed, exclude: str) -> list[Decision]:
        """A mastered node is rehearsed when its items dropped significantly since it was mastered (a paired
        test on the same items) and its score on them is now below its gate: probe noise alone never triggers it."""
        decisions = []
        for m, ev in observed.items():
            if m == exclude or ev is None or st.status.get(m) != Status.MASTERED or m in st.pending_rehearsal:
                continue
            if m not in st.mastered_on or st.rehearsals.get(m, 0) >= st.cur.gate_config(m).max_rehearsals:
                continue
            drop = paired_drop(st.mastered_on[m], ev)
            if drop.significant(st.confidence(m)) and drop.after < st.gate(m):
                st.pending_rehearsal.append(m)
                st.status[m] = Status.FORGOTTEN
                decisions.append(Decision(m, Action.REHEARSE, f"forgetting: {_drop_text(drop)}, below gate {st.gate(m):.3f}",
                                          score_before=drop.before, score_after=drop.after, gate=st.gate(m),
                                          signals={"test": drop.test, "p_value": drop.p_value, "n": drop.n},
                                          n_items=drop.n))
        for w in st.order:  # a remedial branch that passed gives its origin one more try, from the new adapter
            if st.status[w] == Status.WAITING and st.status.get(st.cur.nodes[w].on_fail or "") == Status.MASTERED:
                st.status[w] = Status.LOCKED
                st.extra_attempts[w] = st.attempts.get(w, 0) + 1 - st.cur.gate_config(w).max_attempts
                st.spent[w] = 0
                decisions.append(Decision(w, Action.RETRY, f"remedial '{st.cur.nodes[w].on_fail}' mastered; one more "
                                          f"attempt (attempt {st.attempts.get(w, 0) + 1}) with a fresh budget"))
        return decisions


def back_off(st: RunState, n: str, decision: Decision) -> list[Decision]:
    """The node failed for good: everything that requires it is skipped (a `required` gate, or a stage that raised)."""
    st.status[n] = Status.FAILED
    decisions = [decision]
    for d in st.descendants(n):
        if st.status[d] in (Status.LOCKED, Status.DORMANT, Status.WAITING):
            st.status[d] = Status.SKIPPED
            decisions.append(Decision(d, Action.SKIP, f"requires '{n}', which failed"))
    for waiting, remedial in ((w, st.cur.nodes[w].on_fail) for w in st.order if st.status[w] == Status.WAITING):
        if remedial == n:
            decisions += back_off(st, waiting, Decision(waiting, Action.BACK_OFF, f"its remedial branch '{n}' failed"))
    return decisions


def below_gate_dependants(st: RunState, n: str) -> list[Decision]:
    """Origins waiting on `n` as their remedial branch go on below their gate too (the branch did not save them)."""
    decisions = []
    for w in st.order:
        if st.status[w] == Status.WAITING and st.cur.nodes[w].on_fail == n:
            st.status[w] = Status.BELOW_GATE
            decisions.append(Decision(w, Action.BELOW_GATE, f"its remedial branch '{n}' ended below its gate; "
                                      "it stays below its own, dependants go on", gate=st.gate(w)))
    return decisions


def worse_on_held(st: RunState, observed: Observed, before_ev: Evidence | None, n: str | None) -> list[str]:
    """Nodes this stage made significantly worse (a paired test on the same items): the trained node against its
    score before the stage, and every mastered node, below its gate, against the items it was mastered on."""
    worse = []
    if n is not None and before_ev is not None and (ev := observed.get(n)) is not None:
        drop = paired_drop(before_ev, ev)
        if drop.significant(st.confidence(n)):
            worse.append(n)
    for m, ev in observed.items():
        if m == n or ev is None or st.status.get(m) != Status.MASTERED or m not in st.mastered_on:
            continue
        drop = paired_drop(st.mastered_on[m], ev)
        if drop.significant(st.confidence(m)) and drop.after < st.gate(m):
            worse.append(m)
    return worse


def _drop_text(drop: Drop, moved: str = "fell") -> str:
    """A paired comparison in words; for a gain the test ran with the stages swapped, so the numbers are too."""
    then, now = (drop.before, drop.after) if moved == "fell" else (drop.after, drop.before)
    return f"{then:.3f} → {now:.3f} on the same {drop.n} items ({drop.test}, p = {drop.p_value:.3f})"
