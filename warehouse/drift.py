"""Drift rows: the base model's answers, recorded once per run, and each stage's per-prompt likelihoods.

The answers are what every later stage is scored against, so a resumed run reads them back here instead
of generating new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from warehouse.db import Rows, Warehouse, _as_arrow


def record_answers(wh: Warehouse, run_id: str, answers: Sequence[dict[str, Any]], seconds: float) -> None:
    """The base's answers and their stage-0 likelihoods, in one transaction (written once per run)."""
    with wh.transaction() as con:
        wh.append(con, "drift_answers", [{k: a[k] for k in ("item", "prompt", "answer", "tokens")} | {"run_id": run_id}
                                         for a in answers])
        wh.append(con, "drift_items", [{"run_id": run_id, "stage": 0, "item": a["item"], "logprob": a["logprob"]}
                                       for a in answers if a["logprob"] is not None])
        con.execute("UPDATE runs SET drift_baseline_s = ? WHERE run_id = ?", [seconds, run_id])


def load_answers(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """The recorded answers with their base likelihood (None where unscored), in item order; [] if none yet."""
    if not wh.path.exists():
        return []
    cols, rows = wh.query(
        "SELECT a.item, a.prompt, a.answer, a.tokens, b.logprob FROM drift_answers a "
        "LEFT JOIN drift_items b ON b.run_id = a.run_id AND b.stage = 0 AND b.item = a.item "
        "WHERE a.run_id = ? ORDER BY a.item", [run_id])
    return [dict(zip(cols, r)) for r in rows]


def record_items(wh: Warehouse, run_id: str, stage: int, items: Sequence[tuple[int, float]]) -> None:
    """A stage's per-prompt likelihoods. Replaced, not appended: a stage killed before its row was recorded is
    measured again on resume, on the same adapter."""
    rows: Rows = [{"run_id": run_id, "stage": stage, "item": item, "logprob": lp} for item, lp in items]
    if not rows:
        return
    with wh.transaction() as con:
        _incoming = _as_arrow(rows)  # noqa: F841 — DuckDB reads this Arrow table by its local name
        con.execute("INSERT OR REPLACE INTO drift_items (run_id, stage, item, logprob) "
                    "SELECT run_id, stage, item, logprob FROM _incoming")


def drift_by_stage(wh: Warehouse, run_id: str) -> list[dict[str, Any]]:
    """Each stage's drift with its n and 95% interval, and what became of the stage (for report and summary)."""
    cols, rows = wh.query(
        "SELECT stage, node_id, kind, status, drift, drift_low, drift_high, drift_n, drift_s FROM stages "
        "WHERE run_id = ? AND drift IS NOT NULL ORDER BY stage", [run_id])
    return [dict(zip(cols, r)) for r in rows]
