"""A run's setup is written once (flows.setup.plan_run): the CLI and the flow refuse the same inputs with the same
line, as one error type, before anything is written; the run's lock is taken by the flow alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curriculum.cli.app import app
from curriculum.loading.validate import load_curriculum
from flows.setup import SetupError, given_settings, plan_run
from helpers import tiny_graph
from warehouse import records
from warehouse.db import Warehouse

REFUSALS = [  # (flags as `curriculum run` takes them, the same as plan_run's arguments, the line)
    (["--policy", "nope"], {"given": {"policy": "nope"}}, "unknown policy 'nope' (expected one of "),
    (["--profile", "nope"], {"given": {"profile": "nope"}}, "graph.yaml:1:1: unknown profile 'nope'"),
    (["--run-id", "old"], {"run_id": "old"}, "run 'old' already exists in "),
    (["--resume", "ghost"], {"resume": "ghost"}, "no run 'ghost' in "),
    (["--resume", "old", "--from", "old"], {"resume": "old", "from_run": "old"},
     "--from starts a new run and --resume continues one: give one of them"),
    (["--resume", "old", "--seed", "4"], {"resume": "old", "given": {"seed": 4}},
     "run 'old' was started with other settings: --seed 4 (the run has 0)"),
]


def _warehouse_with_a_run(tmp_path: Path, graph: Path) -> Path:
    db = tmp_path / "w.duckdb"
    loaded = load_curriculum(graph)
    records.start_run(Warehouse(db), "old", curriculum="tiny", graph_path=str(graph), yaml_text=loaded.text,
                      graph_hash=loaded.sha256, policy="gated", seed=0, base_model="tiny-random", config={})
    return db


@pytest.mark.parametrize("flags, call, line", REFUSALS, ids=[" ".join(f[0]) for f in REFUSALS])
def test_cli_and_plan_refuse_alike_before_writing(tmp_path: Path, flags: list[str], call: dict, line: str) -> None:
    graph = tiny_graph(tmp_path)
    db = _warehouse_with_a_run(tmp_path, graph)
    before = db.read_bytes()
    with pytest.raises(SetupError) as info:
        plan_run(load_curriculum(graph), given_settings(runs_dir=tmp_path / "runs", **call.get("given", {})), warehouse=db,
                 run_id=call.get("run_id"), resume=call.get("resume"), from_run=call.get("from_run"))
    assert line in str(info.value) and "\n" not in str(info.value)
    result = CliRunner().invoke(app, ["run", str(graph), "--db", str(db), "--runs-dir", str(tmp_path / "runs"), *flags])
    assert result.exit_code == 1
    assert result.stderr.strip() == str(info.value)
    assert db.read_bytes() == before and not (tmp_path / "runs").exists()


def test_a_bad_training_override_names_the_field(tmp_path: Path) -> None:
    graph = tiny_graph(tmp_path)
    with pytest.raises(SetupError, match=r"^train_overrides: max_stepz: Extra inputs are not permitted$"):
        plan_run(load_curriculum(graph), given_settings(train_overrides={"max_stepz": 5}), warehouse=tmp_path / "w.duckdb")
    assert not (tmp_path / "w.duckdb").exists()


def test_the_flow_refuses_with_the_plans_line(prefect_harness, tmp_path: Path) -> None:
    """A deployment run reaches the flow without the CLI: it refuses through the same plan, nothing written."""
    from flows.curriculum_flow import curriculum

    graph = tiny_graph(tmp_path)
    db = _warehouse_with_a_run(tmp_path, graph)
    before = db.read_bytes()
    with pytest.raises(SetupError, match=r"^run 'old' was started with other settings: --policy 'fixed'"):
        curriculum(graph=str(graph), warehouse=str(db), resume="old", policy="fixed", runs_dir=str(tmp_path / "runs"))
    assert db.read_bytes() == before and not (tmp_path / "runs").exists()
