"""The plain fine-tune as a policy: one stage on every node's data, the fair baseline a curriculum must beat."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curriculum.policies.runstate import FLAT, Decision, Observed, RunState, Step
from curriculum.policies.states import Action, Outcome, StageKind, Status


@dataclass
class FlatPolicy:
    """Baseline: one stage on every node's data mixed (the curriculum's default training settings), then
    probe everything. Its stage is sized like any other: it stops once every gate holds on its check."""

    name: str = "flat"
    done: bool = False
    probes_ready: bool = False
    gates: bool = True  # its end state is judged against every gate

    def baseline(self, st: RunState, observed: Observed) -> list[Decision]:
        st.record(0, observed)
        return []

    def next_step(self, st: RunState) -> Step | None:
        if self.done:
            return None
        nodes = [n for n in st.order if st.status[n] != Status.DORMANT]
        return Step(StageKind.FLAT, FLAT, 1, nodes, reason="baseline: all nodes' data in one stage")

    def recheck(self, st: RunState, observed: Observed) -> list[Decision]:
        return []

    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]:
        raise RuntimeError(f"the flat stage failed, so there is nothing to compare: {error}")

    def observe(self, st: RunState, step: Step, stage: int, observed: Observed,
                trained: dict[str, Any] | None = None) -> tuple[Outcome, list[Decision]]:
        self.done = True
        st.record(stage, observed)
        st.keep(stage)
        decisions = []
        for n, ev in observed.items():
            st.trained.add(n)
            st.attempts[n] = 1
            call = st.call(n, ev) if ev is not None else None
            passed = call is None or call.passed
            st.status[n] = Status.MASTERED if passed else Status.FAILED
            verdict = call.describe(st.gate(n), st.confidence(n)) if call else "no probes"
            decisions.append(Decision.on(n, Action.PASS if passed else Action.FAIL, f"flat stage; {verdict}", call, st.gate(n),
                                         attempt=1, signals={"stage": stage, **{k: (trained or {}).get(k) for k in (
                                             "steps", "tokens", "rounds", "stop_reason", "budget", "train_loss")}}))
        return Outcome.DONE, decisions
