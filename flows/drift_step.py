"""Drift in the curriculum flow: the base model's answers recorded once per run, each stage's drift measured.

Two calls in the flow: `drift_baseline` after the baseline probes (a resumed run reads the recorded answers
back, never generates new ones) and `stage_drift` after each stage's probes, whose columns ride along with
the stage's row and reach the policy (`max_drift`) live and on replay alike.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from curriculum.loading.validate import LoadedCurriculum
from probes.drift import BaseAnswer, base_answers, measure
from probes.prober import Prober
from warehouse import drift as drift_rows
from warehouse.db import Warehouse


@task(task_run_name="drift baseline", cache_policy=NO_CACHE)
def drift_baseline(wh: Warehouse, run_id: str, loaded: LoadedCurriculum, prober: Prober) -> list[BaseAnswer] | None:
    """The base model's answers the run's drift is measured on (None: the curriculum has no `drift:`)."""
    cfg = loaded.spec.drift
    if cfg is None:
        return None
    recorded = drift_rows.load_answers(wh, run_id)
    if recorded:
        return [BaseAnswer(**r) for r in recorded]
    started = time.perf_counter()
    with prober.using(None) as (model, tokenizer):
        answers = base_answers(model, tokenizer, cfg)
    seconds = time.perf_counter() - started
    drift_rows.record_answers(wh, run_id, [asdict(a) for a in answers], seconds)
    get_run_logger().info("drift: the base model's answers to %d neutral prompts recorded (%.1f s)", len(answers), seconds)
    return answers


@task(task_run_name="drift stage {stage}", cache_policy=NO_CACHE)
def stage_drift(wh: Warehouse, run_id: str, prober: Prober, answers: list[BaseAnswer] | None, adapter: Path,
                stage: int) -> dict[str, Any]:
    """The stage's drift columns ({} when drift is off), its per-prompt likelihoods recorded."""
    if not answers:
        return {}
    started = time.perf_counter()
    with prober.using(adapter) as (model, tokenizer):
        drift, items = measure(model, tokenizer, answers)
    seconds = time.perf_counter() - started
    drift_rows.record_items(wh, run_id, stage, items)
    get_run_logger().info("stage %d drift %s (%.1f s)", stage, drift.describe(), seconds)
    return {**drift.row(), "drift_s": seconds}
