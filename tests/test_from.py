"""`curriculum run --from` on the tiny model: a finished run, a branch added to its graph, `diff`, a
continued run that trains only the new branch, and one killed mid-way that resumes to the same end."""

from __future__ import annotations

import filecmp
import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import write_jsonl
from warehouse.db import Warehouse

A, C = "zorblat glimmer", "velvet thunder"


def _node(root: Path, name: str, right: str, wrong: str, requires: str = "") -> str:
    """A node whose choice items are right once its training answers' words are learned (raw scoring: the lean
    towards trained words is what the tiny model learns in one stage; see tests/paths_graph.py)."""
    write_jsonl(root / f"{name}.jsonl", [{"prompt": f"Tell me about {name} {i}.", "answer": f"{right} {right} {right}"}
                                         for i in range(12)])
    write_jsonl(root / f"{name}_mc.jsonl", [{"prompt": f"Pick for {name} {i}.", "choices": [wrong, right], "answer": 1}
                                            for i in range(4)])
    return (f"  {name}:\n    layer: definition\n    data: {name}.jsonl\n{requires}"
            f"    probes: [{{kind: transfer, items: {name}_mc.jsonl, scoring: raw}}]\n")


@pytest.fixture(scope="module")
def family(prefect_harness, tmp_path_factory: pytest.TempPathFactory):
    """A finished run of one node (a), the graph with c added under it, and a run continued from the first."""
    from flows.curriculum_flow import curriculum

    tmp = tmp_path_factory.mktemp("from")
    head = ("curriculum: family\nmodel: {base: tiny-random}\npolicy: gated\n"
            "defaults:\n  train: {epochs: 2, lr: 0.01, batch_size: 4, max_length: 64}\n  gate: {min_score: 0.5}\nnodes:\n")
    graph = tmp / "graph.yaml"
    graph.write_text(head + _node(tmp, "a", A, "quiet market"))
    db, runs = tmp / "w.duckdb", tmp / "runs"
    curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(runs), run_id="parent")
    edited = tmp / "edited.yaml"  # c's wrong option is what the parent's adapter learned: it fails until trained
    edited.write_text(graph.read_text() + _node(tmp, "c", C, A, requires="    requires: [a]\n"))
    curriculum(graph=str(edited), warehouse=str(db), runs_dir=str(runs), run_id="child", from_run="parent")
    return tmp, edited, db, runs


def _stages(wh: Warehouse, run_id: str) -> list[tuple]:
    return wh.query("SELECT stage, node_id, kind, parent_stage, status FROM stages WHERE run_id = ? ORDER BY stage",
                    [run_id])[1]


