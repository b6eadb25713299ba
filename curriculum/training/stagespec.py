"""One stage's inputs, in one place: built once by the flow, trained from here or sent as JSON to a `train-stage`
deployment on another host, and hashed into the stage's stage.json (stage_inputs: a resume reuses an adapter only
when it was made from the very same spec).

Before, the same fourteen inputs were listed three times (the trainer's parameters, the dispatch's dict, the
deployment flow's parameters), and a setting added to one could be forgotten in another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WrapSerializer, WrapValidator

from curriculum.models.chat import Example, ExampleView
from curriculum.graph.spec import LoraConfig, TrainConfig

STAGE_FILE = "stage.json"  # in each stage's folder: its result and the inputs hash below

# an earlier node's examples: a node read where it lies stays a view in this process (a draw reads only its rows);
# on the wire to a worker, the examples themselves
Pool = Annotated[list[Example], WrapValidator(lambda v, check: v if isinstance(v, ExampleView) else check(v)),
                 WrapSerializer(lambda v, dump: dump(list(v)))]


class StageSpec(BaseModel):
    """What a stage's adapter is a function of, and where it goes. Plain JSON on the wire (model_dump(mode='json'))."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str = Field(description="base model as in the graph YAML")
    parent_adapter: str | None = Field(None, description="adapter folder the stage continues; None: a fresh adapter")
    examples: list[Example] = Field(description="the stage's chat pairs")
    replay_pools: list[Pool] = Field(default_factory=list, description="earlier nodes' pairs to mix in")
    lora: LoraConfig
    train: TrainConfig
    out_dir: str = Field(description="where the adapter goes (shared storage for a remote stage)")
    tokens: dict[str, Any] | None = Field(None, description="the hyperword token plan, when the graph adds tokens")
    budget: int | None = Field(None, description="optimizer steps the stage may spend")
    placement: dict[str, Any] = Field(default_factory=dict, description="the graph's {device, dtype, quantize}, "
                                      "resolved where the stage trains ('auto' is that host's own GPU)")
    meta: dict[str, str] | None = Field(None, description="{run_id, inputs}, kept in stage.json: what resume checks")

    def inputs(self, **more: Any) -> str:
        """sha256 of everything the adapter is a function of (stage_inputs), `more` included."""
        return stage_inputs(self.base, Path(self.parent_adapter) if self.parent_adapter else None, self.examples,
                            self.replay_pools, self.lora, self.train, tokens=self.tokens, budget=self.budget, **more)

    def on_shared_storage(self) -> StageSpec:
        """The spec with absolute paths, for a worker on another host that mounts the same storage."""
        parent = str(Path(self.parent_adapter).resolve()) if self.parent_adapter else None
        return self.model_copy(update={"parent_adapter": parent, "out_dir": str(Path(self.out_dir).resolve())})


# training settings added after runs were recorded, at their defaults: left out of the hash, so a resumed older run's
# stages still match their own folders
_LATER: dict[str, Any] = {"replay_each": 0, "freeze_lower": 0.0, "consolidate": False, "packing": "auto"}


def stage_inputs(base: str, parent_adapter: Path | None, examples: Sequence[Example],
                 pools: Sequence[Sequence[Example]], lora: LoraConfig, cfg: TrainConfig, **more) -> str:
    """sha256 of everything a stage's adapter is a function of: base, the parent adapter (by its own inputs
    hash, so the chain is covered), the data, the settings, and whatever else is given (budget, token plan)."""
    parent = None
    if parent_adapter is not None:
        record = Path(parent_adapter) / STAGE_FILE
        parent = json.loads(record.read_text()).get("inputs") if record.exists() else str(parent_adapter)
    train = {k: v for k, v in cfg.model_dump().items() if not (k in _LATER and v == _LATER[k])}
    doc = {"base": base, "parent": parent, "examples": [_hashed(e) for e in examples],
           "pools": [_hashed_pool(pool) for pool in pools], "lora": lora.model_dump(), "train": train,
           **more}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _hashed_pool(pool: Sequence[Example]) -> Any:
    """A replay pool as the inputs hash reads it: each example of a list; a node read where it lies, by the
    fingerprint of its rows (what it is and how it is read), so a stage does not read the whole node to be named."""
    return {"rows": pool.fingerprint} if isinstance(pool, ExampleView) else [_hashed(e) for e in pool]


def _hashed(example: Example) -> dict[str, Any]:
    """An example as its stage's inputs hash reads it: a pair without a system prompt or earlier turns as it was
    read before conversations existed, so the stages of runs recorded then still match theirs."""
    out = asdict(example)
    if example.system is None:
        del out["system"]
    if not example.history:
        del out["history"]
    return out
