"""Warehouse on a real DuckDB file: migrations, bulk writes, views, a concurrent reader."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from warehouse.db import Warehouse, connect, migrate, migrations, schema_version


def _probe(run: str, stage: int, node: str, item: int, score: float, **extra) -> dict:
    return {"run_id": run, "stage": stage, "node_id": node, "probe_kind": "paraphrase", "probe_index": 0,
            "item": item, "score": score, "passed": score >= 0.7, **extra}


def _stage(run: str, stage: int, node: str, parent: int | None, status: str = "done") -> dict:
    return {"run_id": run, "stage": stage, "node_id": node, "attempt": 1, "kind": "train", "parent_stage": parent,
            "adapter_path": f"adapters/{stage}", "status": status}


def test_migrations_apply_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(versions) and len(versions) >= 2
    with connect(path) as con:
        assert migrate(con) == versions
        assert migrate(con) == []
        assert schema_version(con) == versions[-1]
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(versions)


def test_migrate_from_older_version(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    first_version, first_name, first_sql = migrations()[0]
    with connect(path) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                    " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        con.execute(first_sql)
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [first_version, first_name])
    with connect(path) as con:
        assert migrate(con) == [v for v, _, _ in migrations()[1:]]
        con.execute("SELECT * FROM mastery_matrix").fetchall()


def test_views_compute_mastery_forgetting_and_lineage(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    with wh.transaction() as con:
        wh.append(con, "stages", [_stage("r", 1, "a", None), _stage("r", 2, "b", 1), _stage("r", 3, "c", 2)])
        wh.append(con, "probe_results", [
            _probe("r", 0, "a", 1, 0.2), _probe("r", 0, "a", 2, 0.4),
            _probe("r", 1, "a", 1, 0.9), _probe("r", 1, "a", 2, 0.7),
            _probe("r", 2, "a", 1, 0.5), _probe("r", 2, "a", 2, 0.5),
            _probe("r", 3, "a", 1, 0.6), _probe("r", 3, "a", 2, 0.6),
            _probe("r", 2, "b", 1, 0.8),
        ])
    cols, rows = wh.query("SELECT stage, score, pass_rate, n_items FROM mastery_matrix WHERE node_id = 'a' ORDER BY stage")
    assert [(s, round(v, 6), p, n) for s, v, p, n in rows] == [(0, 0.3, 0.0, 2), (1, 0.8, 1.0, 2), (2, 0.5, 0.0, 2), (3, 0.6, 0.0, 2)]
    _, rows = wh.query("SELECT node_id, trained_stage, score_after_training, final_score, bwt, max_drop FROM forgetting ORDER BY node_id")
    (a, b) = rows
    assert a[:2] == ("a", 1) and a[2] == pytest.approx(0.8) and a[3] == pytest.approx(0.6)
    assert a[4] == pytest.approx(-0.2) and a[5] == pytest.approx(0.3)
    assert b[:2] == ("b", 2) and b[4] == pytest.approx(0.0)
    _, rows = wh.query("SELECT stage, depth, lineage, parent_adapter FROM adapter_lineage ORDER BY stage")
    assert rows == [(1, 0, ["a"], None), (2, 1, ["a", "b"], "adapters/1"), (3, 2, ["a", "b", "c"], "adapters/2")]


def test_duplicate_rows_rejected_and_transaction_rolled_back(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.write("probe_results", [_probe("r", 0, "a", 1, 0.5)])
    with pytest.raises(duckdb.ConstraintException):
        with wh.transaction() as con:
            wh.append(con, "stages", [_stage("r", 1, "a", None)])
            wh.append(con, "probe_results", [_probe("r", 0, "a", 2, 0.5), _probe("r", 0, "a", 1, 0.5)])
    assert wh.query("SELECT count(*) FROM probe_results")[1] == [(1,)]
    assert wh.query("SELECT count(*) FROM stages")[1] == [(0,)]


WRITER = textwrap.dedent("""
    import sys, time
    from warehouse.db import Warehouse
    wh = Warehouse(sys.argv[1])
    txns, every = int(sys.argv[2]), int(sys.argv[3])
    for t in range(txns):
        wh.write("probe_results", [{"run_id": "r", "stage": t, "node_id": "a", "probe_kind": "transfer",
                 "probe_index": 0, "item": i, "score": 0.5, "passed": False} for i in range(100)])
        if (t + 1) % every == 0 and t + 1 < txns:
            sys.stdin.readline()  # hold here until the reader has seen this many rows
        time.sleep(0.02)
