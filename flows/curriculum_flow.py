"""The `curriculum` flow: validate → baseline probes → { pick → train → probe → decide → record }.

Each stage's rows commit in one transaction after its adapter is saved. Resume replays
the recorded stages through the same deterministic policy, reuses any adapter that was
saved but not yet recorded, and continues: no finished stage is trained twice, no row
is written twice.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from curriculum.models import placement
from curriculum.runs.lineage import file_rows
from curriculum.policies.registry import make_policy
from curriculum.policies.verdicts import final_verdicts
from curriculum.policies.runstate import FLAT, Decision, Observed, Policy, RunState, Step
from curriculum.graph.problems import CurriculumError
from curriculum.policies.states import Action, Outcome, StageKind, Status
from curriculum.models.tokens import token_plan
from curriculum.runs.inputs import input_files
from curriculum.loading.validate import LoadedCurriculum, load_curriculum
from curriculum.training import stagefiles
from flows import inherit
from flows.artifacts import publish_results
from flows.codeversion import code_record, fingerprint
from flows.drift_step import drift_baseline, stage_drift
from flows import faults
from flows.planning import (Rows, as_rows, draw_until_clear, exam_plan, exam_score_rows, mixture_rows, observe_rows,
                            probe_plan, resolve_auto_gates, score_rows, stage_check, start_state, status_rows)
from flows.failures import failure_reason, interruption
from flows.stages import probe_task, retrying, share_base, train_task
from flows.tracking import Mirror, write_mastery
from flows.resume import Settings
from flows.setup import RunPlan, given_settings, holding, plan_run
from probes.lm import DECODING
from probes.calibrate import out_of_reach
from probes.prober import Prober
from warehouse import records
from warehouse.db import DiskFull, Warehouse, is_disk_full
from warehouse.report import write_report


@flow(name="curriculum", flow_run_name="{graph}", validate_parameters=True)
def curriculum(
    graph: str,
    policy: str | None = None,
    seed: int | None = None,
    max_stages: int | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    warehouse: str | None = None,
    runs_dir: str | None = None,
    progress: bool = False,
    train_deployment: str | None = None,
    profile: str | None = None,
    final_probe: bool | None = None,
    train_overrides: dict[str, Any] | None = None,
    from_run: str | None = None,
    retries: int = 2,
    retry_delay_s: float = 10.0,
    track: list[str] | None = None,
) -> str:
    """Walk a curriculum graph: train, probe, decide, record. Returns the run id.

    Args:
        graph: Path of the curriculum YAML (relative to the serving process's directory).
        policy: Overrides the YAML's policy: mix, skill-it, gated, greedy, bandit, random, fixed or flat.
        seed: Seed of training and of the bandit and random policies (default 0).
        max_stages: Budget of training stages; empty for no limit.
        run_id: Id for a new run; empty for a random one.
        resume: Id of a killed run to continue; no finished stage is trained again. Every setting comes
            from the run's record: a setting given here that contradicts it is an error.
        warehouse: DuckDB file; empty for $CURRICULUM_WAREHOUSE or warehouse/curriculum.duckdb.
        runs_dir: Folder for the stages' adapters (default runs).
        progress: Show a progress bar while training.
        train_deployment: Train each stage on this `train-stage` deployment (e.g. train-stage/gpu, served
            by workers of a GPU pool) instead of in this process; runs_dir must be shared storage.
        profile: Run only this profile of the YAML (e.g. demo): its nodes, what they require, their on_fail branches.
        final_probe: End with every node probed on all its items on the run's final adapter (default true).
        train_overrides: Training settings laid over every stage's (e.g. {"max_steps": 60} for a fixed budget).
        from_run: Start from this finished run's end state, on an edited graph: unchanged nodes keep their status,
            training continues from its last accepted adapter; new and changed nodes and their dependants train.
        retries: Tries again of a stage or probe sweep that ran out of memory or lost its worker, before the
            stage backs off (bad data backs off at once).
        retry_delay_s: Wait before the first retry; each later one waits twice the last.
        track: Mirror the run to these trackers too (mlflow, tensorboard), besides the YAML's `tracking:`.
    """
    log = get_run_logger()
    try:
        loaded = load_curriculum(graph)
    except CurriculumError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        raise
    plan = plan_run(loaded, given_settings(policy=policy, seed=seed, max_stages=max_stages, runs_dir=runs_dir,
                                           profile=profile, final_probe=final_probe, train_overrides=train_overrides),
                    warehouse=warehouse, run_id=run_id, resume=resume, from_run=from_run, track=track or ())
    wh, run_id = plan.wh, plan.run_id
    with holding(plan) as taken:  # a second live process on this run stops here
        if taken:
            log.warning("%s", taken)
        _record_start(plan, graph, from_run, log)
        trackers = Mirror.open(wh, run_id, plan.tracking, plan.run_dir)
        try:
            walk(wh, plan.loaded, run_id, plan.settings, plan.run_dir, progress=progress, train_deployment=train_deployment,
                 retries=retries, retry_delay_s=retry_delay_s, trackers=trackers)
        except BaseException as exc:
            stop = interruption(exc)
            if stop is not None:  # Ctrl-C, SIGTERM, SystemExit: not a failure of the run, an interruption
                try:
                    records.set_run_status(wh, run_id, "interrupted")
                except Exception:  # noqa: BLE001 -- what interrupted it is the one to raise
                    pass
                trackers.finish(wh, run_id, "interrupted", [])  # after the record: a slow tracker delays no status
                if stop is exc:
                    raise
                log.warning("run %s interrupted; %s: %s was raised while it stopped", run_id, type(exc).__name__, exc)
                raise stop from None  # the signal Prefect's engine masked with an error of its own
            error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.error("run %s failed: %s", run_id, error)
            try:
                records.set_run_status(wh, run_id, "failed", error=f"{type(exc).__name__}: {error}")
            except Exception as also:  # the warehouse itself may be what failed: the first error is the one to raise
                log.error("could not record the failure: %s", also)
            trackers.finish(wh, run_id, "failed", [])
            raise
    return run_id


def _record_start(plan: RunPlan, graph: str, from_run: str | None, log: Any) -> None:
    """A new run's row (its settings, and every input file's hash and text), or a resumed run marked running again."""
    wh, loaded, run_id, settings = plan.wh, plan.loaded, plan.run_id, plan.settings
    if plan.run is not None:
        if plan.run["status"] == "running":  # its lock was free (or stale): no process is running it
            log.warning("run %s was interrupted (recorded as running, no live process holds it); resuming", run_id)
            records.set_run_status(wh, run_id, "interrupted")
        records.set_run_status(wh, run_id, "running")
        started_by = (json.loads(plan.run.get("config") or "{}").get("code") or {}).get("fingerprint")
        if started_by != fingerprint():  # replay still checks every decision; the record says both codes
            log.warning("run %s was started by other code (fingerprint %s, now %s); resuming, and recording both",
                        run_id, started_by, fingerprint())
            records.note_resumed_code(wh, run_id, code_record())
        return
    cur = loaded.spec  # a profile run records the nodes it walks, so the report draws those
    inputs = input_files(loaded)  # each data and probe file read once: its hash per node, its text
    records.start_run(wh, run_id, curriculum=cur.curriculum, graph_path=str(graph), yaml_text=loaded.text,
                      graph_hash=loaded.sha256, policy=settings.policy, seed=settings.seed, base_model=cur.model.base,
                      config={"max_stages": settings.max_stages, "runs_dir": settings.runs_dir,
                              "profile": settings.profile, "nodes": list(cur.nodes) if settings.profile else None,
                              "decoding": DECODING, "warnings": [str(w) for w in loaded.warnings],
                              "final_probe": settings.final_probe, "train_overrides": settings.train_overrides,
                              "exam": {**cur.exam.model_dump(), "unsplit": loaded.unsplit},
                              "tracking": plan.tracking.model_dump(exclude_none=True), "code": code_record(),
                              **plan.lineage_config},
                      parent_run=from_run, files=file_rows(loaded, {name: sha for name, sha, _ in inputs}),
                      texts=[(sha, text) for _, sha, text in inputs if text is not None])


def walk(wh: Warehouse, loaded: LoadedCurriculum, run_id: str, settings: Settings, run_dir: Path, *,
         progress: bool = False, train_deployment: str | None = None, retries: int = 2,
         retry_delay_s: float = 10.0, trackers: Mirror | None = None) -> None:
    """The run itself, from its record on: baseline, then { pick -> train -> probe -> decide -> record },
    the final sweep, the report; a resumed run replays what its record holds first."""
    log = get_run_logger()
    cur = loaded.spec
    seed, max_stages = settings.seed, settings.max_stages
    wh.before_commit = lambda: faults.reached("commit")
    stagefiles.on_save = lambda folder: faults.reached("save")
    train, probe = retrying(train_task, retries, retry_delay_s), retrying(probe_task, retries, retry_delay_s)
    history = records.load_history(wh, run_id)
    pol = make_policy(settings.policy, seed)
    where = placement.of_model(cur.model)  # the graph's device and dtype, for the prober and every stage
    prober = Prober(cur.model.base, token_plan(cur), where)
    log.info("run %s: %s%s, policy %s, %d nodes", run_id, cur.curriculum,
             f" (profile {settings.profile})" if settings.profile else "", settings.policy, len(cur.nodes))

    if history.has_baseline:  # resume: the recorded stages replayed through the same policy, nothing retrained
        st, stage = replay_state(wh, loaded, run_id, pol, history, settings.train_overrides)
    else:
        st, stage = start_state(loaded, settings.train_overrides), 1
        lineage = inherit.apply(wh, loaded, st, run_id, run_dir)  # --from: the parent's end state; else None
        started = time.perf_counter()
        plan = probe_plan(loaded, st, None, 0)
        results = probe(prober, loaded, lineage.adapter if lineage else None, 0, plan, {})
        baseline = observe_rows(loaded, list(plan), as_rows(results))
        decisions = resolve_auto_gates(loaded, st, baseline) + pol.baseline(st, baseline)
        if pol.gates:  # a gate written out of reach of the node's own data: say so before training toward it
            waiting = [n for n in st.order if st.status[n] in (Status.LOCKED, Status.DORMANT)]
            for note in out_of_reach(loaded, waiting, {n: ev.score for n, ev in baseline.items() if ev is not None}):
                log.warning(note)
        if lineage:  # what was inherited, and the inherited mastered nodes re-checked on the parent's adapter
            decisions = lineage.decisions + decisions + lineage.recheck(st, pol, baseline)
        records.record_probes_and_decisions(wh, run_id, 0, [r.row() for rs in results.values() for r in rs],
                                            [asdict(d) for d in decisions], baseline_probe_s=time.perf_counter() - started,
                                            node_scores=score_rows(st, baseline), node_status=status_rows(st))
    drift_answers = drift_baseline(wh, run_id, loaded, prober)  # drift: the base's own answers, once per run
    trackers = trackers or Mirror([])
    trackers.sync(wh, run_id)  # the baseline; on resume, whatever the trackers lack

    while (step := pol.next_step(st)) is not None:
        faults.reached("stage")
        if max_stages is not None and stage > max_stages:
            log.info("budget of %d stages spent", max_stages)
            break
        plan = probe_plan(loaded, st, step, stage, pol.probes_ready)
        parent = run_dir / f"stage-{step.parent}" if step.parent is not None else None  # stage-0: a --from parent's
        stage_row = {"node_id": step.node_id, "attempt": step.attempt, "kind": step.kind, "parent_stage": step.parent}
        train_decision = {"node_id": step.node_id, "action": Action.TRAIN, "reason": step.reason, "attempt": step.attempt,
                          "score_before": st.latest(step.node_id), "signals": step.signals,
                          "gate": st.gate(step.node_id) if step.node_id != FLAT else None}
        out_dir = run_dir / f"stage-{stage}"
        started = time.perf_counter()
        attempt = train(loaded, step, stage, parent, out_dir, seed, progress, train_deployment,
                        stage_check(loaded, st, step), settings.train_overrides, run_id,
                        prober.lend_base if share_base(where) else None, return_state=True)
        if attempt.is_failed():  # shown as a failed task in the UI; the run goes on without it
            exc = attempt.result(raise_on_failure=False)
            if is_disk_full(exc if isinstance(exc, BaseException) else None):  # not the stage's fault: the run stops
                shutil.rmtree(out_dir.with_name(out_dir.name + ".partial"), ignore_errors=True)  # frees what it took
                raise DiskFull(f"saving stage {stage}'s adapter in {out_dir}") from exc
            error = failure_reason(exc if isinstance(exc, BaseException) else None, attempt.message or "", retries)
            log.error("stage %d %s failed: %s", stage, step.node_id, error)
            stage_row.update(status=Outcome.FAILED, train_wall_s=time.perf_counter() - started)
            _, decisions, _ = advance(pol, st, loaded, step, stage, {**stage_row, "error": error}, {})
            records.record_probes_and_decisions(wh, run_id, stage, [], [train_decision, *(asdict(d) for d in decisions)],
                                                stage_row, node_status=status_rows(st))
            stage += 1
            continue
        trained = attempt.result()
        probe_started = time.perf_counter()
        results = probe(prober, loaded, out_dir, stage, plan, st.auto_gates)
        for n in step.data_nodes if step.kind == StageKind.MIX else [] if step.node_id == FLAT else [step.node_id]:
            draw_until_clear(loaded, st, n, results, lambda sel: probe(prober, loaded, out_dir, stage, sel, st.auto_gates))  # noqa: B023 (called here)
        timing = {"train_wall_s": probe_started - started, "probe_s": time.perf_counter() - probe_started}
        trained.update(stage_drift(wh, run_id, prober, drift_answers, out_dir, stage))  # drift columns: row and policy
        stage_row.update(adapter_path=str(out_dir), status=Outcome.TRAINED, **timing,
                         **{k: v for k, v in trained.items() if k != "log"})
        outcome, decisions, observed = advance(pol, st, loaded, step, stage, stage_row, as_rows(results))
        stage_row["status"] = outcome
        records.record_probes_and_decisions(
            wh, run_id, stage, [r.row() for rs in results.values() for r in rs],
            [train_decision, *(asdict(d) for d in decisions)], stage_row, trained["log"],
            node_scores=score_rows(st, observed), node_status=status_rows(st),
            mixture=mixture_rows(loaded, step, seed + stage, prober.tokenizer) if step.kind == StageKind.MIX else ())
        log.info("stage %d %s: %s", stage, step.node_id,
                 ", ".join(f"{n}={e.score:.3f} (n={e.n})" for n, e in observed.items() if e is not None))
        trackers.sync(wh, run_id)
        stage += 1

    if settings.final_probe and st.accepted_stage is not None and stage not in history.stages:
        final_sweep(wh, run_id, prober, loaded, st, stage, run_dir / f"stage-{st.accepted_stage}", probe, pol.gates)
    records.set_run_status(wh, run_id, "completed")  # before the report, which shows it
    try:  # the run is complete and recorded: a report or artifact that fails is logged, not the run's failure
        faults.reached("report")
        report = write_report(wh, run_id, run_dir / "report.html")
        publish_results(wh, run_id, cur.curriculum, report)  # the mastery table and the report's link in the Prefect UI
    except Exception as exc:  # noqa: BLE001 (whatever broke, the stages stand; `curriculum report` rewrites it)
        if is_disk_full(exc):  # but a full disk is the machine's state, not a passing glitch: the run says so
            raise DiskFull(f"writing the report {run_dir / 'report.html'}") from exc
        log.error("run %s completed, but its report or Prefect artifacts failed: %s", run_id, exc)
        report = None
    if trackers.trackers:
        try:
            mastery = write_mastery(wh, run_id, run_dir)
        except Exception as exc:  # noqa: BLE001 -- the run is complete: an artifact that cannot be written is logged
            log.error("run %s completed, but its mastery table for the trackers could not be written: %s", run_id, exc)
            mastery = None
        trackers.finish(wh, run_id, "completed", [p for p in (report, mastery) if p])
        log.info("tracking (%s) took %.1f s", ", ".join(t.name for t in trackers.trackers), trackers.seconds)
    log.info("run %s completed: %s; report %s", run_id, {n: s for n, s in st.status.items()}, report)


def advance(pol: Policy, st: RunState, loaded: LoadedCurriculum, step: Step, stage: int, record: dict[str, Any],
            rows: Rows) -> tuple[str, list[Decision], Observed]:
    """A stage's outcome from its record: its stage row (as the warehouse holds it) and its probe rows. The live
    loop and a resumed run's replay both come through here, so the policy is advanced by the same inputs either way
    (a key it reads is never there live and missing on resume)."""
    if record["status"] == Outcome.FAILED:
        return Outcome.FAILED, pol.stage_failed(st, step, stage, record.get("error") or "(replayed)"), {}
    observed = observe_rows(loaded, probe_plan(loaded, st, step, stage, pol.probes_ready), rows)
    outcome, decisions = pol.observe(st, step, stage, observed, record)
    return outcome, decisions, observed


def _drawn(counts: dict[str, int]) -> str:
    """A mix stage's examples per node, as a replay check compares them."""
    return ", ".join(f"{n} {counts[n]}" for n in sorted(counts))


