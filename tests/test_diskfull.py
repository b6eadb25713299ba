"""A full disk while saving an adapter, writing the report or committing to the warehouse (ENOSPC raised there by
CURRICULUM_FAIL_AT=POINT:nospace, and once on a real full file system where one can be mounted): the stage is not
recorded half-written, the run is recorded `failed` with "no space left on device" and where, the command exits 1
without a traceback, and --resume once there is room ends with the rows of a run never short of space."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from helpers import tiny_graph
from test_resume import TABLES, warehouse_rows
from warehouse.db import Warehouse

FLAGS = ["--policy", "fixed", "--max-stages", "2", "--max-steps", "2", "--run-id", "r"]


def _cli_args(root: Path) -> list[str]:
    return [str(root / "graph.yaml"), "--db", str(root / "w.duckdb"), "--runs-dir", str(root / "runs")]


@pytest.fixture(scope="module")
def reference(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run, never short of space."""
    root = tmp_path_factory.mktemp("roomy")
    tiny_graph(root)
    result = CliRunner().invoke(app, ["run", *_cli_args(root), *FLAGS])
    assert result.exit_code == 0, result.output
    return root


def _env(**more: str) -> dict[str, str]:
    import prefect.settings

    return {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(), **more}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("point, where", [
    ("save", "saving stage 1's adapter in {runs}/r/stage-1"),
    ("report", "writing the report {runs}/r/report.html"),
    ("commit", "committing to the warehouse {db}"),
])
def test_no_space_fails_the_run_in_one_line_and_resume_finishes_it(reference: Path, tmp_path: Path, point: str,
                                                                   where: str) -> None:
    tiny_graph(tmp_path)
    runs, db = tmp_path / "runs", tmp_path / "w.duckdb"
    proc = subprocess.run([sys.executable, "-m", "curriculum.cli.app", "run", *_cli_args(tmp_path), *FLAGS], cwd=ROOT,
                          env=_env(CURRICULUM_FAIL_AT=f"{point}:nospace"), capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    message = f"no space left on device {where.format(runs=runs, db=db)}"
    assert proc.returncode == 1, output
    assert "Traceback" not in output, output
    assert proc.stderr.strip().splitlines()[-1] == f"run failed: Flow run encountered an exception: DiskFull: {message}"
    assert Warehouse(db).query("SELECT status, error FROM runs")[1] == [("failed", f"DiskFull: {message}")]
    assert not list(runs.glob("r/*.partial")), "a half-written stage was left behind"
    recorded = Warehouse(db).query("SELECT stage FROM stages ORDER BY stage")[1]
    if point == "save":
        assert recorded == [] and not (runs / "r" / "stage-1").exists()
    resumed = CliRunner().invoke(app, ["run", *_cli_args(tmp_path), "--resume", "r"])
    assert resumed.exit_code == 0, resumed.output
    assert Warehouse(db).query("SELECT status, error FROM runs")[1] == [("completed", None)]
    assert (runs / "r" / "report.html").exists()
    want, got = warehouse_rows(reference / "w.duckdb", "r"), warehouse_rows(db, "r")
    for table in TABLES:
        assert got[table] == want[table], f"{table} differs from the run never short of space"
    assert CliRunner().invoke(app, ["verify", "r", "--runs-dir", str(runs)]).exit_code == 0


def test_a_real_full_file_system_fails_the_run_without_hanging(prefect_harness, tmp_path: Path) -> None:
    """The runs folder on a 300 KB tmpfs (root and a mountable tmpfs needed: skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        tiny_graph(tmp_path)
        args = [str(tmp_path / "graph.yaml"), "--db", str(tmp_path / "w.duckdb"), "--runs-dir", str(mount / "runs")]
        proc = subprocess.run([sys.executable, "-m", "curriculum.cli.app", "run", *args, *FLAGS], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output
    status, error = Warehouse(tmp_path / "w.duckdb").query("SELECT status, error FROM runs")[1][0]
    assert status == "failed" and "no space left on device saving stage 1's adapter" in error, error
