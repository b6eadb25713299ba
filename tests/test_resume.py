"""Runs that survive real life, on the tiny model: kill -9 at five points and resume to exactly the rows and
adapters of an uninterrupted run; a second live process refused; flags and files that contradict the record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import ROOT
from curriculum.cli.app import app
from warehouse.db import Warehouse

# Columns that measure time or name this machine's folders: everything else must be equal, row for row.
VOLATILE = {"seconds", "train_wall_s", "probe_s", "check_s", "started_at", "finished_at", "decided_at",
            "adapter_path", "created_at", "applied_at", "baseline_probe_s"}
TABLES = {"stages": "stage", "train_steps": "stage, step", "probe_results": "stage, node_id, probe_index, item",
          "decisions": "seq", "node_scores": "stage, node_id", "node_status": "stage, node_id", "run_files": "path"}


def _timeless(value):
    """A decision's signals without the timings they carry (a flat stage's signals hold its result)."""
    if isinstance(value, str) and value.startswith("{"):
        doc = json.loads(value)
        return json.dumps({k: v for k, v in doc.items() if k not in VOLATILE}, sort_keys=True)
    return value


def warehouse_rows(db: Path, run_id: str) -> dict[str, list[tuple]]:
    wh = Warehouse(db)
    out = {}
    for table, order in TABLES.items():
        cols, rows = wh.query(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY {order}", [run_id])
        keep = [i for i, c in enumerate(cols) if c not in VOLATILE]
        out[table] = [tuple(_timeless(row[i]) for i in keep) for row in rows]
    return out


def adapters(runs: Path) -> dict[str, dict]:
    """Each stage's adapter tensors (folders moved aside left out)."""
    return {p.parent.name: load_file(p) for p in sorted(runs.glob("stage-*/adapter_model.safetensors"))
            if p.parent.name.removeprefix("stage-").isdigit()}


def _mtimes(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("stage-*/adapter_model.safetensors")}


