"""The `curriculum` flow: validate → baseline probes → { pick → train → probe → decide → record }.

Each stage's rows commit in one transaction after its adapter is saved. Resume replays
the recorded stages through the same deterministic policy, reuses any adapter that was
saved but not yet recorded, and continues: no finished stage is trained twice, no row
is written twice.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from curriculum.draws import first_items, more_items, pool_keys, regression_items
from curriculum.evidence import evidence_from
from curriculum.policies import FLAT, Decision, Observed, RunState, Step, make_policy
from curriculum.problems import CurriculumError
from curriculum.tokens import token_plan
from curriculum.train import examples_from_records, finished_stage, train_stage
from curriculum.validate import LoadedCurriculum, load_curriculum, select_profile
from probes.calibrate import node_levels
from probes.lm import DECODING
from probes.prober import Prober
from probes.results import ItemResult
from probes.sweep import Selection
from warehouse import records
from warehouse.db import Warehouse
from warehouse.report import write_report


def probe_plan(loaded: LoadedCurriculum, st: RunState, step: Step | None, stage: int) -> Selection:
    """Which items to probe: every item at baseline and after a flat stage; else a first draw of the
    trained node's items and a rotating sample of each mastered node's (regression)."""
    if step is None or step.kind == "flat":
        return {n: None for n in st.order if st.status[n] != "dormant"}
    plan: dict[str, list | None] = {step.node_id: first_items(loaded, step.node_id)}
    for m in st.order:
        if st.status[m] == "mastered" and m != step.node_id and m in st.mastered_on:
            plan[m] = regression_items(loaded, m, sorted(st.mastered_on[m].items), stage)
    return plan


Rows = dict[str, list[tuple[int, int, str, float]]]  # node -> (probe index, item line, probe kind, score)


def as_rows(results: dict[str, list[ItemResult]]) -> Rows:
    return {n: [(r.probe_index, r.item, r.probe_kind, r.score) for r in rs] for n, rs in results.items()}


def observe_rows(loaded: LoadedCurriculum, nodes, rows: Rows) -> Observed:
    """Each node's items as evidence, or None when it has none (the same live and on resume)."""
    return {n: evidence_from(rows[n], len(pool_keys(loaded, n))) if rows.get(n) else None for n in nodes}


def score_rows(st: RunState, observed: Observed) -> list[dict[str, Any]]:
    """The warehouse's node_scores rows: each score with its n and one-sided bounds at the gate's confidence."""
    out = []
    for n, ev in observed.items():
        if ev is None:
            continue
        low, high = ev.bounds(st.confidence(n))
        out.append({"node_id": n, "score": ev.score, "n_items": ev.n, "pool": ev.pool, "ci_low": low, "ci_high": high,
                    "method": "wilson" if ev.binary else "t", "confidence": st.confidence(n), "gate": st.gate(n)})
    return out


def draw_until_clear(loaded: LoadedCurriculum, st: RunState, node_id: str, results: dict[str, list[ItemResult]],
                     probe: Callable[[Selection], dict[str, list[ItemResult]]]) -> int:
    """Sequential probing: while the trained node's gate call is inconclusive, draw unused items from its pool.
    Returns how many draws were added."""
    draws = 0
    while True:
        ev = observe_rows(loaded, [node_id], as_rows(results))[node_id]
        if ev is None or st.call(node_id, ev).verdict != "inconclusive":
            return draws
        results[node_id] += probe({node_id: more_items(loaded, node_id, ev.items)})[node_id]
        draws += 1


def resolve_auto_gates(loaded: LoadedCurriculum, st: RunState, baseline: Observed) -> list[Decision]:
    """`min_score: auto`: the gate `curriculum calibrate` suggests, fixed from the data and the base model."""
    decisions = []
    for n in st.order:
        if loaded.spec.gate_config(n).min_score != "auto":
            continue
        ev = baseline.get(n)
        levels = node_levels(loaded, n, ev.score if ev else None)
        st.auto_gates[n] = levels.suggested_gate()
        decisions.append(Decision(n, "gate", f"min_score auto: {st.auto_gates[n]:.3f}, halfway from {levels.floor:.3f} "
                                  f"(best of base, chance, answer bias) to {max(levels.top, levels.floor):.3f}",
                                  gate=st.auto_gates[n], signals={"levels": asdict(levels)}))
    return decisions


def _train_remotely(deployment: str, cur, parent: Path | None, examples, pool, cfg, out_dir: Path) -> None:
    """Run the stage as a `train-stage` deployment (a worker of its pool picks it up) and wait."""
    from prefect.deployments import run_deployment

    params = {"base": cur.model.base, "parent_adapter": str(parent.resolve()) if parent else None,
              "examples": [asdict(e) for e in examples], "lora": cur.model.lora.model_dump(),
              "train": cfg.model_dump(), "out_dir": str(out_dir.resolve()), "replay_pool": [asdict(e) for e in pool],
              "tokens": token_plan(cur)}
    child = run_deployment(deployment, parameters=params, timeout=None, poll_interval=1)
    if not child.state or not child.state.is_completed():  # run_deployment does not raise for a failed child
        raise RuntimeError(f"{deployment} run '{child.name}' ended {child.state.type.value if child.state else 'unknown'}: "
                           f"{child.state.message if child.state else ''}")


