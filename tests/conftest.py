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


# the files that take over a minute run first: under `-n`, whole files go to the workers in this order, and a long
# file handed out last would leave one worker busy while the other waits
FIRST = ("test_e2e_prefect.py", "test_resume.py", "test_gpucheck.py", "test_probes_slow.py", "test_tracking.py", "test_accelerate.py",
         "test_compare.py", "test_diskfull.py", "test_stop.py", "test_mix.py", "test_train_slow.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: the rest keep their order
