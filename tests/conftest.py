"""Shared test setup: offline, quiet, and paths to the bundled files."""

import os
from pathlib import Path

# under pytest-xdist (`make test` runs `-n auto`), each worker and the processes it starts get their share of the
# cores: two workers of two threads each on two cores would make every test slower than one worker alone
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import pytest  # noqa: E402

from curriculum.models.bases import stay_offline  # noqa: E402

stay_offline()
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def paths_run(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One gated run of the paths graph, shared by the tests that read it."""
    from flows.curriculum_flow import curriculum
    from paths_graph import paths_graph

    tmp_path = tmp_path_factory.mktemp("paths")
    graph = paths_graph(tmp_path)
    run_id = curriculum(graph=str(graph), warehouse=str(tmp_path / "w.duckdb"), runs_dir=str(tmp_path / "runs"), run_id="paths")
    return tmp_path, graph, run_id
