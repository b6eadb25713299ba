"""What the flow plans between its tasks, with no Prefect in it: which items a stage probes, the cheap check
inside a stage, the rows a stage's probing becomes, a mix stage's examples, and each stage's training settings.

Kept apart from the flow so the loop in flows/curriculum_flow.py reads top to bottom, and so that a resumed run
and a live one plan with the very same functions.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

from curriculum.models.chat import Example, example_ids
from curriculum.policies.draws import first_items, more_items, pool_keys, regression_items
from curriculum.stats.evidence import evidence_from
from curriculum.policies.mix import draw_mixture
from curriculum.policies.runstate import FLAT, Decision, Observed, RunState, Step
from curriculum.training.sizing import node_budget
from curriculum.graph.spec import TrainConfig
from curriculum.policies.states import Action, StageKind, Status
from curriculum.training.batches import pool_of
from curriculum.training.train import CheckFn
from curriculum.loading.validate import LoadedCurriculum
from flows import faults
from probes.calibrate import node_levels
from probes.results import ItemResult, evidence_of
from probes.sweep import Selection, probe_nodes


def probe_plan(loaded: LoadedCurriculum, st: RunState, step: Step | None, stage: int, probes_ready: bool = False) -> Selection:
    """Which items to probe: every item at baseline and after a flat stage; else a first draw of the
    trained node's items, a rotating sample of each mastered node's (regression), every item a forgotten
    node was mastered on (is it back?), and, for policies that rank ready nodes, a first draw of each."""
    if step is None or step.kind == StageKind.FLAT:
        return {n: None for n in st.order if st.status[n] != Status.DORMANT}
    plan: dict[str, list | None]
    if step.kind == StageKind.MIX:  # the frontier's first draws; held nodes as after any stage
        plan = {n: first_items(loaded, n) for n in step.data_nodes}
        for m in step.replay_nodes:
            if m in st.mastered_on:
                plan[m] = (sorted(st.mastered_on[m].items) if st.status[m] == Status.FORGOTTEN
                           else regression_items(loaded, m, sorted(st.mastered_on[m].items), stage))
        return plan
    if step.kind == StageKind.CONSOLIDATE:  # each held node on the items its last kept evidence has, to pair with
        plan = {}
        for m in step.data_nodes:
            ev = st.mastered_on.get(m) if st.status[m] == Status.MASTERED else st.on_accepted(m)
            plan[m] = sorted(ev.items) if ev is not None else first_items(loaded, m)
        return plan
    plan = {step.node_id: first_items(loaded, step.node_id)}
    for m in st.order:
        if m == step.node_id or m not in st.mastered_on:
            continue
        if m in st.pending_rehearsal:
            plan[m] = sorted(st.mastered_on[m].items)
        elif st.status[m] == Status.MASTERED:
            plan[m] = regression_items(loaded, m, sorted(st.mastered_on[m].items), stage)
    if probes_ready:
        for m in st.ready():
            plan.setdefault(m, first_items(loaded, m))
        for m in st.order:  # nodes this stage may unlock: ranked on the adapter they will continue
            if st.status[m] == Status.LOCKED and step.node_id in st.cur.nodes[m].requires:
                plan.setdefault(m, first_items(loaded, m))
    return plan


Rows = dict[str, list[tuple[int, int, str, float]]]  # node -> (probe index, item line, probe kind, score)


def as_rows(results: dict[str, list[ItemResult]]) -> Rows:
    return {n: [(r.probe_index, r.item, r.probe_kind, r.score) for r in rs] for n, rs in results.items()}


def observe_rows(loaded: LoadedCurriculum, nodes, rows: Rows) -> Observed:
    """Each node's items as evidence, or None when it has none (the same live and on resume)."""
    return {n: evidence_from(rows[n], len(pool_keys(loaded, n))) if rows.get(n) else None for n in nodes}


def score_rows(st: RunState, observed: Observed) -> list[dict[str, Any]]:
    """The warehouse's node_scores rows: each score with its n and one-sided bounds at the gate's confidence."""
    out = []
    for n, ev in observed.items():
        if ev is None:
            continue
        low, high = ev.bounds(st.confidence(n))
        out.append({"node_id": n, "score": ev.score, "n_items": ev.n, "pool": ev.pool, "ci_low": low, "ci_high": high,
                    "method": "wilson" if ev.binary else "t", "confidence": st.confidence(n), "gate": st.gate(n)})
    return out


EXAM_CONFIDENCE = 0.95  # two-sided: the verdict's interval, not a gate's one-sided bound


def exam_plan(loaded: LoadedCurriculum, nodes) -> Selection:
    """Every exam item of the given nodes that have any: what the verdict reads (never a decision)."""
    return {n: None for n in nodes if any(loaded.exam_items.get(n) or [])}


def exam_score_rows(results: dict[str, list[ItemResult]]) -> list[dict[str, Any]]:
    """The warehouse's exam_scores rows: each node's exam score over all its exam items, with a two-sided interval."""
    out = []
    for n, rs in results.items():
        if not rs:
            continue
        ev = evidence_of(rs, len(rs))
        low, high = ev.bounds(1 - (1 - EXAM_CONFIDENCE) / 2)
        out.append({"node_id": n, "score": ev.score, "n_items": ev.n, "ci_low": low, "ci_high": high,
                    "method": "wilson" if ev.binary else "t", "confidence": EXAM_CONFIDENCE})
    return out