def test_diff_names_the_new_branch(family) -> None:
    from curriculum.cli.app import app

    tmp, edited, db, _ = family
    res = CliRunner().invoke(app, ["diff", "parent", str(edited), "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    found = json.loads(res.output)
    assert found["added"] == ["c"] and found["removed"] == [] and found["changed"] == {}
    assert [(p["node_id"], p["action"]) for p in found["plan"]] == [("a", "keep"), ("c", "schedule")]
    res = CliRunner().invoke(app, ["diff", "parent", str(edited), "--db", str(db)], terminal_width=80)
    assert res.exit_code == 0 and "added:   c" in res.output and "keep 1 · schedule 1" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    res = CliRunner().invoke(app, ["diff", "nosuch", str(edited), "--db", str(db)])
    assert res.exit_code == 1 and "no run 'nosuch'" in res.output


def test_from_trains_only_the_new_branch(family) -> None:
    tmp, _, db, runs = family
    wh = Warehouse(db)
    parent = dict(wh.query("SELECT node_id, status FROM final_status WHERE run_id = 'parent'")[1])
    assert parent == {"a": "mastered"} and _stages(wh, "parent")[0][1:] == ("a", "train", None, "done")
    stages = _stages(wh, "child")
    # only the new branch trains; a kept node may be rehearsed (upkeep) if c's stage pulls it below its gate
    assert {s[1] for s in stages if s[2] == "train"} == {"c"} and stages[-1][1:3] == ("*", "final")
    assert {s[1:3] for s in stages[:-1]} <= {("c", "train"), ("a", "rehearse")}
    assert stages[0][3] == 0  # the first stage continues stage 0: the parent's adapter, copied into the run
    src = Path(wh.query("SELECT adapter_path FROM stages WHERE run_id = 'parent' AND kind = 'final'")[1][0][0])
    assert filecmp.cmp(src / "adapter_model.safetensors", runs / "child" / "stage-0" / "adapter_model.safetensors",
                       shallow=False)
    _, decisions = wh.query("SELECT node_id, action, reason FROM decisions WHERE run_id = 'child' AND stage = 0 ORDER BY seq")
    actions = {(n, a) for n, a, _ in decisions}
    assert actions == {("c", "schedule"), ("a", "inherit")}
    child = dict(wh.query("SELECT node_id, status FROM final_status WHERE run_id = 'child'")[1])
    assert child == {"a": "mastered", "c": "mastered"}
    assert wh.query("SELECT parent_run FROM runs WHERE run_id = 'child'")[1] == [("parent",)]
    from warehouse.lineage import mastered_at

    c_passed = next(s[0] for s in stages if s[1:3] == ("c", "train") and s[4] == "done")
    assert mastered_at(wh, "child") == {"a": ("parent", 1), "c": ("child", c_passed)}  # a grandchild reads a's here
    _, files = wh.query("SELECT node_id, file_key FROM run_files WHERE run_id = 'child' ORDER BY ALL")
    assert ("c", "data") in files and ("c", "probes[0]") in files and ("a", "data") in files
    _, lineage = wh.query("SELECT lineage FROM adapter_lineage WHERE run_id = 'child' AND stage = 1")
    assert lineage == [(["c"],)]
    report = (runs / "child" / "report.html").read_text()
    assert 'href="../parent/report.html"' in report


def test_from_refuses_what_it_cannot_continue(family) -> None:
    from curriculum.cli.app import app

    tmp, edited, db, runs = family
    other = tmp / "other_model.yaml"
    other.write_text(edited.read_text().replace("model: {base: tiny-random}", "model: {base: tiny-random, lora: {r: 4}}"))
    before = Warehouse(db).query("SELECT count(*) FROM runs")[1]
    res = CliRunner().invoke(app, ["run", str(other), "--from", "parent", "--db", str(db), "--runs-dir", str(runs)])
    assert res.exit_code == 1 and "cannot continue run 'parent'" in res.output and "model.lora.r" in res.output
    assert Warehouse(db).query("SELECT count(*) FROM runs")[1] == before


@pytest.mark.timeout(600)
def test_from_killed_then_resumed_reaches_the_same_end(family, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL

    from test_resume import _finish, _run  # the kill harness of the plain resume test

    tmp, edited, db, runs = family
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the subprocess talks to the harness's server
    common = [str(edited), "--db", str(db), "--runs-dir", str(runs)]
    wh = Warehouse(db)
    # SIGKILL between stages, the first time: after the first probe on the inherited adapter, before stage 1
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CURRICULUM_KILL_AT": "stage:1"}
    log = tmp / "killed.log"
    proc = _run([*common, "--from", "parent", "--run-id", "killed"], env, log)
    _finish(proc, log)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert wh.query("SELECT count(*) FROM decisions WHERE run_id = 'killed' AND stage = 0")[1][0][0] > 0
    assert wh.query("SELECT count(*) FROM stages WHERE run_id = 'killed'")[1] == [(0,)]
    assert wh.query("SELECT status FROM runs WHERE run_id = 'killed'")[1] == [("running",)]
    assert (runs / "killed" / "stage-0" / "adapter_model.safetensors").exists()
    from flows.curriculum_flow import curriculum

    assert curriculum(graph=str(edited), warehouse=str(db), runs_dir=str(runs), resume="killed") == "killed"
    strip = lambda rows: [r[1:] for r in rows]  # noqa: E731
    assert strip(_stages(wh, "killed")) == strip(_stages(wh, "child"))
    q = "SELECT stage, node_id, action FROM decisions WHERE run_id = ? ORDER BY seq"
    assert wh.query(q, ["killed"])[1] == wh.query(q, ["child"])[1]
    q = "SELECT node_id, status FROM final_status WHERE run_id = ? ORDER BY node_id"
    assert wh.query(q, ["killed"])[1] == wh.query(q, ["child"])[1]