""")


def test_reader_in_second_process_while_writer_appends(tmp_path: Path) -> None:
    """The reader polls while the writer commits freely; the writer also waits at a few marks until the reader
    has seen them, so the test proves the reader gets in between writes without depending on the scheduler."""
    path = tmp_path / "w.duckdb"
    Warehouse(path).write("runs", [])  # create + migrate
    txns, every = 40, 10
    marks = {t * 100 for t in range(every, txns, every)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(txns), str(every)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert writer.stdin is not None
    seen: list[int] = []
    deadline = time.monotonic() + 120
    try:
        while writer.poll() is None:
            assert time.monotonic() < deadline, f"reader still waiting on the writer after 120 s: {seen[-5:]}"
            with connect(path, read_only=True) as con:
                count = con.execute("SELECT count(*) FROM probe_results").fetchone()[0]
            seen.append(count)
            if count in marks:
                marks.discard(count)
                writer.stdin.write("go\n")
                writer.stdin.flush()
            time.sleep(0.01)
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    with connect(path, read_only=True) as con:
        final = con.execute("SELECT count(*) FROM probe_results").fetchone()[0]
    assert final == txns * 100
    assert not marks, f"the writer went past marks the reader never saw: {sorted(marks)}"
    assert seen == sorted(seen), "a reader saw rows disappear"
    assert all(n % 100 == 0 for n in seen), "a reader saw half a transaction"
    assert len(set(seen)) > 3, f"reader never got in between writes: {seen}"


def test_sql_command_prints_table_and_fails_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    Warehouse(db).write("probe_results", [_probe("r", 0, "a", 1, 0.25)])
    runner = CliRunner()
    ok = runner.invoke(app, ["sql", "SELECT node_id, score FROM mastery_matrix", "--db", str(db)])
    assert ok.exit_code == 0, ok.output
    assert "node_id" in ok.stdout and "0.25" in ok.stdout and "1 row(s)" in ok.stdout
    bad = runner.invoke(app, ["sql", "SELEC nonsense", "--db", str(db)])
    assert bad.exit_code == 1 and isinstance(bad.exception, SystemExit)
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["sql", "SELECT 1", "--db", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 1 and not (tmp_path / "none.duckdb").exists()


HOLDER = textwrap.dedent("""
    import sys, time
    import duckdb
    con = duckdb.connect(sys.argv[1])  # an interactive session left open on the file
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_writer_waits_for_an_open_session_and_says_so(tmp_path: Path, monkeypatch, caplog) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).write("runs", [])
    monkeypatch.setattr("warehouse.db.WAIT_MESSAGE_EVERY_S", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="warehouse.db"):
            Warehouse(path).write("probe_results", [_probe("r", 0, "a", 1, 0.5)])
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert waited > 1.5
    assert any("waiting" in r.message and f"PID {holder.pid}" in r.message for r in caplog.records), caplog.text
    assert Warehouse(path).query("SELECT count(*) FROM probe_results")[1] == [(1,)]


def test_writer_gives_up_after_its_timeout_with_a_clear_message(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "w.duckdb"
    Warehouse(path).write("runs", [])
    monkeypatch.setenv("CURRICULUM_LOCK_TIMEOUT", "0.5")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match=r"gave up after \d+ s waiting .*CURRICULUM_LOCK_TIMEOUT.*PID"):
            Warehouse(path).write("probe_results", [_probe("r", 0, "a", 1, 0.5)])
    finally:
        holder.kill()
        holder.wait()