def status_rows(st: RunState) -> list[dict[str, Any]]:
    """The policy's node statuses as the warehouse's node_status rows: the one record reports read."""
    return [{"node_id": n, "status": st.status[n], "attempts": st.attempts.get(n, 0), "spent_steps": st.spent.get(n, 0),
             "rehearsals": st.rehearsals.get(n, 0)} for n in st.order]


def stage_check(loaded: LoadedCurriculum, st: RunState, step: Step) -> CheckFn | None:
    """The cheap look after each training round: the trained node's first draw (every node's items for
    flat), scored as the gate will be; "pass" when every gate call on it passes. None for the closing
    consolidation, which trains its one round whatever a check would say."""
    if step.kind == StageKind.CONSOLIDATE:
        return None
    selection: Selection = ({n: None for n in step.data_nodes} if step.kind == StageKind.FLAT
                            else {n: first_items(loaded, n) for n in step.data_nodes} if step.kind == StageKind.MIX
                            else {step.node_id: first_items(loaded, step.node_id)})
    one_is_enough = step.kind == StageKind.MIX  # a frontier node that passes ends the stage: the mixture moves

    def check(model, tokenizer) -> tuple[float, str, int]:
        results = probe_nodes(model, tokenizer, loaded, selection, st.auto_gates)
        observed = {n: ev for n, ev in observe_rows(loaded, selection, as_rows(results)).items() if ev is not None}
        if not observed:
            faults.reached("train")
            return 1.0, "pass", 0
        calls = [st.call(n, ev) for n, ev in observed.items()]
        verdict = ("pass" if (any if one_is_enough else all)(c.passed for c in calls)
                   else "fail" if any(c.verdict == "fail" for c in calls) else "inconclusive")
        faults.reached("train")
        return sum(c.score for c in calls) / len(calls), verdict, sum(c.n for c in calls)

    return check


def draw_until_clear(loaded: LoadedCurriculum, st: RunState, node_id: str, results: dict[str, list[ItemResult]],
                     probe: Callable[[Selection], dict[str, list[ItemResult]]]) -> int:
    """Sequential probing: while the trained node's gate call is inconclusive, draw unused items from its pool.
    Returns how many draws were added."""
    draws = 0
    while True:
        ev = observe_rows(loaded, [node_id], as_rows(results))[node_id]
        if ev is None or st.call(node_id, ev).verdict != "inconclusive":
            return draws
        results[node_id] += probe({node_id: more_items(loaded, node_id, ev.items)})[node_id]
        draws += 1


def resolve_auto_gates(loaded: LoadedCurriculum, st: RunState, baseline: Observed) -> list[Decision]:
    """`min_score: auto`: the gate `curriculum calibrate` suggests, fixed from the data and the base model."""
    decisions = []
    for n in st.order:
        if loaded.spec.gate_config(n).min_score != "auto" or n in st.auto_gates:  # (--from: fixed by the parent)
            continue
        ev = baseline.get(n)
        levels = node_levels(loaded, n, ev.score if ev else None)
        st.auto_gates[n] = levels.suggested_gate()
        decisions.append(Decision(n, Action.GATE, f"min_score auto: {st.auto_gates[n]:.3f}, halfway from {levels.floor:.3f} "
                                  f"(best of base, chance, answer bias) to {max(levels.top, levels.floor):.3f}",
                                  gate=st.auto_gates[n], signals={"levels": asdict(levels)}))
    return decisions


def mix_examples(loaded: LoadedCurriculum, step: Step, seed: int) -> list[Example]:
    """A mix stage's examples: the policy's counts drawn from each node's data (seeded per stage)."""
    pools = {n: pool_of(loaded.examples[n]) for n in step.mixture}
    return draw_mixture(pools, step.mixture, seed)


def mixture_rows(loaded: LoadedCurriculum, step: Step, seed: int, tokenizer) -> list[dict[str, Any]]:
    """The warehouse's stage_mixture rows: each node's weight, examples drawn and their tokens."""
    tokens: dict[str, int] = {}
    for n in step.mixture:
        drawn = draw_mixture({n: pool_of(loaded.examples[n])}, {n: step.mixture[n]}, seed)
        tokens[n] = sum(len(example_ids(tokenizer, ex)[0]) for ex in drawn)
    return [{"node_id": n, "role": "frontier" if n in step.data_nodes else "replay", "weight": step.weights[n],
             "examples": step.mixture[n], "tokens": tokens[n]} for n in step.mixture]


def start_state(loaded: LoadedCurriculum, overrides: dict[str, Any] | None) -> RunState:
    """The policy's state before the baseline, with each node's data size and step budget (the run's overrides laid
    over its training settings, as its stages will be)."""
    cur = loaded.spec
    sizes = {n: len(loaded.examples.get(n, [])) for n in cur.nodes}
    budgets = {n: node_budget(sizes[n], cur.train_config(n).model_copy(update=overrides or {})) for n in cur.nodes}
    return RunState.start(cur, loaded.graph, sizes, budgets, overrides)


def stage_config(loaded: LoadedCurriculum, step: Step, stage: int, seed: int, overrides: dict[str, Any] | None) -> TrainConfig:
    """The node's training settings (the curriculum's defaults for flat), seeded per stage, with the run's overrides."""
    cur = loaded.spec
    cfg = cur.defaults.train if step.node_id == FLAT else cur.train_config(step.node_id)
    update = {"seed": seed + stage, "replay": cfg.replay or (0.25 if step.replay_nodes else 0.0), **(overrides or {})}
    return cfg.model_copy(update=update)
