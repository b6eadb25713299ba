"""The run's vocabulary: a node's status, a decision's action, a stage's kind and what becomes of its adapter.

String enums, so a value is the very text the warehouse stores and the report prints (`Status.BELOW_GATE ==
"below-gate"`), and a misspelt state is an AttributeError at import instead of a branch that never runs.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a node stands; `RunState.status` holds one per node and the flow records it after every stage."""

    LOCKED = "locked"  # its requirements are not settled yet
    DORMANT = "dormant"  # a remedial (`on_fail`) node no failure has called for
    WAITING = "waiting"  # its remedial branch trains first; then it gets one more attempt
    MASTERED = "mastered"  # its gate call passed
    TRAINED = "trained"  # trained without gates (fixed, flat)
    FORGOTTEN = "forgotten"  # was mastered, fell significantly and below its gate
    BELOW_GATE = "below-gate"  # its budget is spent under its gate; it stays in replay and the graph goes on
    FAILED = "failed"  # a `required` gate failed (or its stage could not run)
    SKIPPED = "skipped"  # a prerequisite failed a `required` gate


# statuses whose node has been trained (once): its children may go
SETTLED = (Status.MASTERED, Status.TRAINED, Status.FORGOTTEN, Status.BELOW_GATE)


class Action(StrEnum):
    """What the policy decided, one row of the warehouse's decisions table each."""

    TRAIN = "train"
    PASS = "pass"
    FAIL = "fail"
    KEEP = "keep"
    RETRY = "retry"
    BRANCH = "branch"
    BACK_OFF = "back-off"
    BELOW_GATE = "below-gate"
    REHEARSE = "rehearse"
    FORGOTTEN = "forgotten"
    SKIP = "skip"
    GATE = "gate"  # a `min_score: auto` gate fixed at baseline
    INHERIT = "inherit"  # --from: a node's status carried over from the parent run
    DROP = "drop"  # --from: a node the edited graph no longer has
    SCHEDULE = "schedule"  # --from: a node the edit made (or left) to train


class StageKind(StrEnum):
    """What a stage trains on."""

    TRAIN = "train"  # one node's data (plus folded replay)
    REHEARSE = "rehearse"  # a consolidation round over held nodes
    FLAT = "flat"  # every node's data at once: the plain fine-tune
    MIX = "mix"  # a moving mixture of the frontier and replay
    CONSOLIDATE = "consolidate"  # the closing round over every held node's data (`consolidate`)
    FINAL = "final"  # the closing sweep: trains nothing, probes every node on all its items


class Outcome(StrEnum):
    """What becomes of a stage and its adapter: the status of its row in the warehouse's stages table."""

    TRAINED = "trained"  # trained and probed; the policy has not decided yet (a row killed here is redone)
    DONE = "done"  # the run goes on from it
    RETRIED = "retried"  # the retry continues it; the run does not
    DISCARDED = "discarded"
    FAILED = "failed"  # the stage could not run: no adapter