@task(task_run_name="train {step.node_id} (stage {stage}, attempt {step.attempt})", cache_policy=NO_CACHE)
def train_task(loaded: LoadedCurriculum, step: Step, stage: int, parent: Path | None, out_dir: Path,
               seed: int, progress: bool, deployment: str | None = None) -> dict[str, Any]:
    """Train one stage (here, or on a `train-stage` deployment), or pick up a saved adapter."""
    result = finished_stage(out_dir)
    if result is None:
        cur = loaded.spec
        cfg = cur.train_config(step.node_id if step.node_id != FLAT else step.data_nodes[0])
        cfg = cfg.model_copy(update={"epochs": step.epochs, "seed": seed + stage, "replay": cfg.replay or (0.25 if step.replay_nodes else 0.0)})
        examples = [ex for n in step.data_nodes for ex in examples_from_records(loaded.examples[n])]
        pool = [ex for n in step.replay_nodes for ex in examples_from_records(loaded.examples[n])]
        if deployment:
            _train_remotely(deployment, cur, parent, examples, pool, cfg, out_dir)
            result = finished_stage(out_dir)
            if result is None:
                raise RuntimeError(f"{deployment} finished but {out_dir} holds no adapter: is it on storage both hosts share?")
        else:
            result = train_stage(cur.model.base, parent, examples, cur.model.lora, cfg, out_dir, replay_pool=pool,
                                 progress=progress, tokens=token_plan(cur))
    get_run_logger().info("stage %d %s: %d steps, %d tokens, %.1f s, loss %.3f", stage, step.node_id,
                          result.steps, result.tokens, result.seconds, result.train_loss)
    return {"steps": result.steps, "tokens": result.tokens, "seconds": result.seconds, "device": result.device,
            "train_loss": result.train_loss, "log": [asdict(s) for s in result.log]}


@task(task_run_name="probe stage {stage}", cache_policy=NO_CACHE)
def probe_task(prober: Prober, loaded: LoadedCurriculum, adapter: Path | None, stage: int,
               selection: Selection, gates: dict[str, float]) -> dict[str, list[ItemResult]]:
    return prober.probe(loaded, adapter, selection, gates)


