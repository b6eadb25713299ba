"""A run's setup, once: the warehouse checked, resume or new, the profile, the `--from` plan, the placement.

`curriculum run` calls `plan_run` before Prefect starts (so a refusal is one line and exit 1, nothing written); the
flow calls it again as its first step, because a deployment run reaches the flow without the CLI. Both get the same
answer and the same refusals, as one error type. The run's lock is taken in one place only: the flow (`holding`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from curriculum.models import placement
from curriculum.models.bases import ModelError
from curriculum.training.integrity import IntegrityError
from curriculum.policies.registry import make_policy
from curriculum.graph.problems import CurriculumError
from curriculum.graph.spec import TrackingConfig, TrainConfig
from curriculum.loading.validate import LoadedCurriculum, select_profile
from flows import inherit, runlock
from flows.resume import Settings, check_resume, check_run_folder, new_settings
from flows.tracking import chosen
from warehouse import records
from warehouse.db import Warehouse, WarehouseError


class SetupError(ValueError):
    """A run refused before anything is written (a bad flag, a run that cannot be resumed, a damaged file): one line."""


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs before its first row: where it writes, what it walks, with which settings."""

    wh: Warehouse
    loaded: LoadedCurriculum  # the profile's nodes when a profile is chosen
    run_id: str
    settings: Settings
    run: dict[str, Any] | None  # the recorded run when resuming, else None
    lineage_config: dict[str, Any]  # what --from adds to the run's config; empty without it
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # the trackers it is mirrored to: the YAML's, `--track`'s, the record's

    @property
    def run_dir(self) -> Path:
        return Path(self.settings.runs_dir) / self.run_id


def given_settings(*, policy: str | None = None, seed: int | None = None, max_stages: int | None = None,
                   runs_dir: str | Path | None = None, profile: str | None = None, final_probe: bool | None = None,
                   train_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings a caller named (None: not named), keyed as `Settings` is: what resume compares to the record."""
    return {"policy": policy, "seed": seed, "max_stages": max_stages, "runs_dir": str(runs_dir) if runs_dir else None,
            "profile": profile, "final_probe": final_probe, "train_overrides": train_overrides or None}


def plan_run(loaded: LoadedCurriculum, given: dict[str, Any], *, warehouse: str | Path | None = None,
             run_id: str | None = None, resume: str | None = None, from_run: str | None = None,
             track: Sequence[str] = ()) -> RunPlan:
    """The run's plan, or SetupError with the first line of what is wrong. Reads only: nothing is written."""
    try:
        wh = Warehouse(warehouse).check()  # damaged, foreign or newer: refused first
        if resume and from_run:
            raise ValueError("--from starts a new run and --resume continues one: give one of them")
        run, settings, run_id = _resume_or_new(wh, loaded, given, run_id, resume)
        if settings.profile:
            loaded = select_profile(loaded, settings.profile)
        lineage_config = inherit.prepare(wh, loaded, from_run, settings.policy) if from_run else {}
        placement.of_model(loaded.spec.model)  # a device, dtype or quantization this machine cannot give
        runlock.check(Path(settings.runs_dir) / run_id, run_id)  # a live process on this run: refused here already
        recorded = json.loads(run["config"] or "{}").get("tracking") if run else None  # resume: what it was mirrored to
        tracking = chosen(TrackingConfig(**recorded) if recorded else loaded.spec.tracking, track)
    except (ValueError, CurriculumError, WarehouseError, IntegrityError, ModelError, runlock.RunLocked,
            duckdb.Error, ValidationError) as exc:
        if isinstance(exc, SetupError):
            raise
        if isinstance(exc, ValidationError):  # pydantic's first line only counts the errors: name them instead
            raise SetupError("train_overrides: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                             for e in exc.errors())) from exc
        raise SetupError((str(exc).strip().splitlines() or [type(exc).__name__])[0]) from exc
    return RunPlan(wh, loaded, run_id, settings, run, lineage_config, tracking)


def _resume_or_new(wh: Warehouse, loaded: LoadedCurriculum, given: dict[str, Any], run_id: str | None,
                   resume: str | None) -> tuple[dict[str, Any] | None, Settings, str]:
    """Resume: the recorded run and its settings, its saved adapters checked. New: the given settings, checked."""
    if resume:
        run, settings = check_resume(wh, loaded, resume, given, run_id)
        check_run_folder(Path(settings.runs_dir) / resume)  # a damaged saved adapter would be continued
        return run, settings, resume
    settings = new_settings(given, loaded.spec.policy)
    run_id = run_id or uuid.uuid4().hex[:12]
    if records.get_run(wh, run_id) is not None:
        raise ValueError(f"run '{run_id}' already exists in {wh.path}; continue it with --resume {run_id}")
    make_policy(settings.policy)  # an unknown policy name
    if settings.train_overrides:
        TrainConfig(**settings.train_overrides)  # an unknown or invalid training override
    return None, settings, run_id


@contextmanager
def holding(plan: RunPlan) -> Iterator[str | None]:
    """The run's lock for as long as the run lives: one live process per run. Yields the message when a stale lock
    (of a process that died) was taken over."""
    taken = runlock.acquire(plan.run_dir, plan.run_id)
    try:
        yield taken
    finally:
        runlock.release(plan.run_dir)
