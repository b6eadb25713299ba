"""`train-stage`: one LoRA stage as its own flow, for a worker on another host (a GPU pool).

The curriculum flow calls it with `run_deployment` when given `train_deployment`. Inputs are
plain JSON; the result is the adapter folder itself (with its stage.json), so `out_dir` must
be on storage that both hosts share. The warehouse stays written by the curriculum flow alone.
"""

from __future__ import annotations

from prefect import flow

from curriculum.training.stagespec import StageSpec
from curriculum.training.train import train_spec


@flow(name="train-stage", flow_run_name="{spec.out_dir}")
def train_stage_flow(spec: StageSpec) -> str:
    """Train one stage and write its adapter to spec.out_dir; returns that folder.

    Args:
        spec: The stage's inputs (curriculum.training.stagespec.StageSpec): base, parent adapter, examples, replay pools, LoRA
            and training settings, token plan, budget, the graph's device/dtype/quantize (resolved on this worker:
            'auto' means its own GPU), out_dir (shared storage) and {run_id, inputs} for stage.json.
    """
    train_spec(spec)  # no check runs on a worker: the stage is one fixed length (spec.budget); the gate decides after
    return spec.out_dir
