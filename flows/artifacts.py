"""A run's results in the Prefect UI, next to its flow run: the mastery table and a link to the report.

Keys are per curriculum, so the UI's Artifacts page keeps each curriculum's latest table and its
history run after run; each version belongs to the flow run that made it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from curriculum.runs.mastery import mastery_records
from warehouse import records
from warehouse.db import Warehouse


def artifact_key(curriculum: str, what: str) -> str:
    """A valid Prefect artifact key (lowercase letters, digits, dashes) naming the curriculum and what it holds."""
    slug = re.sub(r"[^a-z0-9]+", "-", curriculum.lower()).strip("-") or "curriculum"
    return f"{slug}-{what}"


@task(task_run_name="publish results", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def publish_results(wh: Warehouse, run_id: str, curriculum: str, report: Path) -> list[UUID]:
    """The mastery table as a table artifact and the report as a link artifact; returns their ids."""
    columns, rows = records.mastery_table(wh, run_id)
    table = create_table_artifact(
        table=mastery_records(columns, rows), key=artifact_key(curriculum, "mastery"),
        description=f"Mastery of run `{run_id}` ({curriculum}): the policy's status per node, the base model's "
                    "score, the final score on n items with one-sided bounds at the gate's confidence (low, high), "
                    f"the best kept score and the last decision. Warehouse: `{wh.path}`.")
    link = create_link_artifact(
        link=Path(report).resolve().as_uri(), link_text=f"report of run {run_id}", key=artifact_key(curriculum, "report"),
        description=f"The self-contained HTML report of run `{run_id}` (a local file: `{Path(report).resolve()}`; "
                    f"rewrite it with `curriculum report {run_id}`).")
    return [cast(UUID, table), cast(UUID, link)]  # called from sync code: Prefect's dual API returns the id itself