def _run(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as handle:  # a file, not a pipe: the test reads it while the run goes on
        return subprocess.Popen([sys.executable, "-m", "curriculum.cli.app", "run", *args], cwd=ROOT, env=env,
                                stdout=handle, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it started dies with it
        except ProcessLookupError:
            pass
    return log.read_text()


@pytest.mark.timeout(1200)
def test_killed_at_five_points_resumes_to_the_uninterrupted_run(paths_run, tmp_path: Path) -> None:
    import prefect.settings

    ref_dir, ref_graph, run_id = paths_run  # the same graph, seed and run id, run once without a break
    for f in ref_dir.glob("*.jsonl"):
        shutil.copy(f, tmp_path)
    graph = Path(shutil.copy(ref_graph, tmp_path))
    db, runs = tmp_path / "w.duckdb", tmp_path / "runs"
    common = [str(graph), "--db", str(db), "--runs-dir", str(runs)]
    # the test harness's Prefect server: each process skips starting its own
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value()}
    outputs, foreign = [], None
    kill_points = ["train:3", "probe:2", "commit:2", "stage:2", "report"]
    for i, point in enumerate(kill_points):
        args = [*common, "--run-id", run_id] if i == 0 else [*common, "--resume", run_id]
        saved = {k: v for k, v in _mtimes(runs / run_id).items() if foreign is None or k != foreign.name}
        log = tmp_path / f"run-{i}.log"
        proc = _run(args, {**env, "CURRICULUM_KILL_AT": point}, log)
        if point == "stage:2":  # meanwhile, a second live process on the run is refused
            lock = runs / run_id / "run.lock"
            deadline = time.monotonic() + 120
            while "policy gated" not in log.read_text():  # past its status writes, not holding the warehouse
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                second = subprocess.run([sys.executable, "-m", "curriculum.cli.app", "run", *args], cwd=ROOT, env=env,
                                        capture_output=True, text=True, timeout=120)
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
            assert second.returncode == 1, second.stdout + second.stderr
            assert second.stderr.strip() == (f"run '{run_id}' is already running: pid {proc.pid} on {os.uname().nodename} "
                                             f"since {json.loads(lock.read_text())['since']} holds {lock}")
        out = _finish(proc, log)
        outputs.append(out)
        assert proc.returncode == -signal.SIGKILL, f"not killed at {point}:\n{out}"
        # killed in its report, a run has all its rows: completed (resume writes the report); else still "running"
        assert Warehouse(db).query("SELECT status FROM runs")[1] == [("completed" if point == "report" else "running",)]
        now = _mtimes(runs / run_id)
        assert all(now[k] == v for k, v in saved.items() if k in now), f"a saved adapter was retrained before {point}"
        if point == "probe:2":  # the probed stage's adapter stays: resume reuses it, it is not trained again
            assert set(now) - set(saved)
        if point == "train:3":  # a folder that is not this stage's: moved aside at resume, the stage trained anew
            recorded = Warehouse(db).query("SELECT count(*) FROM stages")[1][0][0]
            foreign = runs / run_id / f"stage-{recorded + 1}"
            assert not foreign.exists()
            shutil.copytree(runs / run_id / "stage-1", foreign)

    proc = _run([*common, "--resume", run_id], env, tmp_path / "run-last.log")
    out = _finish(proc, tmp_path / "run-last.log")
    assert proc.returncode == 0, out
    assert "taking over the stale lock" in out and not (tmp_path / "runs" / run_id / "run.lock").exists()
    assert all("was interrupted" in o and "taking over the stale lock" in o for o in outputs[1:-1])
    assert any("not this stage's; moved aside to" in o for o in [*outputs[1:], out])
    assert list((runs / run_id).glob("stage-*.aside-1"))
    assert not (runs / run_id / "run.lock").exists()
    assert (runs / run_id / "report.html").exists()
    _, run = Warehouse(db).query("SELECT status, interruptions, error FROM runs")
    assert run == [("completed", len(kill_points) - 1, None)]

    want, got = warehouse_rows(ref_dir / "w.duckdb", run_id), warehouse_rows(db, run_id)
    for table in TABLES:
        assert got[table] == want[table], f"{table} differs from the uninterrupted run"
    ref_adapters, our_adapters = adapters(ref_dir / "runs" / run_id), adapters(runs / run_id)
    assert ref_adapters.keys() == our_adapters.keys() and len(ref_adapters) >= 8
    for stage, tensors in ref_adapters.items():
        assert tensors.keys() == our_adapters[stage].keys()
        assert all((tensors[k] == our_adapters[stage][k]).all() for k in tensors), f"{stage}'s adapter differs"


def _copy_run(paths_run, tmp_path: Path) -> tuple[Path, Path, str]:
    ref_dir, ref_graph, run_id = paths_run
    for f in ref_dir.glob("*.jsonl"):
        shutil.copy(f, tmp_path)
    shutil.copy(ref_dir / "w.duckdb", tmp_path / "w.duckdb")
    return Path(shutil.copy(ref_graph, tmp_path)), tmp_path / "w.duckdb", run_id


@pytest.mark.parametrize("flags, message", [
    (["--seed", "3"], "--seed 3 (the run has 0)"),
    (["--policy", "greedy"], "--policy 'greedy' (the run has 'gated')"),
    (["--max-stages", "2"], "--max-stages 2 (the run has None)"),
    (["--max-steps", "5"], "--max-steps / train_overrides {'max_steps': 5} (the run has None)"),
    (["--runs-dir", "elsewhere"], "--runs-dir 'elsewhere' (the run has "),
    (["--run-id", "other"], "--run-id other contradicts --resume paths"),
])
def test_resume_flag_that_contradicts_the_record_is_one_line(paths_run, tmp_path: Path, flags, message) -> None:
    graph, db, run_id = _copy_run(paths_run, tmp_path)
    before = db.read_bytes()
    result = CliRunner().invoke(app, ["run", str(graph), "--db", str(db), "--resume", run_id, *flags])
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert db.read_bytes() == before and not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


def test_resume_refuses_changed_data_naming_the_files(paths_run, tmp_path: Path) -> None:
    graph, db, run_id = _copy_run(paths_run, tmp_path)
    with open(tmp_path / "learn.jsonl", "a") as f:
        f.write('{"prompt": "One more?", "answer": "zorblat glimmer"}\n')
    (tmp_path / "hard_para.jsonl").write_text((tmp_path / "hard_para.jsonl").read_text().replace("Some", "Other"))
    before = db.read_bytes()
    result = CliRunner().invoke(app, ["run", str(graph), "--db", str(db), "--resume", run_id])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"run '{run_id}' was made from other versions of hard_para.jsonl, learn.jsonl "
                                     f"(beside {graph}); resume needs the same files")
    assert db.read_bytes() == before
    # the warehouse says which data the run used: every file's hash, and its text
    wh = Warehouse(db)
    _, files = wh.query("SELECT f.path, s.text FROM run_files f JOIN file_snapshots s USING (sha256) WHERE run_id = ? "
                        "ORDER BY path", [run_id])
    assert [p for p, _ in files] == sorted(p.name for p in paths_run[0].glob("*.jsonl"))
    assert dict(files)["learn.jsonl"] == (paths_run[0] / "learn.jsonl").read_text()


