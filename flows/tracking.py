"""Follow a run in the tracker you already use: MLflow and TensorBoard, mirrored from the warehouse as it goes.

The warehouse stays the record. After each recorded stage a tracker is brought up to date from its rows
(warehouse.mirror), so a resumed run logs what its tracker lacks and nothing twice: MLflow finds the run by its
`curriculum.run_id` tag and the stages already logged by their `curriculum.stage` tags; TensorBoard reads its own
event files back. A tracker that fails is a warning and is dropped for the rest of the run: it never fails a run.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from curriculum.graph.spec import MlflowConfig, TensorboardConfig, TrackingConfig
from warehouse import mirror
from warehouse.db import Warehouse

TRACKERS = ("mlflow", "tensorboard")
log = logging.getLogger(__name__)


class TrackingError(ValueError):
    """A tracker asked for whose package is not installed, or an unknown one: one line, before the run starts."""


def chosen(config: TrackingConfig, track: Sequence[str] = ()) -> TrackingConfig:
    """The YAML's trackers plus those `--track` names (with their defaults); refused when a package is missing."""
    if unknown := [t for t in track if t not in TRACKERS]:
        raise TrackingError(f"--track {unknown[0]}: unknown tracker (known: {', '.join(TRACKERS)})")
    out = config.model_copy(update={
        "mlflow": config.mlflow or (MlflowConfig() if "mlflow" in track else None),
        "tensorboard": config.tensorboard or (TensorboardConfig() if "tensorboard" in track else None)})
    for name, package, extra in (("mlflow", "mlflow", "mlflow-skinny"), ("tensorboard", "tensorboard", "tensorboard")):
        if getattr(out, name) is not None and importlib.util.find_spec(package) is None:  # found, not imported
            raise TrackingError(f"tracking with {name} needs the '{extra}' package: pip install "
                                f"'curriculum-orchestrator[tracking]'")
    return out


class Tracker(Protocol):
    name: str

    def logged(self) -> set[int]: ...
    def stage(self, record: dict[str, Any]) -> None: ...
    def finish(self, status: str, verdicts: list[dict[str, Any]], files: list[Path]) -> None: ...