def replay_state(wh: Warehouse, loaded: LoadedCurriculum, run_id: str, pol: Policy,
                 history: records.History | None = None, overrides: dict[str, Any] | None = None) -> tuple[RunState, int]:
    """The policy's state after a run's recorded stages, replayed through the same state machine from the
    warehouse's rows (nothing is trained or probed), and the next stage's number."""
    history = history or records.load_history(wh, run_id)
    st = start_state(loaded, overrides)
    lineage = inherit.apply(wh, loaded, st, run_id)  # a --from run starts from its parent's end state
    nodes = list(probe_plan(loaded, st, None, 0))
    baseline = observe_rows(loaded, nodes, history.item_scores.get(0, {}))
    resolve_auto_gates(loaded, st, baseline)
    pol.baseline(st, baseline)
    if lineage:
        lineage.recheck(st, pol, baseline)
    stage = 1
    while (done := history.stages.get(stage)) is not None and done["kind"] != StageKind.FINAL:
        step = pol.next_step(st)
        if step is None:
            break
        frontier = done.get("frontier")  # a mix stage is "*" every time: what it mixed tells a changed policy apart
        recorded = f"{done['kind']} of {done['node_id']} attempt {done['attempt']}" + (
            f" mixing {', '.join(frontier)} ({_drawn(done['drawn'])})" if frontier is not None else "")
        picked = f"{step.kind} of {step.node_id} attempt {step.attempt}" + (
            f" mixing {', '.join(sorted(step.data_nodes))} ({_drawn(step.mixture)})" if frontier is not None else "")
        if picked != recorded:
            raise ValueError(f"run '{run_id}' stage {stage} was recorded as {recorded}, but replaying its record picks "
                             f"{picked}: the policy's code changed since, so this run cannot be resumed")
        advance(pol, st, loaded, step, stage, done, history.item_scores.get(stage, {}))
        stage += 1
    return st, stage


