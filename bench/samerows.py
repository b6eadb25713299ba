"""Do two runs leave the same warehouse rows? Every table with a run_id, row for row, the columns that measure time
or name this machine's folders aside: how a change meant to keep behaviour byte for byte is checked (run the same
graph, profile and seed before and after it, each into its own warehouse).

Run: .venv/bin/python bench/samerows.py BEFORE.duckdb AFTER.duckdb RUN_ID [AFTER_RUN_ID]
Last line: one JSON object, {table: "same" | "N rows differ" | "only in one"}.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json  # noqa: E402

import duckdb  # noqa: E402

VOLATILE = ("seconds", "_s", "_at", "path", "wall", "duration", "elapsed", "parent_adapter")  # names ending in or holding these
VOLATILE_KEYS = {"seconds", "train_wall_s", "probe_s", "check_s", "started_at", "finished_at", "decided_at",
                 "adapter_path", "created_at", "applied_at", "baseline_probe_s", "runs_dir", "phases", "wall_s"}


def _volatile(column: str) -> bool:
    return any(column.endswith(v) or v in column for v in VOLATILE)


def _timeless(value):
    """A JSON cell without the timings and folders it carries."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            doc = json.loads(value)
        except ValueError:
            return value
        return json.dumps(_strip(doc), sort_keys=True)
    return value


def _strip(doc):
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if k not in VOLATILE_KEYS and not _volatile(k)}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def rows(db: Path, run_id: str) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.columns WHERE column_name = "
                                        "'run_id' AND table_schema = 'main' GROUP BY table_name ORDER BY 1").fetchall()]
    out = {}
    for table in tables:
        cols = [c for (c,) in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                          "ORDER BY ordinal_position", [table]).fetchall()]
        keep = [c for c in cols if c != "run_id" and not _volatile(c)]
        if not keep:
            continue
        got = con.execute(f"SELECT {', '.join(keep)} FROM {table} WHERE run_id = ?", [run_id]).fetchall()
        out[table] = sorted((tuple(_timeless(v) for v in row) for row in got), key=repr)
    return out


def main() -> None:
    before, after, run_id = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    a, b = rows(before, run_id), rows(after, sys.argv[4] if len(sys.argv) > 4 else run_id)
    verdict = {}
    for table in sorted(set(a) | set(b)):
        if table not in a or table not in b:
            verdict[table] = "only in one"
        elif a[table] == b[table]:
            verdict[table] = f"same ({len(a[table])} rows)"
        else:
            differ = len(set(map(repr, a[table])) ^ set(map(repr, b[table])))
            verdict[table] = f"{differ} rows differ of {len(a[table])} and {len(b[table])}"
        print(f"{table:24s} {verdict[table]}")
    print(json.dumps(verdict))


if __name__ == "__main__":
    main()
