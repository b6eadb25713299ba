"""What a run knows and the words a policy answers in: the stage to run (Step), a decision (Decision), the
run's state (RunState) and what the flow asks of a policy (the Policy protocol).

Kept apart from the policies themselves so that the flow, `--from` and every policy share one state and one
vocabulary without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from curriculum.stats.evidence import Evidence, GateCall, gate_call
from curriculum.graph.spec import Curriculum, TrainConfig
from curriculum.policies.states import SETTLED, Action, Outcome, StageKind, Status

FLAT = "*"
Observed = dict[str, Evidence | None]  # node -> its items at this stage (None: the node has no probes)


@dataclass
class Step:
    """A stage to run: train `node_id` (or every node, for flat) on these nodes' data."""

    kind: StageKind
    node_id: str
    attempt: int
    data_nodes: list[str]
    replay_nodes: list[str] = field(default_factory=list)
    reason: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None  # the stage whose adapter it continues (None: the base model)
    spent: int = 0  # optimizer steps the node has spent on this chain of attempts (its budget counts them)
    rehearse_nodes: list[str] = field(default_factory=list)  # forgotten nodes whose data is folded into this stage
    mixture: dict[str, int] = field(default_factory=dict)  # mix: examples drawn from each node for this stage
    weights: dict[str, float] = field(default_factory=dict)  # mix: each node's share of the mixture
    budget: int | None = None  # mix: the stage's optimizer steps (the policy sizes it from the nodes' budgets)


@dataclass
class Decision:
    node_id: str | None
    action: Action
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
    def on(cls, node_id: str, action: Action, reason: str, call: GateCall | None, gate: float | None, *,
           attempt: int | None = None, before: float | None = None, signals: dict[str, Any] | None = None) -> Decision:
        """A decision that carries the gate call's score, item count and interval."""
        return cls(node_id, action, reason, attempt, before, call.score if call else None, gate, signals or {},
                   call.n if call else None, call.low if call else None, call.high if call else None)


@dataclass
class RunState:
    """What the run knows: node statuses, attempts, the evidence history and the adapter chain.

    `status` is the one truth of where each node stands; the flow records it after every stage and
    the report, the mastery table and the benches read that record.
    """

    cur: Curriculum
    order: list[str]
    status: dict[str, Status]
    attempts: dict[str, int] = field(default_factory=dict)
    extra_attempts: dict[str, int] = field(default_factory=dict)  # granted by a mastered remedial branch
    evidence: dict[str, list[tuple[int, Evidence]]] = field(default_factory=dict)
    kept: set[int] = field(default_factory=lambda: {0})  # stages whose adapter the run went on from (0: the base)
    spent: dict[str, int] = field(default_factory=dict)
    continue_from: dict[str, int] = field(default_factory=dict)  # node -> the stage its retry continues
    rehearsals: dict[str, int] = field(default_factory=dict)
    pending_rehearsal: list[str] = field(default_factory=list)
    branched: set[str] = field(default_factory=set)
    accepted_stage: int | None = None  # the stage whose adapter the next stage continues
    trained: set[str] = field(default_factory=set)
    mastered_on: dict[str, Evidence] = field(default_factory=dict)  # the items each node was last mastered on
    auto_gates: dict[str, float] = field(default_factory=dict)  # gates of `min_score: auto`, fixed at baseline
    sizes: dict[str, int] = field(default_factory=dict)  # training examples per node (mix sizes its stages by them)
    budgets: dict[str, int] = field(default_factory=dict)  # optimizer steps each node may spend (curriculum.training.sizing)
    overrides: dict[str, Any] = field(default_factory=dict)  # the run's training overrides (`--max-steps`, compare)
    consolidated: bool = False  # the closing consolidation stage (`consolidate`) has run

    @classmethod
    def start(cls, cur: Curriculum, graph: nx.DiGraph, sizes: dict[str, int] | None = None,
              budgets: dict[str, int] | None = None, overrides: dict[str, Any] | None = None) -> RunState:
        requires = nx.subgraph_view(graph, filter_edge=lambda u, v: graph[u][v]["kind"] == "requires")
        order = list(nx.lexicographical_topological_sort(requires, key=list(cur.nodes).index))
        status = {n: Status.DORMANT if cur.nodes[n].entered_by == "on_fail" else Status.LOCKED for n in order}
        return cls(cur, order, status, sizes=dict(sizes or {}), budgets=dict(budgets or {}),
                   overrides=dict(overrides or {}))

    def train_config(self, node_id: str | None = None) -> TrainConfig:
        """A node's training settings (the defaults for None) with the run's overrides laid over them, as its
        stages will train."""
        cfg = self.cur.defaults.train if node_id is None else self.cur.train_config(node_id)
        return cfg.model_copy(update=self.overrides) if self.overrides else cfg

    def gate(self, node_id: str) -> float:
        value = self.cur.gate_config(node_id).min_score
        return self.auto_gates[node_id] if value == "auto" else value

    def confidence(self, node_id: str) -> float:
        return self.cur.gate_config(node_id).confidence

    def call(self, node_id: str, ev: Evidence) -> GateCall:
        return gate_call(ev, self.gate(node_id), self.confidence(node_id))

    def latest(self, node_id: str) -> float | None:
        history = self.evidence.get(node_id)
        return history[-1][1].score if history else None

    def on_accepted(self, node_id: str) -> Evidence | None:
        """The node's latest evidence probed on an adapter the run kept (never a retried or discarded one)."""
        kept = [ev for stage, ev in self.evidence.get(node_id, []) if stage in self.kept]
        return kept[-1] if kept else None

    def settled(self, node_id: str) -> bool:
        """Learned, and so is everything it requires: a node passed at baseline does not stand in for
        prerequisites that were never trained."""
        return self.status[node_id] in SETTLED and all(self.settled(r) for r in self.cur.nodes[node_id].requires)

    def ready(self) -> list[str]:
        """Nodes that may train now: every requirement settled, not finished, not dormant."""
        return [n for n in self.order if self.status[n] == Status.LOCKED and all(self.settled(r) for r in self.cur.nodes[n].requires)]

    def descendants(self, node_id: str) -> list[str]:
        """Nodes that can never unlock once `node_id` has failed."""
        out, frontier = [], {node_id}
        for n in self.order:
            if n != node_id and set(self.cur.nodes[n].requires) & frontier:
                out.append(n)
                frontier.add(n)
        return out

    def keep(self, stage: int) -> None:
        """The run goes on from this stage's adapter."""
        self.kept.add(stage)
        self.accepted_stage = stage

    def record(self, stage: int, observed: Observed) -> None:
        for node_id, ev in observed.items():
            if ev is not None:
                self.evidence.setdefault(node_id, []).append((stage, ev))


class Policy(Protocol):
    """What the flow asks of a policy: the same calls, live and when a resumed run replays its record."""

    name: str
    gates: bool  # its end state is judged against the gates (and gate warnings apply)

    @property
    def probes_ready(self) -> bool:  # the flow probes ready nodes after each kept stage (a chooser ranks them)
        ...


    def baseline(self, st: RunState, observed: Observed) -> list[Decision]: ...
    def next_step(self, st: RunState) -> Step | None: ...
    def observe(self, st: RunState, step: Step, stage: int, observed: Observed,
                trained: dict[str, Any] | None = None) -> tuple[Outcome, list[Decision]]: ...
    def stage_failed(self, st: RunState, step: Step, stage: int, error: str) -> list[Decision]: ...
    def recheck(self, st: RunState, observed: Observed) -> list[Decision]: ...
