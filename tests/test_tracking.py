"""A run mirrored to a real MLflow store and TensorBoard event files, read back through MLflow's own client and
tensorboard's own reader: one MLflow run with a nested run per stage, their loss curves, scores and artifacts; a run
killed between stages and resumed logs each stage once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from helpers import tiny_graph
from warehouse.db import Warehouse


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in `cwd`: MLflow keeps artifacts in ./mlruns beside a SQLite store, so never in the repository."""
    return subprocess.run([sys.executable, "-m", "curriculum.cli.app", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900, start_new_session=True)


@pytest.mark.timeout(1200)
def test_a_killed_and_resumed_run_is_one_mlflow_run_and_one_event_log(prefect_harness, tmp_path: Path) -> None:
    import prefect.settings
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    graph = tiny_graph(tmp_path)
    db, runs, store = tmp_path / "w.duckdb", tmp_path / "runs", f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
           "MLFLOW_TRACKING_URI": store}
    common = [str(graph), "--db", str(db), "--runs-dir", str(runs), "--track", "mlflow", "--track", "tensorboard"]
    killed = _cli([*common, "--run-id", "tr"], {**env, "CURRICULUM_KILL_AT": "stage:2"}, tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    done = _cli([*common[:-4], "--resume", "tr"], env, tmp_path)  # resume takes the trackers from the run's record
    assert done.returncode == 0, done.stdout + done.stderr

    wh = Warehouse(db)
    stages = [s for (s,) in wh.query("SELECT stage FROM stages WHERE run_id = 'tr' ORDER BY stage")[1]]
    steps = wh.query("SELECT stage, step, loss FROM train_steps WHERE run_id = 'tr' ORDER BY stage, step")[1]
    assert len(stages) >= 2 and steps

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tiny")
    parents = client.search_runs([experiment.experiment_id], "tags.`curriculum.kind` = 'run'")
    assert [p.data.tags["curriculum.run_id"] for p in parents] == ["tr"]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["curriculum.policy"] == "gated"
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    logged = sorted(int(c.data.tags["curriculum.stage"]) for c in children)
    assert logged == [0, *stages]  # the baseline and every stage, each once across the kill
    by_stage = {int(c.data.tags["curriculum.stage"]): c for c in children}
    first = by_stage[stages[0]]
    history = client.get_metric_history(first.info.run_id, "loss")
    assert [(m.step, pytest.approx(m.value)) for m in history] == [(step, loss) for s, step, loss in steps if s == stages[0]]
    scores = dict(wh.query("SELECT node_id, score FROM node_scores WHERE run_id = 'tr' AND stage = ?", [stages[0]])[1])
    assert {k.removeprefix("score."): v for k, v in first.data.metrics.items() if k.startswith("score.")} == \
        pytest.approx(scores)
    assert any(k.startswith("decision.") for k in first.data.tags)
    assert len(client.get_metric_history(parent.info.run_id, "train_loss")) == len(steps)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "mastery.md"} <= artifacts

    acc = EventAccumulator(str(runs / "tr" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert sorted(e.step for e in acc.Scalars("curriculum/stage")) == [0, *stages]
    losses = acc.Scalars("train/loss")
    assert len(losses) == len(steps) and [e.step for e in losses] == sorted({e.step for e in losses})


def test_an_unknown_tracker_is_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tiny_graph(tmp_path)), "--db", str(tmp_path / "w.duckdb"),
                                      "--track", "wandb"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "--track wandb: unknown tracker (known: mlflow, tensorboard)"
    assert not (tmp_path / "w.duckdb").exists()
