"""`curriculum runs` lists what the warehouse holds; `curriculum show RUN` prints a run's tables again."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from curriculum.cli.app import app
from warehouse.db import Warehouse


def test_runs_lists_each_run_with_its_stages(paths_run) -> None:
    ref_dir, graph, run_id = paths_run
    db = ref_dir / "w.duckdb"
    result = CliRunner().invoke(app, ["runs", "--db", str(db)])
    assert result.exit_code == 0, result.output
    stages = Warehouse(db).query("SELECT count(*) FROM stages WHERE run_id = ? AND kind <> 'final'", [run_id])[1][0][0]
    row = next(line for line in result.stdout.splitlines() if line.startswith(run_id))
    cells = row.split()
    assert cells[:6] == [run_id, str(graph), "gated", "0", "completed", str(stages)], row
    assert stages > 1 and "1 run(s) in" in result.stdout


def test_runs_on_a_new_warehouse_says_so_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"no runs in {tmp_path / 'none.duckdb'} yet")
    assert not (tmp_path / "none.duckdb").exists()


def test_show_prints_the_runs_mastery_again(paths_run) -> None:
    ref_dir, _, run_id = paths_run
    db = ref_dir / "w.duckdb"
    result = CliRunner().invoke(app, ["show", run_id, "--db", str(db)])
    assert result.exit_code == 0, result.output
    statuses = dict(Warehouse(db).query("SELECT node_id, status FROM final_status WHERE run_id = ?", [run_id])[1])
    lines = result.stdout.splitlines()
    for node, status in statuses.items():  # each node's row names it and its end status
        assert any(line.split()[:2] == [node, status] for line in lines), (node, status, result.stdout)
    assert f"report:    {ref_dir / 'runs' / run_id / 'report.html'}" in lines


def test_show_refuses_an_unknown_run(paths_run) -> None:
    ref_dir, _, _ = paths_run
    result = CliRunner().invoke(app, ["show", "ghost", "--db", str(ref_dir / "w.duckdb")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"no run 'ghost' in {ref_dir / 'w.duckdb'} (see `curriculum runs`)"
