"""The command line's tables and short lines, from rows already read (nothing here reads the warehouse): so
`run`, `show`, `runs` and `diff` print the same things the same way, and tests can read them without a terminal."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from curriculum.runs.mastery import HEADERS as MASTERY_HEADERS, mastery_cells

DRIFT_NOTE = ("drift: mean per-token log-likelihood of the base model's own answers to neutral\n"
              "prompts, on the stage's adapter minus on the base (negative: less likely now)")
RUNS_HEADERS = ("run", "graph", "policy", "seed", "status", "stages", "started (UTC)", "wall")


def _table(title: str) -> Table:
    """No vertical rules, no outer edge: one line per row in an 80-column terminal."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)


def short(value) -> str:
    """A changed value in a few characters: hashes cut to 10, a probe as key=value pairs."""
    if isinstance(value, dict):
        value = " ".join(f"{k}={v}" for k, v in value.items())
    text = "-" if value is None else value[:10] if isinstance(value, str) and len(value) == 64 else str(value)
    return text if len(text) <= 32 else text[:31] + "…"


def diff_lines(found) -> list[str]:
    """The changes in short lines: added, removed, then per node each changed field old -> new."""
    lines = [f"added:   {', '.join(found.added) or '-'}", f"removed: {', '.join(found.removed) or '-'}"]
    if not found.files_known:
        lines.append("(the run recorded no file hashes: data and probe file edits cannot be seen)")
    for c in found.top:
        lines.append(f"curriculum {c.field}: {short(c.old)} -> {short(c.new)}")
    for n, changes in found.changed.items():
        lines.append(f"changed {n}:")
        lines += [f"  {c.field}: {short(c.old)} -> {short(c.new)}" for c in changes]
    return lines


def mastery_rich(columns, rows, title: str) -> Table:
    """The mastery table for a terminal: no vertical rules, one line per node, ids never folded."""
    table = _table(title)
    for header in MASTERY_HEADERS:
        table.add_column(header, no_wrap=True, justify="left" if header in ("node", "status") else "right")
    for row in rows:
        cells = mastery_cells(columns, row)
        table.add_row(*(cells[h] for h in MASTERY_HEADERS))
    return table


def drift_table(rows: list[dict[str, Any]]) -> Table:
    """Each stage's drift of general ability with its interval (warehouse.drift.drift_by_stage's rows)."""
    prompts = sorted({r["drift_n"] for r in rows})  # the same prompts every stage: one count, in the title
    table = _table(f"drift of general ability, on {'/'.join(map(str, prompts))} prompts")
    for header in ("stage", "node", "status", "drift", "95% interval"):
        table.add_column(header, no_wrap=True, justify="left" if header in ("node", "status") else "right")
    for r in rows:
        bounds = "" if r["drift_low"] is None else f"[{r['drift_low']:+.3f}, {r['drift_high']:+.3f}]"
        table.add_row(str(r["stage"]), r["node_id"], r["status"], f"{r['drift']:+.3f}", bounds)
    return table


def runs_table(found: list[dict[str, Any]], title: str) -> Table:
    """The runs (warehouse.records.run_list's rows): wall time only for a run that ended."""
    table = _table(title)
    for header in RUNS_HEADERS:
        table.add_column(header, no_wrap=True, justify="right" if header in ("seed", "stages", "wall") else "left")
    for r in found:
        wall = duration((r["finished_at"] - r["started_at"]).total_seconds()) if r["finished_at"] else "-"
        table.add_row(r["run_id"], r["graph"] or r["curriculum"], r["policy"], str(r["seed"]), r["status"],
                      str(r["stages"]), f"{r['started_at']:%Y-%m-%d %H:%M}", wall)
    return table


def duration(seconds: float) -> str:
    """3 s, 4m05s, 2h07m: a wall time at a glance."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"
