"""`train-stage`: one LoRA stage as its own flow, for a worker on another host (a GPU pool).

The curriculum flow calls it with `run_deployment` when given `train_deployment`. Inputs are
plain JSON; the result is the adapter folder itself (with its stage.json), so `out_dir` must
be on storage that both hosts share. The warehouse stays written by the curriculum flow alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from curriculum import placement
from curriculum.chat import Example
from curriculum.spec import LoraConfig, TrainConfig
from curriculum.train import train_stage


@flow(name="train-stage", flow_run_name="{out_dir}")
def train_stage_flow(base: str, parent_adapter: str | None, examples: list[dict[str, str]], lora: dict[str, Any],
                     train: dict[str, Any], out_dir: str, replay_pools: list[list[dict[str, str]]] | None = None,
                     tokens: dict[str, Any] | None = None, budget: int | None = None,
                     meta: dict[str, str] | None = None, model: dict[str, Any] | None = None) -> str:
    """Train one stage and write its adapter to out_dir; returns out_dir.

    Args:
        base: Base model as in the graph YAML.
        parent_adapter: Adapter folder the stage continues, or empty for a fresh adapter.
        examples: Chat pairs {prompt, answer, source}.
        lora: LoRA settings of the graph.
        train: Training settings of the stage.
        out_dir: Where the adapter goes (shared storage).
        replay_pools: Earlier nodes' pairs to mix in, one list per mastered node.
        tokens: Hyperword token plan ({init, lexicon}) when the graph adds single-token hyperwords.
        budget: Optimizer steps of the stage (a remote stage runs without a check: one fixed length).
        meta: {run_id, inputs} written into the stage's stage.json: what a resume checks before reusing it.
        model: The graph's {device, dtype, quantize}, resolved on the worker ('auto' means its own GPU).
    """
    train_stage(base, Path(parent_adapter) if parent_adapter else None, [Example(**e) for e in examples],
                LoraConfig(**lora), TrainConfig(**train), Path(out_dir),
                replay_pools=[[Example(**e) for e in pool] for pool in replay_pools or []], progress=False, tokens=tokens,
                budget=budget, meta=meta, placement=placement.resolve(**(model or {})))
    return out_dir
