"""Policy decisions without training: the rehearsal trigger and its tolerance for probe noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from curriculum.policies import RunState, make_policy
from curriculum.validate import load_curriculum
from helpers import tiny_graph


@pytest.mark.parametrize("a_after_b, rehearsed", [(0.45, False), (0.39, True)])
def test_mastered_node_is_rehearsed_only_below_gate_less_tolerance(tmp_path: Path, a_after_b: float,
                                                                   rehearsed: bool) -> None:
    graph = tiny_graph(tmp_path)
    graph.write_text(graph.read_text().replace("gate: {min_score: 0.5, max_attempts: 2}",
                                               "gate: {min_score: 0.5, max_attempts: 2, tolerance: 0.1}"))
    loaded = load_curriculum(graph)
    pol, st = make_policy("gated"), RunState.start(loaded.spec, loaded.graph)
    pol.baseline(st, {"a": 0.2, "b": 0.1})
    step = pol.next_step(st)
    assert step.node_id == "a"
    pol.observe(st, step, 1, {"a": 0.6})
    step = pol.next_step(st)
    assert step.node_id == "b"
    _, decisions = pol.observe(st, step, 2, {"b": 0.7, "a": a_after_b})
    assert [d.action for d in decisions if d.node_id == "a"] == (["rehearse"] if rehearsed else [])
    after = pol.next_step(st)
    assert (after is not None and after.kind == "rehearse" and after.node_id == "a") == rehearsed
