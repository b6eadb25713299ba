"""Stopping a run as people and schedulers do: Ctrl-C (SIGINT, not ignored) and SIGTERM end the process within
seconds, without a traceback, the run recorded `interrupted`; --resume then finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli import app
from helpers import tiny_graph
from warehouse.db import Warehouse

STOP_WITHIN_S = 30  # "within seconds" on an idle machine; generous for a loaded one


def _default_sigint() -> None:
    """A child of a non-interactive shell's background job inherits SIGINT ignored: Ctrl-C must reach this one."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_within_seconds_and_it_resumes(prefect_harness, tmp_path: Path, sig: int) -> None:
    import prefect.settings

    graph = tiny_graph(tmp_path)
    args = [str(graph), "--db", str(tmp_path / "w.duckdb"), "--runs-dir", str(tmp_path / "runs")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    log = tmp_path / "run.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "curriculum.cli", "run", *args, "--run-id", "r", "--policy",
                                 "fixed", "--max-steps", "40"], cwd=ROOT, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=_default_sigint)
    try:
        deadline = time.monotonic() + 300
        while "train a (stage 1" not in log.read_text():  # training its first stage: mid-run, rows and files open
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(sig)
        sent = time.monotonic()
        proc.wait(timeout=STOP_WITHIN_S)
        took = time.monotonic() - sent
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out = log.read_text()
    assert proc.returncode != 0 and took < STOP_WITHIN_S, out
    assert "Traceback" not in out, out
    assert Warehouse(tmp_path / "w.duckdb").query("SELECT status FROM runs")[1] == [("interrupted",)]
    assert not (tmp_path / "runs" / "r" / "run.lock").exists()
    resumed = CliRunner().invoke(app, ["run", *args, "--resume", "r"])
    assert resumed.exit_code == 0, resumed.output
    assert Warehouse(tmp_path / "w.duckdb").query("SELECT status, interruptions FROM runs")[1] == [("completed", 1)]
