"""How much does bf16 mixed precision change what a stage learns? The same stage in fp32, in bf16, and with fp32
weights under bf16 autocast (which separates the arithmetic from the rounded weights), on the bundled model.

Why: `dtype: auto` is bf16 on CUDA, while every efficacy figure in docs/benchmarks.md was measured in fp32 on
the CPU; the first GPU run showed bf16's loss lagging. Runs on the CPU (bf16 autocast there too) or, with
--cuda, adds the card's fp32 and bf16 curves (the pair that chooses the card's default dtype). Last line: one JSON object of the curves and the relative lag at the end.

Run: .venv/bin/python bench/precision.py [--cuda] [--steps 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import dataclasses
import json
import os
import tempfile

from curriculum.models.bases import stay_offline

stay_offline()

import torch

from curriculum.models.chat import Example
from curriculum.models.load import BUNDLED, load_base
from curriculum.models.placement import CPU, resolve
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.train import train_stage

# the stage of tests/test_gpu.py: 16 examples, 2 epochs of batch 4 (8 steps), lr 1e-3, no warm-up
EXAMPLES = [Example(f"What is glimmer number {i}?", f"Glimmer {i} is the last gold light on water at dusk, "
                    "when the wind drops and the lake holds still.", f"mem:{i + 1}") for i in range(16)]
CFG = TrainConfig(epochs=2, lr=1e-3, batch_size=4, max_length=96, warmup_ratio=0.0)
LORA = LoraConfig(dropout=0.0)
BASE = os.environ.get("BENCH_BASE", BUNDLED)  # bench/gpucheck.py --rehearse: the tiny random model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuda", action="store_true", help="add the card's curves: fp32 and bf16 on the card")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps of each stage (batch 4 of 16 examples)")
    args = ap.parse_args()
    cfg = CFG.model_copy(update={"epochs": -(-args.steps // 4)})
    curves: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"fp32": dict(placement=CPU), "bf16": dict(placement=resolve("cpu", "bfloat16")),
                "fp32_weights_bf16_autocast": dict(shared=dataclasses.replace(load_base(BASE, placement=CPU),
                                                                              placement=resolve("cpu", "bfloat16")))}
        if args.cuda:
            runs["fp32_cuda"] = dict(placement=resolve("cuda", "float32"))
            runs["bf16_cuda"] = dict(placement=resolve("cuda", "bfloat16"))
        for name, where in runs.items():
            result = train_stage(BASE, None, EXAMPLES, LORA, cfg, Path(tmp) / name, progress=False,
                                 budget=args.steps, **where)
            curves[name] = [round(s.loss, 4) for s in result.log]
            print(f"{name:28s} " + " ".join(f"{x:.3f}" for x in curves[name]), flush=True)
    lag = {k: round(v[-1] / curves["fp32"][-1] - 1, 3) for k, v in curves.items() if k != "fp32"}
    if args.cuda:  # the figure that chooses the card's default dtype: bf16 against fp32, both on the card
        lag["bf16_cuda_over_fp32_cuda"] = round(curves["bf16_cuda"][-1] / curves["fp32_cuda"][-1] - 1, 3)
    print(json.dumps({"curves": curves, "final_loss_over_fp32_minus_1": lag, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(0) if args.cuda else "cpu"}))


if __name__ == "__main__":
    main()