def final_sweep(wh: Warehouse, run_id: str, prober: Prober, loaded: LoadedCurriculum, st: RunState, stage: int,
                adapter: Path, probe=probe_task, pol_gates: bool = True) -> None:
    """The end state, measured: every node on all its check items, on the adapter the run ends with (a stage of
    kind 'final' that trains nothing). It is evidence too: a node held as mastered whose score on all its items is
    clearly under its gate ends `below-gate` (policies.final_verdicts). Then, after every verdict of the policy is
    settled, its exam items: the run's verdict, which nothing above reads."""
    started = time.perf_counter()
    plan = probe_plan(loaded, st, None, stage)
    results = probe(prober, loaded, adapter, stage, plan, st.auto_gates)
    observed = observe_rows(loaded, plan, as_rows(results))
    decisions = final_verdicts(st, observed) if pol_gates else []
    exam = probe(prober, loaded, adapter, stage, exam_plan(loaded, plan), st.auto_gates, exam=True)  # the verdict: last
    row = {"node_id": FLAT, "attempt": 1, "kind": StageKind.FINAL, "parent_stage": st.accepted_stage, "adapter_path": str(adapter),
           "status": Outcome.DONE, "steps": 0, "tokens": 0, "probe_s": time.perf_counter() - started}
    records.record_probes_and_decisions(wh, run_id, stage, [r.row() for rs in [*results.values(), *exam.values()] for r in rs],
                                        [asdict(d) for d in decisions], row, node_scores=score_rows(st, observed),
                                        node_status=status_rows(st), exam_scores=exam_score_rows(exam))
