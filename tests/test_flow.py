"""The curriculum flow on the tiny model: every decision path, rows in DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

from paths_graph import paths_graph
from warehouse.db import Warehouse

# What the gated policy does on the paths graph, stage by stage (see tests/paths_graph.py).
EXPECTED = [
    (0, "seen", "pass"),
    (1, "learn", "train"), (1, "learn", "pass"),
    (2, "hard", "train"), (2, "hard", "retry"),
    (3, "hard", "train"), (3, "hard", "branch"),
    (4, "remedial", "train"), (4, "remedial", "pass"), (4, "hard", "retry"),
    (5, "hard", "train"), (5, "hard", "back-off"), (5, "child", "skip"),
    (6, "flip", "train"), (6, "flip", "pass"), (6, "learn", "rehearse"),
    # consolidation rounds on every learned node's data cannot undo flip (it trains the other option's words)
    (7, "learn", "train"), (7, "learn", "skip"),
    (8, "learn", "train"), (8, "learn", "skip"), (8, "learn", "forgotten"),
]


def test_every_action_path_lands_in_the_warehouse(paths_run) -> None:
    tmp_path, graph, run_id = paths_run
    wh = Warehouse(tmp_path / "w.duckdb")
    _, rows = wh.query("SELECT stage, node_id, action FROM decisions WHERE run_id = ? ORDER BY seq", [run_id])
    assert rows == EXPECTED
    _, stages = wh.query("SELECT stage, node_id, attempt, kind, parent_stage, status FROM stages ORDER BY stage")
    # a retry continues the stage it retries (3 continues 2); the attempt after the remedial branch is numbered on (3)
    assert stages == [
        (1, "learn", 1, "train", None, "done"),
        (2, "hard", 1, "train", 1, "retried"),
        (3, "hard", 2, "train", 2, "discarded"),
        (4, "remedial", 1, "train", 1, "done"),
        (5, "hard", 3, "train", 4, "discarded"),
        (6, "flip", 1, "train", 4, "done"),
        (7, "learn", 1, "rehearse", 6, "discarded"),  # a rehearsal that does not recover its node is discarded
        (8, "learn", 2, "rehearse", 6, "discarded"),
        (9, "*", 1, "final", 6, "done"),
    ]
    # stages sized by their checks: each records its rounds and why it stopped
    _, sized = wh.query("SELECT stage, rounds, stop_reason, steps FROM stages WHERE kind <> 'final' ORDER BY stage")
    assert all(r >= 1 and reason in ("gate-met", "plateau", "budget") and steps >= 4 for _, r, reason, steps in sized)
    assert dict((s, reason) for s, _, reason, _ in sized)[1] == "gate-met"
    # and where and how it trained, as its stage.json says (the tiny model on the CPU: fp32, no out-of-memory)
    _, how = wh.query("SELECT DISTINCT device, dtype, micro_batch, grad_accum, ooms FROM stages WHERE kind <> 'final'")
    recorded = json.loads((Path(wh.query("SELECT adapter_path FROM stages WHERE stage = 1")[1][0][0]) / "stage.json").read_text())
    assert how == [("cpu", "float32", recorded["micro_batch"], recorded["grad_accum"], 0)] and recorded["micro_batch"] >= 1
    _, lineage = wh.query("SELECT lineage FROM adapter_lineage WHERE stage = 7")
    assert lineage == [(["learn", "remedial", "flip", "learn"],)]
    # the baseline probed every schedulable node; each stage probed its node fully and mastered ones on a sample
    _, probed = wh.query("SELECT stage, list(DISTINCT node_id ORDER BY node_id) FROM probe_results GROUP BY stage ORDER BY stage")
    assert probed[0] == (0, ["child", "hard", "learn", "seen"])
    assert probed[1] == (1, ["learn", "seen"])
    _, steps = wh.query("SELECT s.stage, s.steps, count(t.step) FROM stages s JOIN train_steps t USING (run_id, stage) GROUP BY ALL ORDER BY 1")
    assert all(n == m for _, n, m in steps)
    _, decisions = wh.query("SELECT reason, signals FROM decisions WHERE action = 'back-off'")
    assert "on attempt 3 of 3" in decisions[0][0] and '"scores"' in decisions[0][1]
    # the views read accepted adapters only; discarded probes stay queryable, marked
    _, marked = wh.query("SELECT DISTINCT adapter_status, accepted FROM mastery_matrix WHERE stage IN (3, 5)")
    assert marked == [("discarded", False)]
    _, forgotten = wh.query("SELECT status, rehearsals FROM final_status WHERE node_id = 'learn'")
    assert forgotten == [("forgotten", 2)]
    _, final = wh.query("SELECT node_id, scored_at FROM final_status WHERE node_id IN ('hard', 'learn') ORDER BY 1")
    assert final == [("hard", 9), ("learn", 9)]
    _, run = wh.query("SELECT status, policy, finished_at IS NOT NULL FROM runs")
    assert run == [("completed", "gated", True)]
    _, snap = wh.query("SELECT yaml_text FROM graph_snapshots")
    assert snap[0][0] == graph.read_text()
    assert (tmp_path / "runs" / run_id / "report.html").exists()


def test_fixed_policy_trains_each_node_once_in_order(prefect_harness, tmp_path: Path) -> None:
    from flows.curriculum_flow import curriculum

    db = tmp_path / "w.duckdb"
    curriculum(graph=str(paths_graph(tmp_path)), policy="fixed", warehouse=str(db), runs_dir=str(tmp_path / "runs"),
               run_id="fixed")
    wh = Warehouse(db)
    _, stages = wh.query("SELECT node_id, attempt, parent_stage FROM stages ORDER BY stage")
    assert stages == [("seen", 1, None), ("learn", 1, 1), ("hard", 1, 2), ("child", 1, 3), ("flip", 1, 4), ("*", 1, 5)]
    _, actions = wh.query("SELECT DISTINCT action FROM decisions ORDER BY 1")
    assert actions == [("pass",), ("train",)]


def test_failed_stage_backs_off_and_the_run_goes_on(prefect_harness, tmp_path: Path) -> None:
    from flows.curriculum_flow import curriculum
    from helpers import tiny_graph

    graph = tiny_graph(tmp_path)
    text = graph.read_text().replace("  a:\n    layer: definition\n", "  a:\n    layer: definition\n    gate: {min_score: 0.0}\n")
    text = text.replace("    requires: [a]\n", "    requires: [a]\n    gate: {min_score: 1.0}\n")
    graph.write_text(text)
    db = tmp_path / "w.duckdb"
    # an over-long example is a validation error in the YAML; a run's override still makes one at training time
    run_id = curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(tmp_path / "runs"), run_id="fails",
                        train_overrides={"max_length": 20})
    wh = Warehouse(db)
    _, stages = wh.query("SELECT stage, node_id, status FROM stages")
    assert stages == [(1, "b", "failed")]
    _, decisions = wh.query("SELECT stage, node_id, action, reason FROM decisions ORDER BY seq")
    assert [d[:3] for d in decisions] == [(0, "a", "pass"), (1, "b", "train"), (1, "b", "back-off")]
    assert "longer than max_length 20" in decisions[-1][3] and "b.jsonl:1:1" in decisions[-1][3]
    assert wh.query("SELECT status FROM runs WHERE run_id = ?", [run_id])[1] == [("completed",)]

# kill -9 and resume: tests/test_resume.py
