"""Warehouse speed: bulk-append 1,000,000 probe rows, and the mastery view over 10,000,000.

Baseline measured in the same run: row-by-row `executemany` inserts (the obvious way),
timed on a slice and reported as a rows/s ratio. Last line: one JSON object.
Run: .venv/bin/python bench/warehouse.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/warehouse.py would shadow the `warehouse` package when run as a script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import json
import tempfile
import time

import pyarrow as pa

from warehouse.db import Warehouse, connect

APPEND_ROWS = 1_000_000
QUERY_ROWS = 10_000_000
BASELINE_ROWS = 20_000


def probe_rows(n: int, run: str = "bench") -> pa.Table:
    """Realistic probe rows: 200 nodes x 50 items per stage, short texts, all score columns."""
    idx = pa.array(range(n), pa.int64())
    import pyarrow.compute as pc

    stage = pc.cast(pc.divide(idx, 10_000), pa.int32())
    node_no = pc.divide(idx, 50)
    node = pc.binary_join_element_wise("node-", pc.cast(node_no, pa.string()), "")
    score = pc.divide(pc.cast(pc.bit_wise_and(idx, 1023), pa.float64()), 1023.0)
    return pa.table({
        "run_id": pa.array([run] * n),
        "stage": stage,
        "node_id": node,
        "probe_kind": pa.array(["paraphrase"] * n),
        "probe_index": pa.array([0] * n, pa.int32()),
        "item": pc.cast(pc.subtract(idx, pc.multiply(node_no, 50)), pa.int32()),
        "prompt": pa.array(["What does fogwhisperfrost mean, in your own words?"] * n),
        "output": pa.array(["The trembling hush of an early forest morning."] * n),
        "reference": pa.array(["The quiet, shivering stillness of a forest at dawn."] * n),
        "score": score,
        "sim": score,
        "novelty": score,
        "copied": pc.less(score, 0.05),
        "logprob": pa.nulls(n, pa.float64()),
        "passed": pc.greater_equal(score, 0.7),
    })


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(Path(tmp) / "bench.duckdb")
        table = probe_rows(APPEND_ROWS)
        wh.write("runs", [])  # migrate outside the timing
        t0 = time.perf_counter()
        wh.write("probe_results", table)
        append_s = time.perf_counter() - t0

        base = Warehouse(Path(tmp) / "baseline.duckdb")
        rows = table.slice(0, BASELINE_ROWS).to_pylist()
        cols = list(rows[0])
        with base.transaction() as con:
            pass
        t0 = time.perf_counter()
        with base.transaction() as con:
            con.executemany(
                f"INSERT INTO probe_results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [list(r.values()) for r in rows],
            )
        baseline_rows_per_s = BASELINE_ROWS / (time.perf_counter() - t0)

        big = Warehouse(Path(tmp) / "big.duckdb")
        chunk = probe_rows(1_000_000)
        for i in range(QUERY_ROWS // 1_000_000):
            big.write("probe_results", chunk.set_column(0, "run_id", pa.array([f"run{i}"] * chunk.num_rows)))
        with connect(big.path, read_only=True) as con:
            con.execute("SELECT count(*) FROM mastery_matrix").fetchall()  # warm the file cache
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                rows_out = con.execute("SELECT * FROM mastery_matrix").fetchall()
                times.append(time.perf_counter() - t0)
        query_s = min(times)

    ours = APPEND_ROWS / append_s
    print(f"append {APPEND_ROWS:,} probe rows (Arrow, one transaction): {append_s:.3f} s  ({ours:,.0f} rows/s)")
    print(f"baseline executemany, {BASELINE_ROWS:,} rows: {baseline_rows_per_s:,.0f} rows/s"
          f"  -> Arrow is {ours / baseline_rows_per_s:.0f}x faster")
    print(f"mastery_matrix over {QUERY_ROWS:,} rows -> {len(rows_out):,} cells: {query_s:.3f} s (best of 3)")
    print(json.dumps({
        "append_1m_rows_s": round(append_s, 3),
        "mastery_query_10m_rows_s": round(query_s, 3),
        "append_vs_executemany": round(ours / baseline_rows_per_s, 1),
    }))


if __name__ == "__main__":
    main()
