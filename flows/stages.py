"""A stage's Prefect tasks: train (here, or dispatched to a work pool's `train-stage` deployment) and probe,
with the retries that out-of-memory and lost workers earn; and whether stages borrow the prober's base.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, cast

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun

from curriculum.models import placement
from curriculum.training.launch import launch_stage
from curriculum.policies.mix import MIX_ROUNDS
from curriculum.policies.runstate import Step
from curriculum.training.sizing import node_budget, round_length
from curriculum.policies.states import StageKind
from curriculum.models.tokens import token_plan
from curriculum.training.stagespec import StageSpec
from curriculum.training.batches import examples_from_records, pool_of, replayed_size
from curriculum.training.stagefiles import finished_stage, set_aside, stage_owner
from curriculum.training.train import CheckFn, train_spec
from curriculum.loading.validate import LoadedCurriculum
from flows import faults
from flows.planning import mix_examples, stage_config
from flows.failures import WorkerLost, retry_if_transient
from probes.prober import Prober
from probes.sweep import Selection
from probes.results import ItemResult


def _train_remotely(deployment: str, spec: StageSpec) -> None:
    """Run the stage as a `train-stage` deployment (a worker of its pool picks it up) and wait."""
    from prefect.deployments import run_deployment

    params = {"spec": spec.on_shared_storage().model_dump(mode="json")}
    child = cast(FlowRun, run_deployment(deployment, parameters=params, timeout=None, poll_interval=1))  # sync call
    if child.state and child.state.is_crashed():  # the worker died under it: worth another try
        raise WorkerLost(f"{deployment} run '{child.name}' crashed: {child.state.message}")
    if not child.state or not child.state.is_completed():  # run_deployment does not raise for a failed child
        raise RuntimeError(f"{deployment} run '{child.name}' ended {child.state.type.value if child.state else 'unknown'}: "
                           f"{child.state.message if child.state else ''}")


@task(task_run_name="train {step.node_id} (stage {stage}, attempt {step.attempt})", cache_policy=NO_CACHE,
      retry_condition_fn=retry_if_transient)
def train_task(loaded: LoadedCurriculum, step: Step, stage: int, parent: Path | None, out_dir: Path,
               seed: int, progress: bool, deployment: str | None = None, check: CheckFn | None = None,
               overrides: dict[str, Any] | None = None, run_id: str = "",
               lend: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Train one stage in rounds until its check stops it (here, or one fixed length on a `train-stage`
    deployment or in `model.processes` processes launched through Accelerate), or pick up the adapter this run
    saved for it (same run id, same inputs); a folder left by anything else is moved aside. Out of memory and lost
    workers are retried (retry_if_transient).
    lend: gives the prober's loaded base to train on (see share_base)."""
    log = get_run_logger()
    cur = loaded.spec
    cfg = stage_config(loaded, step, stage, seed, overrides)
    if step.kind == StageKind.MIX:  # the policy's mixture, replay included
        examples, pools = mix_examples(loaded, step, cfg.seed), []
    else:
        examples = [ex for n in step.data_nodes for ex in examples_from_records(loaded.examples[n])]
        pools = [pool_of(loaded.examples[n]) for n in step.replay_nodes]
    n_items = replayed_size(len(examples), [len(p) for p in pools], cfg.replay, cfg.replay_each)
    one_round = round_length(n_items, cfg)
    if step.kind == StageKind.MIX:  # until a frontier node would overspend its budget, and a few rounds at most
        budget = min(step.budget or one_round, MIX_ROUNDS * one_round)
    elif step.kind == StageKind.FLAT and not (overrides or {}).get("max_steps"):  # what the nodes' own budgets add up to
        budget = sum(node_budget(len(loaded.examples[n]), cfg) for n in step.data_nodes)
    elif step.kind in (StageKind.REHEARSE, StageKind.CONSOLIDATE):  # upkeep: one round of every learned node's data
        budget = one_round
    else:
        budget = max(1, node_budget(n_items, cfg) - step.spent)
    remote_budget = min(budget, one_round)  # no check runs on a worker: one round's length, and the gate decides after
    processes = 1 if deployment else cur.model.processes  # a worker trains in one process
    fixed = bool(deployment) or processes > 1  # no check either in a launched stage of several processes
    spec = StageSpec(base=cur.model.base, parent_adapter=str(parent) if parent else None, examples=examples,
                     replay_pools=pools, lora=cur.model.lora, train=cfg, out_dir=str(out_dir), tokens=token_plan(cur),
                     budget=remote_budget if fixed else budget,
                     placement=cur.model.model_dump(include={"device", "dtype", "quantize"}))
    meta = {"run_id": run_id, "inputs": spec.inputs(node=step.node_id, kind=step.kind, attempt=step.attempt,
                                                    checked=not fixed)}
    spec = spec.model_copy(update={"meta": meta})
    owner = stage_owner(out_dir)
    if owner is not None and owner != meta:
        aside = set_aside(out_dir)
        whose = f"run '{owner['run_id']}'" if owner.get("run_id") else "no recorded run"
        log.warning("stage %d: %s holds an adapter of %s%s, not this stage's; moved aside to %s", stage, out_dir, whose,
                    " with other inputs" if owner.get("run_id") == run_id else "", aside)
    result = finished_stage(out_dir)
    if result is None:
        faults.reached("train-start")
        if deployment:
            _train_remotely(deployment, spec)
            result = finished_stage(out_dir)
            if result is None:
                raise RuntimeError(f"{deployment} finished but {out_dir} holds no adapter: is it on storage both hosts share?")
        elif processes > 1:
            config = cur.model.accelerate_config
            result = launch_stage(spec, processes, loaded.path.parent / config if config else None)
        else:
            result = train_spec(spec, progress=progress, check=check, shared=lend() if lend else None)
    log.info("stage %d %s: %d steps in %d round(s), stopped by %s, %d tokens, %.1f s, loss %.3f", stage,
             step.node_id, result.steps, len(result.checks), result.stop_reason, result.tokens,
             result.seconds, result.train_loss)
    return {"steps": result.steps, "tokens": result.tokens, "seconds": result.seconds, "device": result.device,
            "dtype": result.dtype, "micro_batch": result.micro_batch or None, "grad_accum": result.grad_accum or None,
            "ooms": result.ooms,
            "train_loss": result.train_loss, "rounds": len(result.checks), "stop_reason": result.stop_reason,
            "check_s": result.check_seconds, "budget": budget, "round_steps": one_round,
            "checks": json.dumps([asdict(c) for c in result.checks]), "log": [asdict(s) for s in result.log]}


@task(task_run_name="probe stage {stage}", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def probe_task(prober: Prober, loaded: LoadedCurriculum, adapter: Path | None, stage: int,
               selection: Selection, gates: dict[str, float], exam: bool = False) -> dict[str, list[ItemResult]]:
    results = prober.probe(loaded, adapter, selection, gates, exam)
    faults.reached("probe")
    return results


def share_base(where: placement.Placement) -> bool:
    """Whether stages train on the prober's copy of the base (one model in memory, not two): when the graph places
    the model on a GPU, where memory is what runs out; $CURRICULUM_SHARE_BASE=1 or 0 says otherwise."""
    value = os.environ.get("CURRICULUM_SHARE_BASE")
    return value == "1" if value in ("0", "1") else where.device.startswith("cuda")


def retrying(task_, retries: int, delay_s: float):
    """The task with `retries` Prefect retries of transient failures, each wait twice the last."""
    return task_.with_options(retries=retries, retry_delay_seconds=[delay_s * 2 ** i for i in range(retries)] or 0)
