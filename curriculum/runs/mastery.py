"""The mastery table's cells, one format for the terminal, the model card and the Prefect artifact.

Six short columns so that a node id as long as the bundled graph's longest
(`fogwhisperfrost.transfer.remedial`) and its row fit an 80-column terminal on one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEADERS = ("node", "status", "base", "end", "bounds", "n", "check")
NOTE = ("status: the policy's; base: the base model on the check items, before any\n"
        "decision; end: the verdict, the adapter the run ends with on the node's n exam\n"
        "items (no decision read them), 95 % bounds (Wilson for right/wrong items, t for\n"
        "paraphrase scores); n*: too few items to split, the items that steered the run\n"
        "(bounds one-sided at the gate's confidence); check: the end on the check items")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"  # two places: a 95 % interval is ±0.03 at 1,000 items


def mastery_cells(columns: Sequence[str], row: Sequence[Any]) -> dict[str, str]:
    """One row of warehouse.records.mastery_table as display strings, keyed by HEADERS."""
    r = dict(zip(columns, row))
    has_n = r.get("n") is not None
    unsplit = r.get("split", "unsplit") == "unsplit"
    return {"node": str(r["node_id"]), "status": str(r["status"]), "base": _score(r["baseline"]),
            "end": _score(r["final"]),
            "bounds": f"{r['ci_low']:.2f}-{r['ci_high']:.2f}" if has_n and r.get("ci_low") is not None else "-",
            "n": f"{r['n']}{'*' if unsplit else ''}" if has_n else "-",
            "check": "=" if unsplit and has_n else _score(r.get("check"))}


def mastery_records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as plain JSON-able dicts with numbers kept numeric (a Prefect table artifact sorts them)."""
    out = []
    for row in rows:
        r = dict(zip(columns, row))
        out.append({"node": r["node_id"], "status": r["status"], "base": _round(r["baseline"]), "final": _round(r["final"]),
                    "low": _round(r["ci_low"]), "high": _round(r["ci_high"]), "n": r["n"],
                    "split": r.get("split", "unsplit"), "check": _round(r.get("check")), "best": _round(r["best"]),
                    "last_action": r["last_action"]})
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def mastery_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The table as GitHub-flavoured markdown (node ids in code spans)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADERS) - 2)) + "|"]
    for row in rows:
        cells = mastery_cells(columns, row)
        cells["node"] = f"`{cells['node']}`"
        lines.append("| " + " | ".join(cells[h] for h in HEADERS) + " |")
    return "\n".join(lines)
