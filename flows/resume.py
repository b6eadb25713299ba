"""A run's settings: given for a new run, read from its record at resume.

Resume takes every setting from the run's record (policy, seed, runs_dir, max_stages,
profile, final probe, training overrides); a flag given at resume that contradicts the
record is an error, raised before anything is written. So is a YAML, data or probe file
that changed since the run started: its recorded stages would not replay the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from curriculum.training import integrity
from curriculum.runs.inputs import changed_files, input_files
from curriculum.loading.validate import LoadedCurriculum, select_profile
from warehouse import records
from warehouse.db import Warehouse


@dataclass(frozen=True)
class Settings:
    policy: str
    seed: int = 0
    max_stages: int | None = None
    runs_dir: str = "runs"
    profile: str | None = None
    final_probe: bool = True
    train_overrides: dict[str, Any] | None = None


FLAGS = {"policy": "--policy", "seed": "--seed", "max_stages": "--max-stages", "runs_dir": "--runs-dir",
         "profile": "--profile", "final_probe": "final_probe", "train_overrides": "--max-steps / train_overrides"}


def new_settings(given: dict[str, Any], yaml_policy: str) -> Settings:
    """A new run's settings: the flags given, the defaults for the others (the YAML's policy)."""
    chosen = {k: v for k, v in given.items() if v is not None}
    return Settings(**{"policy": yaml_policy, **chosen})


def recorded_settings(run: dict[str, Any]) -> Settings:
    """The settings a run was started with, from its runs row."""
    config = json.loads(run["config"] or "{}")
    return Settings(policy=run["policy"], seed=run["seed"], max_stages=config.get("max_stages"),
                    runs_dir=config.get("runs_dir") or "runs", profile=config.get("profile"),
                    final_probe=config.get("final_probe", True), train_overrides=config.get("train_overrides") or None)


def _same(name: str, given: Any, recorded: Any) -> bool:
    if name == "runs_dir":
        return Path(given).resolve() == Path(recorded).resolve()
    return given == recorded


def check_resume(wh: Warehouse, loaded: LoadedCurriculum, run_id: str, given: dict[str, Any],
                 new_run_id: str | None = None) -> tuple[dict[str, Any], Settings]:
    """(the run's row, its recorded settings), or a one-line ValueError: no such run, a flag that contradicts
    the record, or a YAML, data or probe file that changed since the run started. Reads only."""
    run = records.get_run(wh, run_id)
    if run is None:
        raise ValueError(f"no run '{run_id}' in {wh.path}")
    if new_run_id and new_run_id != run_id:
        raise ValueError(f"--run-id {new_run_id} contradicts --resume {run_id}: give one of them")
    settings = recorded_settings(run)
    clashes = [f"{FLAGS[f.name]} {given[f.name]!r} (the run has {getattr(settings, f.name)!r})" for f in fields(Settings)
               if given.get(f.name) is not None and not _same(f.name, given[f.name], getattr(settings, f.name))]
    if clashes:
        raise ValueError(f"run '{run_id}' was started with other settings: {'; '.join(clashes)}; "
                         f"resume takes them from the run's record, so leave these flags out")
    if run["graph_hash"] != loaded.sha256:
        raise ValueError(f"run '{run_id}' was made from another version of {loaded.path}; resume needs the same YAML")
    recorded = records.run_files(wh, run_id)  # empty for runs recorded before files were
    walked = select_profile(loaded, settings.profile) if settings.profile else loaded  # the files it recorded
    changed = changed_files(recorded, input_files(walked)) if recorded else []
    if changed:
        raise ValueError(f"run '{run_id}' was made from other versions of {', '.join(changed)} "
                         f"(beside {loaded.path}); resume needs the same files")
    return run, settings


def check_run_folder(run_dir: Path) -> None:
    """Every saved stage folder of a run to be resumed, against the sha256s recorded when it was written: a resumed
    run reuses and continues them, so a damaged one is refused (IntegrityError, one line naming the file) before
    anything is written. Folders saved before the record existed pass unverified."""
    for folder in integrity.stage_folders(run_dir):
        integrity.check(folder)