class Mirror:
    """The run's trackers, each brought up to date from the warehouse by `sync`."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        self.seconds = 0.0  # time spent in trackers: what tracking cost the run

    @classmethod
    def open(cls, wh: Warehouse, run_id: str, config: TrackingConfig, run_dir: Path) -> Mirror:
        if config.mlflow is None and config.tensorboard is None:
            return cls([])
        run = mirror.run_row(wh, run_id)
        trackers: list[Tracker] = []
        if config.mlflow is not None:
            trackers += _guarded("mlflow", lambda: MlflowTracker(config.mlflow, run))  # type: ignore[arg-type]
        if config.tensorboard is not None:
            folder = Path(config.tensorboard.dir) / run_id if config.tensorboard.dir else run_dir / "tensorboard"
            trackers += _guarded("tensorboard", lambda: TensorboardTracker(folder))
        return cls(trackers)

    def sync(self, wh: Warehouse, run_id: str) -> None:
        """Log every recorded stage a tracker lacks."""
        for tracker in list(self.trackers):
            started = time.perf_counter()
            try:
                for record in mirror.recorded_stages(wh, run_id, tracker.logged()):
                    tracker.stage(record)
            except Exception as exc:  # noqa: BLE001 -- a tracker never fails the run
                self._drop(tracker, exc)
            self.seconds += time.perf_counter() - started

    def finish(self, wh: Warehouse, run_id: str, status: str, files: list[Path]) -> None:
        self.sync(wh, run_id)
        for tracker in list(self.trackers):
            started = time.perf_counter()
            try:
                tracker.finish(status, mirror.verdicts(wh, run_id), [f for f in files if f.exists()])
            except Exception as exc:  # noqa: BLE001
                self._drop(tracker, exc)
            self.seconds += time.perf_counter() - started

    def _drop(self, tracker: Tracker, exc: Exception) -> None:
        log.warning("tracking with %s failed and is off for the rest of this run: %s: %s", tracker.name,
                    type(exc).__name__, (str(exc).strip().splitlines() or [""])[0])
        self.trackers.remove(tracker)


def write_mastery(wh: Warehouse, run_id: str, run_dir: Path) -> Path:
    """The mastery table as Markdown beside the report: the artifact a tracker shows without opening the warehouse."""
    from warehouse.records import mastery_table

    columns, rows = mastery_table(wh, run_id)
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    path = run_dir / "mastery.md"
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Run {run_id}\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _guarded(name: str, make) -> list[Tracker]:
    try:
        return [make()]
    except Exception as exc:  # noqa: BLE001
        log.warning("tracking with %s is off for this run: %s: %s", name, type(exc).__name__,
                    (str(exc).strip().splitlines() or [""])[0])
        return []


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def stage_name(record: dict[str, Any]) -> str:
    if record["stage"] == 0:
        return "stage 0 baseline"
    return f"stage {record['stage']} {record['kind']} {record['node_id']}"


class MlflowTracker:
    """One MLflow run per curriculum run (tagged with its run id, policy, seed, graph hash), a nested run per stage:
    its settings as params, its loss by optimizer step, each probed node's score with n and interval, the
    decisions as tags; the verdicts, the report and the mastery table on the parent at the end."""

    name = "mlflow"

    def __init__(self, config: MlflowConfig, run: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=config.uri) if config.uri else MlflowClient()
        experiment = config.experiment or run["curriculum"]
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run_id = run["run_id"]
        parents = self.client.search_runs([self.experiment_id], f"tags.`curriculum.run_id` = '{self.run_id}' "
                                          "and tags.`curriculum.kind` = 'run'")
        if parents:
            self.parent = parents[0].info.run_id
            self.client.update_run(self.parent, status="RUNNING")
        else:
            tags = {"curriculum.run_id": self.run_id, "curriculum.kind": "run", "curriculum.policy": run["policy"],
                    "curriculum.seed": str(run["seed"]), "curriculum.graph_sha256": run["graph_hash"],
                    "curriculum.curriculum": run["curriculum"], "curriculum.base_model": run["base_model"]}
            if run.get("parent_run"):
                tags["curriculum.from_run"] = run["parent_run"]
            self.parent = self.client.create_run(self.experiment_id, run_name=self.run_id, tags=tags).info.run_id
            config_params = {"policy": run["policy"], "seed": run["seed"], "base_model": run["base_model"],
                             **{f"config.{k}": v for k, v in run["config"].items() if k in (
                                 "max_stages", "profile", "final_probe", "train_overrides", "exam")}}
            self._params(self.parent, config_params)
        self.global_step = 0
        self._done: set[int] | None = None

    def _params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items() if v is not None])

    def logged(self) -> set[int]:
        if self._done is None:
            children = self.client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.parent}'",
                                               max_results=10_000)
            self._done = {int(r.data.tags["curriculum.stage"]) for r in children if "curriculum.stage" in r.data.tags}
            for r in children:  # a stage cut off while it was logged: closed, and logged again whole
                if "curriculum.stage" not in r.data.tags and r.info.status == "RUNNING":
                    self.client.set_terminated(r.info.run_id, "KILLED")
            self.global_step = max([int(r.data.metrics.get("global_step_end", 0)) for r in children] or [0])
        return self._done

    def stage(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        stage = record["stage"]
        tags = {"mlflow.parentRunId": self.parent, "curriculum.run_id": self.run_id, "curriculum.kind": "stage"}
        tags.update({f"decision.{i}": f"{d['node_id']}: {d['action']} ({d['reason'] or ''})"[:5000]
                     for i, d in enumerate(record["decisions"], start=1)})
        child = self.client.create_run(self.experiment_id, run_name=stage_name(record), tags=tags).info.run_id
        self._params(child, {k: record.get(k) for k in ("node_id", "kind", "attempt", "status", "steps", "tokens",
                                                          "rounds", "stop_reason")})
        now = int(time.time() * 1000)
        metrics = [Metric("loss", r["loss"], now, r["step"]) for r in record["steps_log"] if _finite(r["loss"])]
        parent = [Metric("train_loss", r["loss"], now, self.global_step + r["step"])
                  for r in record["steps_log"] if _finite(r["loss"])]
        for s in record["scores"]:
            for key, column in (("score", "score"), ("n", "n_items"), ("ci_low", "ci_low"), ("ci_high", "ci_high")):
                if _finite(s[column]):
                    metrics.append(Metric(f"{key}.{s['node_id']}", float(s[column]), now, stage))
            if _finite(s["score"]):
                parent.append(Metric(f"score.{s['node_id']}", float(s["score"]), now, stage))
        for key in ("drift", "drift_low", "drift_high", "seconds", "train_loss"):
            if _finite(record.get(key)):
                metrics.append(Metric(key, float(record[key]), now, stage))
        self.global_step += int(record.get("steps") or 0)
        metrics.append(Metric("global_step_end", float(self.global_step), now, stage))
        for at in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(child, metrics=metrics[at : at + 1000])
        for at in range(0, len(parent), 1000):
            self.client.log_batch(self.parent, metrics=parent[at : at + 1000])
        self.client.set_tag(child, "curriculum.stage", str(stage))  # last: a stage is logged once this is set
        self.client.set_terminated(child, "FINISHED" if record.get("status") != "failed" else "FAILED")
        self.logged().add(stage)

    def finish(self, status: str, verdicts: list[dict[str, Any]], files: list[Path]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{key}.{v['node_id']}", float(v[key]), now, 0) for v in verdicts
                   for key in ("check_score", "exam_score", "exam_n") if _finite(v.get(key))]
        if metrics:
            self.client.log_batch(self.parent, metrics=metrics)
        self.client.set_tag(self.parent, "curriculum.status", status)
        for v in verdicts:
            self.client.set_tag(self.parent, f"status.{v['node_id']}", str(v["status"]))
        for f in files:
            self.client.log_artifact(self.parent, str(f))
        self.client.set_terminated(self.parent, {"completed": "FINISHED", "failed": "FAILED"}.get(status, "KILLED"))


class TensorboardTracker:
    """TensorBoard event files: `train/loss` by optimizer step across the run, `score/NODE` and its bounds by stage,
    `drift` by stage, and each stage's decisions as text. `curriculum/stage` marks each stage logged, read back on
    resume."""

    name = "tensorboard"

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._done, self.global_step = _logged_stages(folder)
        self.writer = SummaryWriter(str(folder))

    def logged(self) -> set[int]:
        return self._done

    def stage(self, record: dict[str, Any]) -> None:
        stage, w = record["stage"], self.writer
        for r in record["steps_log"]:
            if _finite(r["loss"]):
                w.add_scalar("train/loss", r["loss"], self.global_step + r["step"])
        for s in record["scores"]:
            for key, column in (("score", "score"), ("score_low", "ci_low"), ("score_high", "ci_high")):
                if _finite(s[column]):
                    w.add_scalar(f"{key}/{s['node_id']}", s[column], stage)
        if _finite(record.get("drift")):
            w.add_scalar("drift", record["drift"], stage)
        text = "\n".join(f"- {d['node_id']}: **{d['action']}** ({d['reason'] or ''})" for d in record["decisions"])
        w.add_text("decisions", f"{stage_name(record)}\n\n{text}", stage)
        self.global_step += int(record.get("steps") or 0)
        w.add_scalar("curriculum/global_step_end", self.global_step, stage)
        w.add_scalar("curriculum/stage", stage, stage)  # written last: the stage is logged once this is on disk
        w.flush()
        self._done.add(stage)

    def finish(self, status: str, verdicts: list[dict[str, Any]], files: list[Path]) -> None:
        for v in verdicts:
            for key in ("check_score", "exam_score"):
                if _finite(v.get(key)):
                    self.writer.add_scalar(f"verdict/{key}/{v['node_id']}", v[key], 0)
        self.writer.add_text("status", f"{status}: " + ", ".join(f"{v['node_id']} {v['status']}" for v in verdicts), 0)
        self.writer.close()


def _logged_stages(folder: Path) -> tuple[set[int], int]:
    """The stages the folder's event files already hold, and the last global step logged, read back with
    tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not any(folder.glob("events.out.tfevents.*")):
        return set(), 0
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    stages = {int(e.step) for e in acc.Scalars("curriculum/stage")} if "curriculum/stage" in tags else set()
    step = int(max([e.value for e in acc.Scalars("curriculum/global_step_end")] or [0])) \
        if "curriculum/global_step_end" in tags else 0
    return stages, step
