"""A damaged stage folder is refused, not trusted: each stage's files carry the sha256s recorded when they were
written (SHA256SUMS), and export, --from, resume and bridge check them first: a truncated adapter is one line
naming it, exit 1, nothing written. `curriculum verify` checks a whole run; folders from before the record load
as "unverified"."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curriculum.cli.app import app
from curriculum.training.integrity import SUMS, IntegrityError, check, seal, stage_folders, verify
from helpers import tiny_graph
from warehouse.db import Warehouse

ADAPTER = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def made(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished run ('r') of the tiny graph: two stages kept."""
    from flows.curriculum_flow import curriculum

    root = tmp_path_factory.mktemp("integrity")
    graph = tiny_graph(root)
    db, runs = root / "w.duckdb", root / "runs"
    state = curriculum(graph=str(graph), warehouse=str(db), runs_dir=str(runs), policy="fixed", max_stages=2,
                       run_id="r", final_probe=False, train_overrides={"max_steps": 2}, return_state=True)
    assert state.is_completed(), state.message
    final = Path(Warehouse(db).query("SELECT adapter_path FROM stages WHERE run_id = 'r' AND status = 'done' "
                                     "ORDER BY stage DESC LIMIT 1")[1][0][0])
    return {"root": root, "graph": graph, "db": db, "runs": runs, "final": final}


@contextmanager
def truncated(path: Path):
    """The file cut to half its bytes (as a full disk or a broken copy leaves it), put back afterwards."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        yield path
    finally:
        path.write_bytes(data)


def _cli(*args: str):
    return CliRunner().invoke(app, [*map(str, args)])


def _one_line(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


def _state(made: dict) -> tuple:
    """What a refused command must leave as it was: the warehouse's runs and stages, the runs folder's files."""
    wh = Warehouse(made["db"])
    return (wh.query("SELECT run_id, status, interruptions, error FROM runs ORDER BY run_id")[1],
            wh.query("SELECT count(*) FROM stages")[1], sorted(p for p in made["runs"].rglob("*")))


def test_every_stage_folder_of_a_run_is_sealed_and_verify_passes(made: dict) -> None:
    folders = stage_folders(made["runs"] / "r")
    assert [f.name for f in folders] == ["stage-1", "stage-2"]
    for folder in folders:
        listed = (folder / SUMS).read_text().splitlines()
        names = {line.split("  ", 1)[1] for line in listed}
        assert {ADAPTER, "adapter_config.json", "stage.json"} <= names
        assert names == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS}
        assert check(folder) is True
    result = _cli("verify", "r", "--db", made["db"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["stage-1: verified", "stage-2: verified"]


def test_verify_lists_every_damaged_or_missing_file(made: dict) -> None:
    config = made["runs"] / "r" / "stage-1" / "adapter_config.json"
    text = config.read_text()
    with truncated(made["final"] / ADAPTER):
        config.unlink()
        try:
            result = _cli("verify", "r", "--runs-dir", made["runs"])
        finally:
            config.write_text(text)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{config}: missing (listed in {config.parent / SUMS})",
        f"{made['final'] / ADAPTER}: damaged (its sha256 differs from the one recorded when it was written)",
        f"2 damaged or missing file(s) in {made['runs'] / 'r'}"]


def test_export_refuses_a_truncated_adapter(made: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with truncated(made["final"] / ADAPTER):
        result = _cli("export", "r", out, "--db", made["db"])
    _one_line(result, f"{made['final'] / ADAPTER}: damaged")
    assert list(tmp_path.iterdir()) == []


def test_from_refuses_a_truncated_adapter(made: dict, tmp_path: Path) -> None:
    before = _state(made)
    with truncated(made["final"] / ADAPTER):
        result = _cli("run", made["graph"], "--from", "r", "--run-id", "child", "--db", made["db"],
                      "--runs-dir", made["runs"])
    _one_line(result, "cannot continue run 'r': ", f"{made['final'] / ADAPTER}: damaged")
    assert _state(made) == before


def test_resume_refuses_a_truncated_adapter(made: dict) -> None:
    before = _state(made)
    with truncated(made["runs"] / "r" / "stage-1" / ADAPTER):
        result = _cli("run", made["graph"], "--resume", "r", "--db", made["db"])
    _one_line(result, f"{made['runs'] / 'r' / 'stage-1' / ADAPTER}: damaged")
    assert _state(made) == before


def test_bridge_refuses_a_truncated_adapter(made: dict) -> None:
    with truncated(made["final"] / ADAPTER):
        result = _cli("bridge", "a-word", "--run", "r", "--db", made["db"])
    _one_line(result, f"{made['final'] / ADAPTER}: damaged")


def test_a_folder_from_before_the_record_loads_unverified(made: dict, tmp_path: Path) -> None:
    sums = {f: (f / SUMS).read_bytes() for f in stage_folders(made["runs"] / "r")}
    for folder in sums:
        (folder / SUMS).unlink()
    try:
        result = _cli("verify", "r", "--db", made["db"])
        assert result.exit_code == 0 and "stage-2: unverified (saved before checksums were recorded)" in result.stdout
        exported = _cli("export", "r", tmp_path / "out", "--db", made["db"])
        assert exported.exit_code == 0, exported.output
        assert exported.stderr.strip() == f"{made['final']}: unverified (saved before checksums were recorded)"
    finally:
        for folder, data in sums.items():
            (folder / SUMS).write_bytes(data)


def test_seal_is_atomic_and_names_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    seal(tmp_path)
    assert not (tmp_path / (SUMS + ".tmp")).exists()
    assert verify(tmp_path).ok and verify(tmp_path).verified
    (tmp_path / "sub" / "b.txt").write_text("c")
    with pytest.raises(IntegrityError, match=r"sub/b.txt: damaged"):
        check(tmp_path)
    (tmp_path / SUMS).write_text("not a sum line\n")
    with pytest.raises(IntegrityError, match=rf"{SUMS}:1: not a sha256sum line"):
        check(tmp_path)