def test_replay_refuses_a_record_its_policy_does_not_walk(paths_run) -> None:
    from curriculum.policies.registry import make_policy
    from curriculum.loading.validate import load_curriculum
    from flows.curriculum_flow import replay_state

    ref_dir, graph, run_id = paths_run
    wh, loaded = Warehouse(ref_dir / "w.duckdb"), load_curriculum(graph)
    st, stage = replay_state(wh, loaded, run_id, make_policy("gated"))
    assert stage == 9
    with pytest.raises(ValueError, match=r"^run 'paths' stage 1 was recorded as train of learn attempt 1, but replaying "
                                         r"its record picks train of seen attempt 1: the policy's code changed since"):
        replay_state(wh, loaded, run_id, make_policy("fixed"))


@pytest.fixture
def fail_at(monkeypatch):
    """CURRICULUM_FAIL_AT for one in-process run, with the point counters fresh."""
    from flows import faults

    def set_(value: str):
        faults._seen.clear()
        monkeypatch.setenv("CURRICULUM_FAIL_AT", value)
        return faults._seen

    yield set_
    faults._seen.clear()


@pytest.mark.parametrize("fault, tries, reason", [
    ("train-start:oom:1", 2, None),  # out of memory once: retried, and the stage trains
    ("train-start:oom:9", 2, "CUDA out of memory. Tried to allocate 2.00 GiB (CURRICULUM_FAIL_AT at train-start) "
                             "(out of memory: still failing after 1 retry)"),
    ("train-start:data:9", 1, "bad data (CURRICULUM_FAIL_AT at train-start) (data error: not retried)"),
])
def test_transient_failures_are_retried_and_data_errors_back_off_at_once(prefect_harness, tmp_path: Path, fail_at,
                                                                         fault, tries, reason) -> None:
    from flows.curriculum_flow import curriculum
    from helpers import tiny_graph

    seen = fail_at(fault)
    db = tmp_path / "w.duckdb"
    curriculum(graph=str(tiny_graph(tmp_path)), warehouse=str(db), runs_dir=str(tmp_path / "runs"), run_id="r",
               retries=1, retry_delay_s=0, max_stages=1, final_probe=False, train_overrides={"max_steps": 4})
    assert seen["train-start"] == tries
    wh = Warehouse(db)
    _, stages = wh.query("SELECT stage, node_id, status FROM stages")
    _, backoff = wh.query("SELECT reason FROM decisions WHERE action = 'back-off'")
    if reason is None:
        assert stages[0][:2] == (1, "a") and stages[0][2] != "failed" and backoff == []
    else:
        assert stages == [(1, "a", "failed")]
        assert backoff[0][0].startswith("stage 1 failed: ") and backoff[0][0].endswith(reason)
    assert wh.query("SELECT status, error FROM runs")[1] == [("completed", None)]


def test_a_run_that_dies_is_recorded_failed_with_its_error(prefect_harness, tmp_path: Path, fail_at) -> None:
    from flows.curriculum_flow import curriculum
    from helpers import tiny_graph

    fail_at("probe:oom:9")  # the baseline sweep runs out of memory, every time
    db, runs = tmp_path / "w.duckdb", tmp_path / "runs"
    state = curriculum(graph=str(tiny_graph(tmp_path)), warehouse=str(db), runs_dir=str(runs), run_id="dies",
                       retries=0, return_state=True)
    assert state.is_failed()
    _, run = Warehouse(db).query("SELECT status, error, finished_at IS NOT NULL FROM runs")
    assert run == [("failed", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB "
                              "(CURRICULUM_FAIL_AT at probe)", True)]
    assert not (runs / "dies" / "run.lock").exists()


def test_which_failures_are_transient() -> None:
    import torch

    from curriculum.graph.problems import CurriculumError, Problem
    from flows.failures import WorkerLost, transient

    assert transient(torch.OutOfMemoryError("CUDA out of memory")) == "out of memory"
    assert transient(RuntimeError("MPS backend out of memory")) == "out of memory"
    assert transient(WorkerLost("train-stage/gpu run 'x' crashed")) == "lost worker"
    assert transient(ConnectionResetError()) == "lost worker"
    assert transient(ValueError("bad record")) is None
    assert transient(CurriculumError([Problem("a.jsonl", 1, 1, "too long")])) is None
    assert transient(RuntimeError("shape mismatch")) is None


