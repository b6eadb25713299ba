"""Every policy the flow can run, end to end on the tiny model, and replayed from its record to the same state a
resumed run would continue from (gated, fixed and mix have their own longer tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import tiny_graph

CAP = {"max_steps": 8}


@pytest.mark.parametrize("policy", ["greedy", "bandit", "random", "flat"])
def test_a_policy_runs_through_the_flow_and_replays_to_its_record(prefect_harness, tmp_path: Path, policy: str) -> None:
    from curriculum.policies.registry import make_policy
    from curriculum.loading.validate import load_curriculum
    from flows.curriculum_flow import curriculum, replay_state
    from warehouse.db import Warehouse
    from warehouse.records import node_statuses

    graph, db = tiny_graph(tmp_path), tmp_path / "w.duckdb"
    curriculum(graph=str(graph), policy=policy, seed=3, warehouse=str(db), runs_dir=str(tmp_path / "runs"),
               run_id=policy, train_overrides=CAP)
    wh = Warehouse(db)
    _, run = wh.query("SELECT status, policy, seed FROM runs")
    assert run == [("completed", policy, 3)]
    _, stages = wh.query("SELECT stage, node_id, kind FROM stages ORDER BY stage")
    trained = [s for s in stages if s[2] != "final"]
    assert trained and stages[-1][2] == "final"
    if policy == "flat":
        assert trained == [(1, "*", "flat")]
    else:  # node by node, a (or b after a): nothing left locked
        assert {n for _, n, _ in trained} <= {"a", "b"} and trained[0][1] == "a"
    ended = node_statuses(wh, policy, trained[-1][0])
    assert "locked" not in ended.values()
    # what a resume would continue from: the recorded stages replayed through a fresh policy of the same seed
    pol = make_policy(policy, 3)
    st, next_stage = replay_state(wh, load_curriculum(graph), policy, pol, overrides=CAP)
    assert next_stage == trained[-1][0] + 1 and st.status == ended
    assert pol.next_step(st) is None  # nothing left to train: a resume goes straight to the end
