"""The verdicts at the end of a run, from the final sweep over every item: the same for every policy."""

from __future__ import annotations

from curriculum.policies.runstate import Decision, Observed, RunState
from curriculum.policies.states import Action, Status


def final_verdicts(st: RunState, observed: Observed) -> list[Decision]:
    """The final sweep is evidence too: a node the policy holds as mastered whose full-pool score is clearly under
    its gate (the upper bound below it) is not reported mastered; it ends `below-gate`."""
    decisions = []
    for n, ev in observed.items():
        if ev is None or st.status.get(n) != Status.MASTERED:
            continue
        call = st.call(n, ev)
        if call.verdict == "fail":
            st.status[n] = Status.BELOW_GATE
            decisions.append(Decision.on(n, Action.BELOW_GATE, f"final sweep on all items: "
                                         f"{call.describe(st.gate(n), st.confidence(n))}; not reported mastered",
                                         call, st.gate(n)))
    return decisions
