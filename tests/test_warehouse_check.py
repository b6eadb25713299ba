"""A warehouse file a run must not write: damaged, foreign, or made by a newer version. Each refused by `run` in one
line naming the file, exit 1, before anything is written (no run folder, no rows, the file's bytes unchanged)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from curriculum.cli.app import app
from helpers import tiny_graph
from warehouse import records
from warehouse.db import Warehouse, WarehouseError, check_file, latest_version


def _real_warehouse(path: Path) -> Path:
    wh = Warehouse(path)
    records.start_run(wh, "old", curriculum="tiny", graph_path="g.yaml", yaml_text="x", graph_hash="0" * 64,
                      policy="gated", seed=0, base_model="tiny-random", config={})
    return path


def _truncated(path: Path) -> Path:
    _real_warehouse(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _foreign(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE invoices (id INTEGER, total DOUBLE)")
    return path


def _newer(path: Path) -> Path:
    _real_warehouse(path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, 'from_the_future.sql')", [latest_version() + 5])
    return path


def _not_duckdb(path: Path) -> Path:
    path.write_text("hello, this is a text file\n" * 100)
    return path


@pytest.mark.parametrize("make, message", [
    (_truncated, "a truncated DuckDB warehouse ("),
    (_not_duckdb, "not a readable DuckDB warehouse (damaged or truncated?)"),
    (_foreign, "a DuckDB file, but not a curriculum warehouse (no schema_version table; it has invoices)"),
    (_newer, "made by a newer version of curriculum (schema version {v}; this one knows up to {k}): upgrade"),
])
def test_run_refuses_an_unusable_warehouse_before_writing(tmp_path: Path, make, message: str) -> None:
    graph = tiny_graph(tmp_path)
    db = make(tmp_path / "w.duckdb")
    before = db.read_bytes()
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(graph), "--db", str(db), "--runs-dir", str(runs), "--run-id", "r1"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    expected = message.format(v=latest_version() + 5, k=latest_version())
    assert len(lines) == 1 and lines[0].startswith(f"{db}: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not runs.exists()
    assert db.read_bytes() == before  # not migrated, not repaired, not touched


def test_newer_warehouse_is_never_migrated_backwards(tmp_path: Path) -> None:
    db = _newer(tmp_path / "w.duckdb")
    with pytest.raises(WarehouseError, match="newer version"):
        Warehouse(db).write("runs", [])  # the writer's own migration refuses too, not only the up-front check
    with pytest.raises(WarehouseError, match="newer version"):
        records.set_run_status(Warehouse(db), "old", "failed")
    assert Warehouse(db).query("SELECT status FROM runs")[1] == [("running",)]


def test_a_new_an_empty_duckdb_and_a_current_warehouse_pass(tmp_path: Path) -> None:
    check_file(tmp_path / "absent.duckdb")
    with duckdb.connect(str(tmp_path / "empty.duckdb")):
        pass
    check_file(tmp_path / "empty.duckdb")
    check_file(_real_warehouse(tmp_path / "w.duckdb"))
    assert not (tmp_path / "absent.duckdb").exists()