def test_run_lock_takes_over_dead_pids_and_refuses_live_or_foreign_ones(tmp_path: Path) -> None:
    from flows import runlock

    lock = tmp_path / "run.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "since": "then"}))
    assert runlock.acquire(tmp_path, "r") == f"run 'r': taking over the stale lock of pid {dead.pid} (since then), no longer running"
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    runlock.release(tmp_path)
    assert not lock.exists()
    runlock.acquire(tmp_path, "r")  # one process takes its run once: a second take, even its own, is refused
    with pytest.raises(runlock.RunLocked, match=f"^run 'r' is already running: pid {os.getpid()} on "):
        runlock.acquire(tmp_path, "r")
    with pytest.raises(runlock.RunLocked, match=f"^run 'r' is already running: pid {os.getpid()} on "):
        runlock.check(tmp_path, "r")
    runlock.release(tmp_path)
    runlock.check(tmp_path, "r")  # free: nothing raised, nothing written
    assert not lock.exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(json.dumps({"pid": live.pid, "host": os.uname().nodename, "since": "now"}))
        with pytest.raises(runlock.RunLocked, match=f"^run 'r' is already running: pid {live.pid} on "):
            runlock.acquire(tmp_path, "r")
    finally:
        live.kill()
        live.wait()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "now"}))
    with pytest.raises(runlock.RunLocked, match="locked by pid 1 on host elsewhere .* if that process is gone, delete the file"):
        runlock.acquire(tmp_path, "r")
    runlock.release(tmp_path)  # not ours: left alone
    assert json.loads(lock.read_text())["host"] == "elsewhere"


def test_stages_trained_on_the_probers_base_match_stages_that_load_their_own(paths_run, tmp_path: Path,
                                                                             monkeypatch) -> None:
    from flows.curriculum_flow import curriculum

    ref_dir, ref_graph, run_id = paths_run
    for f in ref_dir.glob("*.jsonl"):
        shutil.copy(f, tmp_path)
    graph = Path(shutil.copy(ref_graph, tmp_path))
    monkeypatch.setenv("CURRICULUM_SHARE_BASE", "1")  # what a GPU does: one copy of the base for stages and probes
    import curriculum.training.train as training

    loads = []
    monkeypatch.setattr(training, "load_base", lambda *a, **kw: loads.append(a))  # would fail the stage
    curriculum(graph=str(graph), warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"), run_id=run_id)
    assert loads == []
    want, got = warehouse_rows(ref_dir / "w.duckdb", run_id), warehouse_rows(tmp_path / "w.duckdb", run_id)
    for table in TABLES:
        assert got[table] == want[table], f"{table} differs from the run whose stages loaded their own base"
    ref_adapters, our_adapters = adapters(ref_dir / "runs" / run_id), adapters(tmp_path / "runs" / run_id)
    assert ref_adapters.keys() == our_adapters.keys()
    for stage, tensors in ref_adapters.items():
        assert all((tensors[k] == our_adapters[stage][k]).all() for k in tensors), f"{stage}'s adapter differs"


def test_a_profile_run_resumes_and_an_older_warehouse_reads(tmp_path: Path) -> None:
    """A profile run records only the files of the nodes it walks: resume compares those, not the whole graph's
    (the demo's own resume was refused); a warehouse written before run_files existed reads as "no files"."""
    import duckdb

    from curriculum.runs.inputs import input_files
    from curriculum.runs.lineage import file_rows
    from curriculum.loading.validate import load_curriculum, select_profile
    from flows.resume import check_resume
    from warehouse import records

    loaded = load_curriculum(ROOT / "graphs" / "hyperwords.yaml")
    walked = select_profile(loaded, "demo")
    wh = Warehouse(tmp_path / "w.duckdb")
    records.start_run(wh, "p", curriculum="hyperwords", graph_path="graphs/hyperwords.yaml", yaml_text=loaded.text,
                      graph_hash=loaded.sha256, policy="gated", seed=0, base_model=loaded.spec.model.base,
                      config={"profile": "demo", "runs_dir": str(tmp_path / "runs")}, files=file_rows(walked),
                      texts=[(sha, text) for _, sha, text in input_files(walked)])
    assert len(records.run_files(wh, "p")) < len(input_files(loaded))  # the profile's files only
    _, settings = check_resume(wh, loaded, "p", {})
    assert settings.profile == "demo"
    with duckdb.connect(str(wh.path)) as con:  # as a warehouse from before the migration that added it
        con.execute("DROP TABLE run_files")
    assert records.run_files(wh, "p") == {}
    assert check_resume(wh, loaded, "p", {})[1].profile == "demo"
