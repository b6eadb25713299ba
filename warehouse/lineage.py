"""What a run continued with `--from` reads of its parent: the graph it walked, where it ended, the gates
it fixed and the items each node was last mastered on."""

from __future__ import annotations

import json
from typing import Any

from warehouse.db import Warehouse


def run_snapshot(wh: Warehouse, run_id: str) -> dict[str, Any] | None:
    """The run's row with its YAML text, its file hashes (None when it recorded none) and each node's last status."""
    if not wh.path.exists():
        return None
    cols, rows = wh.query("SELECT r.*, g.yaml_text FROM runs r JOIN graph_snapshots g USING (graph_hash) WHERE r.run_id = ?",
                          [run_id])
    if not rows:
        return None
    run = dict(zip(cols, rows[0]))
    files = wh.query("SELECT node_id, file_key, sha256 FROM run_files WHERE run_id = ?", [run_id])[1] \
        if wh.has_table("run_files") else []
    by_node: dict[str, dict[str, str | None]] = {}
    for node, key, sha in files:
        by_node.setdefault(node, {})[key] = sha
    run["files"] = by_node if files else None
    _, status = wh.query("SELECT node_id, arg_max(status, stage) FROM node_status WHERE run_id = ? GROUP BY node_id",
                         [run_id])
    run["node_status"] = dict(status)
    return run


def fixed_gates(wh: Warehouse, run_id: str) -> dict[str, float]:
    """The gate each `min_score: auto` node was given in the run (its last 'gate' decision)."""
    _, rows = wh.query("SELECT node_id, arg_max(gate, seq) FROM decisions WHERE run_id = ? AND action = 'gate' "
                       "AND gate IS NOT NULL GROUP BY node_id", [run_id])
    return dict(rows)


def mastered_at(wh: Warehouse, run_id: str) -> dict[str, tuple[str, int]]:
    """node -> (run, stage) whose probe items the node was last mastered on in the run: a pass at baseline or
    on its own training stage (the policy's `mastered_on`), or, for a node the run inherited, where its
    parent's pointed."""
    _, rows = wh.query(
        """
        SELECT d.node_id,
               arg_max(CASE WHEN d.action = 'inherit' THEN json_extract_string(d.signals, '$.mastered_on.run')
                            ELSE d.run_id END, d.seq),
               arg_max(CASE WHEN d.action = 'inherit' THEN CAST(json_extract(d.signals, '$.mastered_on.stage') AS INTEGER)
                            ELSE d.stage END, d.seq)
        FROM decisions d LEFT JOIN stages s ON s.run_id = d.run_id AND s.stage = d.stage
        WHERE d.run_id = $1 AND (
              (d.action = 'pass' AND (d.stage = 0 OR (s.kind IN ('train', 'flat', 'consolidate') AND s.node_id IN (d.node_id, '*'))))
              OR (d.action = 'inherit' AND json_extract(d.signals, '$.mastered_on.run') IS NOT NULL))
        GROUP BY d.node_id
        """, [run_id])
    return {n: (run, stage) for n, run, stage in rows}


def item_rows(wh: Warehouse, run_id: str, stage: int, node_id: str) -> list[tuple[int, int, str, float]]:
    """(probe index, item line, probe kind, score) of every item the node was probed on at that stage."""
    _, rows = wh.query("SELECT probe_index, item, probe_kind, score FROM probe_results WHERE run_id = ? AND stage = ? "
                       f"AND node_id = ? {wh.not_exam()} ORDER BY probe_index, item", [run_id, stage, node_id])
    return rows


def run_config(wh: Warehouse, run_id: str) -> dict[str, Any]:
    _, rows = wh.query("SELECT config FROM runs WHERE run_id = ?", [run_id])
    return json.loads(rows[0][0] or "{}") if rows else {}
