"""Policy decisions without training: gate calls with intervals, and rehearsal only on a significant paired drop."""

from __future__ import annotations

from pathlib import Path

from curriculum.evidence import Evidence
from curriculum.policies import RunState, make_policy
from curriculum.validate import load_curriculum
from helpers import tiny_graph


def binary(right: list[int], pool: int | None = None) -> Evidence:
    return Evidence({(0, i + 1): float(v) for i, v in enumerate(right)}, True, pool or len(right))


def test_rehearsal_needs_a_significant_drop_on_the_same_items(tmp_path: Path) -> None:
    loaded = load_curriculum(tiny_graph(tmp_path))
    pol, st = make_policy("gated"), RunState.start(loaded.spec, loaded.graph)
    pol.baseline(st, {"a": binary([0] * 8), "b": binary([0] * 8)})
    step = pol.next_step(st)
    keep, decisions = pol.observe(st, step, 1, {"a": binary([1] * 8)})
    assert keep and decisions[0].action == "pass" and decisions[0].n_items == 8 and decisions[0].ci_low > 0.5
    step = pol.next_step(st)
    assert step.node_id == "b"
    # one item flipped of eight: probe noise, not forgetting, though the point estimate moved
    _, decisions = pol.observe(st, step, 2, {"b": binary([1] * 8), "a": binary([0] + [1] * 7)})
    assert [d.action for d in decisions if d.node_id == "a"] == []
    # a node mastered on 8/8 now at 2/8 on the same items: a significant drop below the gate
    st2 = RunState.start(loaded.spec, loaded.graph)
    pol2 = make_policy("gated")
    pol2.baseline(st2, {"a": binary([0] * 8), "b": binary([0] * 8)})
    pol2.observe(st2, pol2.next_step(st2), 1, {"a": binary([1] * 8)})
    _, decisions = pol2.observe(st2, pol2.next_step(st2), 2, {"b": binary([1] * 8), "a": binary([0] * 6 + [1] * 2)})
    (rehearse,) = [d for d in decisions if d.node_id == "a"]
    assert rehearse.action == "rehearse" and "mcnemar-exact" in rehearse.reason and rehearse.signals["p_value"] < 0.2
    assert pol2.next_step(st2).kind == "rehearse"


def test_inconclusive_gate_with_the_pool_spent_decides_on_the_point_estimate(tmp_path: Path) -> None:
    loaded = load_curriculum(tiny_graph(tmp_path))
    pol, st = make_policy("gated"), RunState.start(loaded.spec, loaded.graph)
    pol.baseline(st, {"a": binary([0] * 4), "b": binary([0] * 4)})
    step = pol.next_step(st)
    keep, decisions = pol.observe(st, step, 1, {"a": binary([1, 1, 0, 1, 0, 1, 0, 1])})  # 0.625, bounds straddle 0.5
    assert keep and decisions[0].action == "pass"
    assert "decided on the point estimate" in decisions[0].reason and decisions[0].signals["decided_on_point"]


def test_baseline_pass_needs_the_gate_cleared(tmp_path: Path) -> None:
    loaded = load_curriculum(tiny_graph(tmp_path))
    pol, st = make_policy("gated"), RunState.start(loaded.spec, loaded.graph)
    decisions = pol.baseline(st, {"a": binary([1] * 8), "b": binary([0, 1, 0, 0] * 2)})
    assert [(d.node_id, d.action) for d in decisions] == [("a", "pass")]
    assert st.status["a"] == "mastered" and st.mastered_on["a"].n == 8
