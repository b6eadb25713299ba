"""`prefect deployment run curriculum/main` against a real Prefect server on loopback.

Starts `prefect server start` on a free 127.0.0.1 port with a temporary PREFECT_HOME and
`curriculum serve`, triggers runs as a user would, checks states through the API and rows
in DuckDB, and stops both processes by PID whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import tiny_graph
from warehouse.db import Warehouse

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _api(url: str, body: dict | None = None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(600)
def test_deployment_run_end_to_end(tmp_path: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PREFECT_UI_ENABLED": "false"}
    work = tmp_path / "project"
    work.mkdir()
    graph = tiny_graph(work)
    (work / "broken.yaml").write_text(graph.read_text().replace("layer: causality", "layer: causation"))
    procs: list[subprocess.Popen] = []
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("server", "serve")}
    try:
        procs.append(subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, cwd=work, stdout=logs["server"], stderr=subprocess.STDOUT, start_new_session=True))
        status = subprocess.run([str(BIN / "prefect"), "server", "status", "--wait", "--timeout", "180"], env=env,
                                capture_output=True, text=True, timeout=200)
        assert status.returncode == 0, status.stdout + status.stderr
        procs.append(subprocess.Popen([str(BIN / "curriculum"), "serve"], env=env, cwd=work, stdout=logs["serve"],
                                      stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: _api(f"{api}/deployments/name/curriculum/main")["name"] == "main", 120, "the deployment")
        deployment = _api(f"{api}/deployments/name/curriculum/main")
        params = deployment["parameter_openapi_schema"]["properties"]
        assert {"graph", "policy", "seed", "warehouse", "resume"} <= set(params)
        assert all(params[p].get("description") for p in ("graph", "policy", "seed", "warehouse", "resume"))

        def run(graph_name: str, db: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
            proc = subprocess.run(
                [str(BIN / "prefect"), "deployment", "run", "curriculum/main", "--param", f"graph={graph_name}",
                 "--param", f"warehouse={db}", *extra, "--watch", "--watch-timeout", "300"],
                env=env, cwd=work, capture_output=True, text=True, timeout=360)
            runs = _api(f"{api}/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC", "limit": 1,
                                                    "deployments": {"id": {"any_": [deployment["id"]]}}})
            return proc, runs[0]

        ok, flow_run = run("graph.yaml", "ok.duckdb")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert flow_run["state"]["type"] == "COMPLETED"
        wh = Warehouse(work / "ok.duckdb")
        _, runs = wh.query("SELECT run_id, status FROM runs")
        assert len(runs) == 1 and runs[0][1] == "completed"
        _, counts = wh.query("SELECT (SELECT count(*) FROM stages), (SELECT count(*) FROM probe_results), "
                             "(SELECT count(*) FROM decisions)")
        assert all(n > 0 for n in counts[0])
        tasks = _api(f"{api}/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
        names = {t["name"] for t in tasks}
        assert "probe stage 0" in names and any(n.startswith("train a (stage 1, attempt 1)") for n in names)
        # the run's results next to it in the UI: the mastery table and the report's link, read back through the API
        artifacts = {a["key"]: a for a in _api(f"{api}/artifacts/filter",
                                               {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})}
        assert set(artifacts) == {"tiny-mastery", "tiny-report"}
        assert [row["node"] for row in json.loads(artifacts["tiny-mastery"]["data"])] == ["a", "b"]
        assert f"/{runs[0][0]}/report.html" in artifacts["tiny-report"]["data"]

        bad, flow_run = run("broken.yaml", "bad.duckdb")
        assert bad.returncode == 1
        assert flow_run["state"]["type"] == "FAILED"
        messages = [entry["message"] for entry in _api(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}})]
        assert any("broken.yaml:" in m and "unknown layer 'causation'" in m for m in messages), messages
        assert not (work / "bad.duckdb").exists()

        # scale-out: stages trained by a `train-stage/gpu` deployment, a local process worker standing in
        # for a GPU host; the warehouse is still written by the curriculum flow alone
        pool = subprocess.run([str(BIN / "prefect"), "work-pool", "create", "gpu", "--type", "process"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        deploy = subprocess.run([str(BIN / "curriculum"), "deploy-trainer", "--pool", "gpu"], env=env, cwd=work,
                                capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        logs["worker"] = open(tmp_path / "worker.log", "w")
        procs.append(subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "gpu"],
                                      env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}, cwd=tmp_path,
                                      stdout=logs["worker"], stderr=subprocess.STDOUT, start_new_session=True))
        remote, flow_run = run("graph.yaml", "remote.duckdb", "--param", "train_deployment=train-stage/gpu")
        assert remote.returncode == 0, remote.stdout + remote.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        assert flow_run["state"]["type"] == "COMPLETED"
        children = _api(f"{api}/flow_runs/filter", {"flows": {"name": {"any_": ["train-stage"]}}})
        _, stages = Warehouse(work / "remote.duckdb").query("SELECT count(*) FROM stages WHERE status <> 'failed' AND kind <> 'final'")
        assert children and len(children) == stages[0][0]
        assert all(c["state"]["type"] == "COMPLETED" for c in children)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for handle in logs.values():
            handle.close()
    assert all(proc.poll() is not None for proc in procs)
