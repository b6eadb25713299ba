"""What a tracker mirrors of a run, read from the warehouse: each recorded stage with its loss curve, node scores
and decisions, and the run's verdict. The trackers copy these rows; they never hold state of their own."""

from __future__ import annotations

import json
from typing import Any

from warehouse.db import Warehouse


def _dicts(wh: Warehouse, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cols, rows = wh.query(sql, params)
    return [dict(zip(cols, row)) for row in rows]


def run_row(wh: Warehouse, run_id: str) -> dict[str, Any]:
    """The run's row, its config parsed."""
    (row,) = _dicts(wh, "SELECT run_id, curriculum, graph_hash, policy, seed, base_model, status, config, parent_run "
                        "FROM runs WHERE run_id = ?", [run_id])
    return {**row, "config": json.loads(row["config"] or "{}")}


def recorded_stages(wh: Warehouse, run_id: str, skip: set[int]) -> list[dict[str, Any]]:
    """Every stage the run has recorded (the baseline is stage 0, the final sweep a stage of kind 'final'), except
    those in `skip`, each with `steps_log` (its optimizer steps), `scores` (each node probed after it, with n and
    interval) and `decisions` (what the policy decided on it, in order)."""
    stages = {0: {"stage": 0, "node_id": None, "kind": "baseline", "attempt": None, "status": "done", "steps": 0}}
    for row in _dicts(wh, "SELECT stage, node_id, kind, attempt, status, steps, tokens, seconds, train_loss, rounds, "
                          "stop_reason, drift, drift_n, drift_low, drift_high, adapter_path FROM stages "
                          "WHERE run_id = ? ORDER BY stage", [run_id]):
        stages[row["stage"]] = row
    if not wh.query("SELECT 1 FROM node_scores WHERE run_id = ? AND stage = 0 LIMIT 1", [run_id])[1]:
        del stages[0]  # no baseline recorded yet
    wanted = [s for s in stages if s not in skip]
    if not wanted:
        return []
    marks = ", ".join("?" for _ in wanted)
    steps = _dicts(wh, f"SELECT stage, step, loss, lr, tokens FROM train_steps WHERE run_id = ? AND stage IN ({marks}) "
                       "ORDER BY stage, step", [run_id, *wanted])
    scores = _dicts(wh, f"SELECT stage, node_id, score, n_items, ci_low, ci_high, gate FROM node_scores "
                        f"WHERE run_id = ? AND stage IN ({marks}) ORDER BY stage, node_id", [run_id, *wanted])
    decisions = _dicts(wh, f"SELECT stage, node_id, action, reason FROM decisions WHERE run_id = ? AND stage IN ({marks}) "
                           "ORDER BY seq", [run_id, *wanted])
    out = []
    for s in sorted(wanted):
        out.append({**stages[s], "steps_log": [r for r in steps if r["stage"] == s],
                    "scores": [r for r in scores if r["stage"] == s],
                    "decisions": [r for r in decisions if r["stage"] == s]})
    return out


def verdicts(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """Each node's end: its status, its score on check items and, where it was split, on exam items."""
    exam = ", exam_score, exam_n" if wh.has_table("exam_scores") else ", NULL AS exam_score, NULL AS exam_n"
    return _dicts(wh, f"SELECT node_id, status, score AS check_score{exam} FROM final_status WHERE run_id = ? "
                      "ORDER BY node_id", [run_id])