@flow(name="curriculum", flow_run_name="{graph}", validate_parameters=True)
def curriculum(
    graph: str,
    policy: str | None = None,
    seed: int = 0,
    max_stages: int | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    warehouse: str | None = None,
    runs_dir: str = "runs",
    progress: bool = False,
    train_deployment: str | None = None,
    profile: str | None = None,
) -> str:
    """Walk a curriculum graph: train, probe, decide, record. Returns the run id.

    Args:
        graph: Path of the curriculum YAML (relative to the serving process's directory).
        policy: Overrides the YAML's policy: gated, greedy, bandit, flat or fixed.
        seed: Seed of training and of the bandit policy.
        max_stages: Budget of training stages; empty for no limit.
        run_id: Id for a new run; empty for a random one.
        resume: Id of a killed run to continue; no finished stage is trained again.
        warehouse: DuckDB file; empty for $CURRICULUM_WAREHOUSE or warehouse/curriculum.duckdb.
        runs_dir: Folder for the stages' adapters.
        progress: Show a progress bar while training.
        train_deployment: Train each stage on this `train-stage` deployment (e.g. train-stage/gpu, served
            by workers of a GPU pool) instead of in this process; runs_dir must be shared storage.
        profile: Run only this profile of the YAML (e.g. demo): its nodes, what they require, their on_fail branches.
    """
    log = get_run_logger()
    try:
        loaded = load_curriculum(graph)
    except CurriculumError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        raise
    wh = Warehouse(warehouse)
    cur = loaded.spec
    if resume:
        run = records.get_run(wh, resume)
        if run is None:
            raise ValueError(f"no run '{resume}' in {wh.path}")
        if run["graph_hash"] != loaded.sha256:
            raise ValueError(f"run '{resume}' was made from another version of {graph}; resume needs the same YAML")
        run_id, policy_name, seed = resume, run["policy"], run["seed"]
        profile = json.loads(run["config"] or "{}").get("profile")
    else:
        run_id = run_id or uuid.uuid4().hex[:12]
        if records.get_run(wh, run_id) is not None:
            raise ValueError(f"run '{run_id}' already exists in {wh.path}; continue it with --resume {run_id}")
        policy_name = policy or cur.policy
        make_policy(policy_name)  # fail on a bad name before anything is written
    if profile:
        loaded = select_profile(loaded, profile)  # an unknown profile fails here, before anything is written
        cur = loaded.spec
    if resume:
        records.set_run_status(wh, run_id, "running")
    else:  # a profile run records the nodes it walks, so the report draws those
        records.start_run(wh, run_id, curriculum=cur.curriculum, graph_path=str(graph), yaml_text=loaded.text,
                          graph_hash=loaded.sha256, policy=policy_name, seed=seed, base_model=cur.model.base,
                          config={"max_stages": max_stages, "runs_dir": runs_dir, "profile": profile,
                                  "nodes": list(cur.nodes) if profile else None, "decoding": DECODING,
                                  "warnings": [str(w) for w in loaded.warnings]})
    history = records.load_history(wh, run_id)
    run_dir = Path(runs_dir) / run_id
    st = RunState.start(cur, loaded.graph)
    pol = make_policy(policy_name, seed)
    prober = Prober(cur.model.base, token_plan(cur))
    log.info("run %s: %s%s, policy %s, %d nodes", run_id, cur.curriculum, f" (profile {profile})" if profile else "",
             policy_name, len(cur.nodes))

    nodes = list(probe_plan(loaded, st, None, 0))
    if history.has_baseline:
        baseline = observe_rows(loaded, nodes, history.item_scores.get(0, {}))
        resolve_auto_gates(loaded, st, baseline)
        pol.baseline(st, baseline)
    else:
        started = time.perf_counter()
        results = probe_task(prober, loaded, None, 0, probe_plan(loaded, st, None, 0), {})
        baseline = observe_rows(loaded, nodes, as_rows(results))
        decisions = resolve_auto_gates(loaded, st, baseline) + pol.baseline(st, baseline)
        records.record_probes_and_decisions(wh, run_id, 0, [r.row() for rs in results.values() for r in rs],
                                            [asdict(d) for d in decisions], baseline_probe_s=time.perf_counter() - started,
                                            node_scores=score_rows(st, baseline))

    stage = 1
    while (step := pol.next_step(st)) is not None:
        if max_stages is not None and stage > max_stages:
            log.info("budget of %d stages spent", max_stages)
            break
        plan = probe_plan(loaded, st, step, stage)
        done = history.stages.get(stage)
        parent = run_dir / f"stage-{st.accepted_stage}" if st.accepted_stage else None
        stage_row = {"node_id": step.node_id, "attempt": step.attempt, "kind": step.kind, "parent_stage": st.accepted_stage}
        train_decision = {"node_id": step.node_id, "action": "train", "reason": step.reason, "attempt": step.attempt,
                          "score_before": st.latest(step.node_id), "signals": step.signals,
                          "gate": st.gate(step.node_id) if step.node_id != FLAT else None}
        if done is not None and done["status"] == "failed":  # replay a stage that raised
            keep = False
            pol.stage_failed(st, step, stage, "(replayed)")
        elif done is not None:  # recorded before the run was killed: replay, don't retrain
            keep, _ = pol.observe(st, step, stage, observe_rows(loaded, plan, history.item_scores.get(stage, {})))
        else:
            out_dir = run_dir / f"stage-{stage}"
            started = time.perf_counter()
            attempt = train_task(loaded, step, stage, parent, out_dir, seed, progress, train_deployment, return_state=True)
            if attempt.is_failed():  # shown as a failed task in the UI; the run goes on without it
                error = str(attempt.message or "training failed").splitlines()[0]
                log.error("stage %d %s failed: %s", stage, step.node_id, error)
                decisions = pol.stage_failed(st, step, stage, error)
                records.record_probes_and_decisions(wh, run_id, stage, [], [train_decision, *(asdict(d) for d in decisions)],
                                                    {**stage_row, "status": "failed", "train_wall_s": time.perf_counter() - started})
                stage += 1
                continue
            trained = attempt.result()
            probe_started = time.perf_counter()
            results = probe_task(prober, loaded, out_dir, stage, plan, st.auto_gates)
            if step.kind != "flat":
                draw_until_clear(loaded, st, step.node_id, results,
                                 lambda sel: probe_task(prober, loaded, out_dir, stage, sel, st.auto_gates))
            timing = {"train_wall_s": probe_started - started, "probe_s": time.perf_counter() - probe_started}
            observed = observe_rows(loaded, plan, as_rows(results))
            keep, decisions = pol.observe(st, step, stage, observed)
            stage_row.update(adapter_path=str(out_dir), status="done" if keep else "discarded", **timing,
                             **{k: v for k, v in trained.items() if k != "log"})
            records.record_probes_and_decisions(
                wh, run_id, stage, [r.row() for rs in results.values() for r in rs],
                [train_decision, *(asdict(d) for d in decisions)], stage_row, trained["log"],
                node_scores=score_rows(st, observed))
            log.info("stage %d %s: %s", stage, step.node_id,
                     ", ".join(f"{n}={e.score:.3f} (n={e.n})" for n, e in observed.items() if e is not None))
        if keep:
            st.accepted_stage = stage
        stage += 1

    records.set_run_status(wh, run_id, "completed")
    report = write_report(wh, run_id, run_dir / "report.html")
    log.info("run %s completed: %s; report %s", run_id, {n: s for n, s in st.status.items()}, report)
    return run_id
