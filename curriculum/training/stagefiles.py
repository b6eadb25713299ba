"""A stage's folder, written and read back in one place: the atomic save of its adapter and stage.json, sealed with
every file's sha256; its result read back (finished_stage), whose it is (stage_owner), and a stranger's folder moved
aside. The reader and the writer agree because they sit together.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from curriculum.training.diskspace import adapter_bytes, ensure_room
from curriculum.training.integrity import seal
from curriculum.training.sizing import Check
from curriculum.training.stagespec import STAGE_FILE
from curriculum.models.tokens import save_plan


ADAPTER_FILE = "adapter_model.safetensors"
on_save: Callable[[Path], None] | None = None  # called with the half-written folder: the flow's fault tests break it


@dataclass
class StepLog:
    step: int
    loss: float
    lr: float
    tokens: int
    seconds: float


@dataclass
class StageResult:
    adapter_dir: Path
    steps: int
    tokens: int  # non-padding tokens seen, prompt included
    seconds: float
    device: str
    train_loss: float  # token-weighted mean loss of the last epoch
    log: list[StepLog] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # one per round, when the stage was sized by a check
    stop_reason: str | None = None  # gate-met | plateau | budget (None: a fixed length, no check)
    check_seconds: float = 0.0  # of `seconds`, the time spent in checks (probing, not training)
    dtype: str = "float32"
    quantize: str | None = None
    micro_batch: int = 0  # examples per forward pass it ended with (below batch_size after an out-of-memory)
    grad_accum: int = 0  # forward passes per optimizer step it ended with (same examples per step as configured)
    ooms: int = 0  # out-of-memory errors recovered by halving the micro-batch
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds: load, tokenize, train, check, save
    processes: int = 1  # trained together through Accelerate (curriculum.training.launch), each on its share of every step
    tokenized: dict[str, int] = field(default_factory=dict)  # examples read from the token cache / tokenized anew

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def save_stage(model, result: StageResult, **produced_by) -> None:
    """Write to a sibling folder and rename: a killed stage never leaves half an adapter."""
    out_dir = Path(result.adapter_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    ensure_room(out_dir.parent, adapter_bytes(model))  # a full disk: one clear ENOSPC before anything is written
    # trainable-token rows are in the adapter; the resized matrix is rebuilt by load_base, so never save it whole
    model.save_pretrained(str(staging), safe_serialization=True, save_embedding_layers=False,
                          state_dict=produced_by.pop("state_dict", None))
    if on_save is not None:
        on_save(staging)
    examples = produced_by.pop("examples")
    if produced_by["token_plan"] is not None:  # the stage carries its vocabulary: it loads with no extra steps
        save_plan(produced_by["token_plan"], staging)
        produced_by["tokenizer"].save_pretrained(str(staging))
    record = {
        **produced_by["meta"],
        "base": produced_by["base"],
        "parent_adapter": str(produced_by["parent_adapter"]) if produced_by["parent_adapter"] else None,
        "lora": produced_by["lora"].model_dump(),
        "train": produced_by["cfg"].model_dump(),
        "examples": len(examples),
        "sources": sorted({ex.file for ex in examples}),
        "steps": result.steps, "tokens": result.tokens, "seconds": round(result.seconds, 3),
        "device": result.device, "dtype": result.dtype, "quantize": result.quantize,
        "micro_batch": result.micro_batch, "grad_accum": result.grad_accum, "ooms": result.ooms,
        "phases": {k: round(v, 3) for k, v in result.phases.items()},
        "tokenized": result.tokenized,
        "train_loss": result.train_loss,
        "log": [asdict(entry) for entry in result.log],
        "checks": [asdict(c) for c in result.checks], "stop_reason": result.stop_reason,
        "check_seconds": round(result.check_seconds, 3),
        **({"processes": result.processes} if result.processes > 1 else {}),  # a one-process stage.json as before
        "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__},
    }
    (staging / STAGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    seal(staging)  # every file's sha256, last: what reuse, --from, export and bridge check before trusting it
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, out_dir)


def finished_stage(out_dir: Path) -> StageResult | None:
    """The result of a stage whose adapter was already saved (a resumed run reuses it)."""
    record_file = Path(out_dir) / STAGE_FILE
    if not (Path(out_dir) / ADAPTER_FILE).exists() or not record_file.exists():
        return None
    rec = json.loads(record_file.read_text())
    log = [StepLog(**entry) for entry in rec.get("log", [])]
    checks = [Check(**c) for c in rec.get("checks", [])]
    return StageResult(Path(out_dir), rec["steps"], rec["tokens"], rec["seconds"], rec["device"], rec["train_loss"], log,
                       checks, rec.get("stop_reason"), rec.get("check_seconds", 0.0), rec.get("dtype", "float32"),
                       rec.get("quantize"), rec.get("micro_batch", 0), rec.get("grad_accum", 0), rec.get("ooms", 0),
                       rec.get("phases", {}), rec.get("processes", 1))


def stage_owner(out_dir: Path) -> dict[str, str] | None:
    """{run_id, inputs} a finished stage folder records, {} for a folder without them, None when no folder."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return None
    try:
        rec = json.loads((out_dir / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not (out_dir / ADAPTER_FILE).exists():
        return {}
    return {k: rec[k] for k in ("run_id", "inputs") if k in rec}


def set_aside(out_dir: Path) -> Path:
    """Move a folder that is not this stage's out of the way (kept, never deleted): stage-N.aside-K."""
    out_dir = Path(out_dir)
    k = 1
    while (target := out_dir.with_name(f"{out_dir.name}.aside-{k}")).exists():
        k += 1
    os.replace(out_dir, target)
    return target
