"""Trainer speed: `train_stage` vs TRL's SFTTrainer vs a bare PEFT + torch loop, one run.

Same model (bundled SmolLM2-135M), same variable-length chat data, LoRA config, max length,
batch size and epochs. Each side is timed from model load to a saved adapter; tokens/s
counts real (non-padding) tokens. Ours runs twice: with `packing: auto` (packed under flash-attention, else padded)
and with the other batching, so the default is checked against the alternative in the same run. Also: GGUF load vs the cached safetensors load, and where a
stage's wall time goes (load, tokenize, train, check, save). On a GPU (auto placement: CUDA in bf16, every side
alike): peak memory, and model FLOPs utilisation against the card's bf16 peak (BENCH_PEAK_TFLOPS for a card
not in the table). Last line: one JSON object. Run: .venv/bin/python bench/train.py
(--packing-ab N: ours padded and packed alternately, N times each, nothing else)
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/*.py would shadow the project's packages when run as scripts
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import functools
import json
import math
import os
import random
import tempfile
import time

from curriculum.models.bases import stay_offline

stay_offline()

import torch

from curriculum.models.chat import Example
from curriculum.models.load import BUNDLED, bundled_gguf, converted_bundled, load_base, load_gguf
from curriculum.models.placement import resolve
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.batches import collate, packs, tokenize_examples
from curriculum.training.train import attach_lora, train_stage

N_EXAMPLES = int(os.environ.get("BENCH_TRAIN_EXAMPLES", 48))
BASE = os.environ.get("BENCH_BASE", BUNDLED)  # bench/gpucheck.py --rehearse: the tiny random model
CFG = TrainConfig(epochs=1, lr=2e-4, batch_size=8, max_length=192, warmup_ratio=0.1)
LORA = LoraConfig()
CUDA = torch.cuda.is_available()
# dense bf16 tensor-core peaks (TFLOP/s) by a piece of the card's name; the first match wins
PEAK_TFLOPS = (("H200", 989.0), ("H100", 989.0), ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0),
               ("L40", 181.0), ("L4", 121.0), ("A10", 125.0), ("4090", 165.0), ("3090", 71.0), ("A6000", 155.0))
WORDS = ("fog whisper frost ember lull glimmer dusk hush morning forest river lantern rain stone "
         "quiet warm cold light shadow drift").split()


def variable_length_data(n: int, seed: int = 0) -> list[Example]:
    """Answers from 4 to 90 words: the spread real curricula have."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        length = rng.choice([4, 8, 12, 20, 35, 60, 90])
        answer = " ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + "."
        out.append(Example(f"Describe scene number {i} in words.", answer))
    return out


def ours(data: list[Example], out: Path, packing: str = "auto") -> tuple[float, int, dict[str, float]]:
    t0 = time.perf_counter()
    result = train_stage(BASE, None, data, LORA, CFG.model_copy(update={"packing": packing}), out, progress=False)
    return time.perf_counter() - t0, result.tokens, result.phases


def ours_other(data: list[Example], out: Path) -> tuple[float, int, dict[str, float]]:
    """Ours with the batching `packing: auto` does not choose for this model here, so the default is checked
    against the alternative in the same run."""
    return ours(data, out, other_packing())


@functools.cache
def other_packing() -> str:
    """'off' where `auto` packs (flash-attention), else 'on'."""
    return "off" if packs(CFG, load_base(BASE).model) else "on"


def bare_loop(data: list[Example], out: Path) -> tuple[float, int, dict[str, float]]:
    """The loop one writes by hand: shuffled batches, dynamic padding, the model's own loss."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    loaded = load_base(BASE)
    items = tokenize_examples(loaded.tokenizer, data, CFG.max_length)
    model = attach_lora(loaded.model, None, LORA)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=CFG.lr)
    order = list(range(len(items)))
    random.Random(0).shuffle(order)
    tokens = 0
    for start in range(0, len(order), CFG.batch_size):
        batch = collate([items[i] for i in order[start : start + CFG.batch_size]], loaded.tokenizer.pad_token_id,
                        loaded.placement.device)
        with loaded.placement.autocast():
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    model.save_pretrained(str(out))
    return time.perf_counter() - t0, tokens, {}


def sft_trainer(data: list[Example], out: Path) -> tuple[float, int, dict[str, float]]:
    """TRL's SFTTrainer on the same prompt/completion pairs (completion-only loss)."""
    from datasets import Dataset
    from peft import LoraConfig as PeftLoraConfig
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    loaded = load_base(BASE)
    rows = [{"prompt": [{"role": "user", "content": ex.prompt}], "completion": [{"role": "assistant", "content": ex.answer}]}
            for ex in data]
    args = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=CFG.batch_size, num_train_epochs=CFG.epochs,
        learning_rate=CFG.lr, warmup_steps=math.ceil(CFG.warmup_ratio * math.ceil(len(data) / CFG.batch_size)), lr_scheduler_type="cosine", max_length=CFG.max_length,
        report_to="none", save_strategy="no", logging_steps=1000, use_cpu=not CUDA, bf16=CUDA, disable_tqdm=True, seed=0,
        dataloader_num_workers=0,
    )
    peft_config = PeftLoraConfig(r=LORA.r, lora_alpha=LORA.alpha, lora_dropout=LORA.dropout,
                                 target_modules=LORA.target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=loaded.tokenizer, peft_config=peft_config)
    trainer.train()
    trainer.save_model(str(out))
    seconds = time.perf_counter() - t0
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * CFG.epochs
    return seconds, tokens, {}


def peak_tflops() -> float | None:
    """The card's dense bf16 peak, for MFU; None off CUDA or for a card not in the table (see BENCH_PEAK_TFLOPS)."""
    if os.environ.get("BENCH_PEAK_TFLOPS"):
        return float(os.environ["BENCH_PEAK_TFLOPS"])
    name = torch.cuda.get_device_name(0) if CUDA else ""
    return next((peak for piece, peak in PEAK_TFLOPS if piece in name), None)


def packing_ab(repeats: int) -> None:
    """Ours padded and packed, alternately, `repeats` times each on the same data: on a shared machine the load moves
    during a run, and alternating spreads it over both. Last line: each run's tokens/s and the ratio of medians."""
    data = variable_length_data(N_EXAMPLES)
    runs: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        ours(data[: CFG.batch_size], Path(tmp) / "warm")
        for k in range(repeats):
            for packing in ("off", "on"):
                seconds, tokens, _ = ours(data, Path(tmp) / f"{packing}-{k}", packing)
                runs[packing].append(round(tokens / seconds, 1))
                print(f"packing {packing:3s} run {k + 1}: {tokens / seconds:7.1f} tok/s", flush=True)
    median = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    print(json.dumps({"padded_tok_s": runs["off"], "packed_tok_s": runs["on"],
                      "packed_over_padded": round(median["on"] / median["off"], 3), "examples": N_EXAMPLES,
                      "device": torch.cuda.get_device_name(0) if CUDA else "cpu"}))


def main() -> None:
    if "--packing-ab" in sys.argv:  # bench/train.py --packing-ab N
        packing_ab(int(sys.argv[sys.argv.index("--packing-ab") + 1]))
        return
    if BASE == BUNDLED:
        converted_bundled()  # conversion is a one-off, not part of any figure
    data = variable_length_data(N_EXAMPLES)
    results: dict[str, float] = {}
    peaks: dict[str, float | None] = {}
    stage_phases: dict[str, float] = {}
    other = f"train_stage_{'padded' if other_packing() == 'off' else 'packed'}"
    contenders = (("train_stage", ours), ("bare_loop", bare_loop), ("sft_trainer", sft_trainer), (other, ours_other))
    with tempfile.TemporaryDirectory() as tmp:
        # one untimed batch of each first: whoever ran first paid for the device's cold start (CUDA context, cuBLAS
        # handles, kernel loading: ours at 0.34x the bare loop on the first H200 run, measured first)
        for name, fn in contenders:
            fn(data[: CFG.batch_size], Path(tmp) / f"warm-{name}")
        for name, fn in contenders:
            if CUDA:
                torch.cuda.reset_peak_memory_stats()
            seconds, tokens, phases = fn(data, Path(tmp) / name)
            results[name] = tokens / seconds
            peaks[name] = torch.cuda.max_memory_allocated() / 2**30 if CUDA else None
            print(f"{name:19s} {tokens:6d} tokens in {seconds:6.1f} s  -> {tokens / seconds:7.1f} tok/s"
                  + (f", peak {peaks[name]:.2f} GiB" if CUDA else ""), flush=True)
            if phases:
                rest = seconds - sum(phases.values())
                print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()) + f", outside {rest:.2f} s",
                      flush=True)
                stage_phases = phases
    t0 = time.perf_counter()
    params = sum(p.numel() for p in load_base(BASE).model.parameters())
    cached_s = time.perf_counter() - t0
    gguf_s = math.nan
    if BASE == BUNDLED:
        t0 = time.perf_counter()
        load_gguf(bundled_gguf())
        gguf_s = time.perf_counter() - t0
        print(f"load: GGUF {gguf_s:.2f} s, cached safetensors {cached_s:.2f} s ({gguf_s / cached_s:.0f}x faster)")
    figures = {
        "vs_sft_trainer": round(results["train_stage"] / results["sft_trainer"], 2),
        "vs_bare_loop": round(results["train_stage"] / results["bare_loop"], 2),
        "cached_load_over_gguf": round(cached_s / gguf_s, 4) if BASE == BUNDLED else None,
        "base": BASE,
        "tokens_per_s": round(results["train_stage"], 1),
        "packing_auto": "off" if other_packing() == "on" else "on",
        f"auto_vs_{other.removeprefix('train_stage_')}": round(results["train_stage"] / results[other], 2),
        "device": torch.cuda.get_device_name(0) if CUDA else "cpu",
        "placement": resolve().record(),
        "phases_s": {k: round(v, 3) for k, v in stage_phases.items()},
    }
    peak = peak_tflops()
    if CUDA:
        # LoRA on a frozen base: forward 2N and backward-to-inputs 2N FLOPs a token, no weight gradients for the base
        flops = 4 * params * results["train_stage"]
        figures["peak_memory_gib"] = round(peaks["train_stage"], 2)
        figures["mfu"] = round(flops / (peak * 1e12), 4) if peak else None
        print(f"train_stage: {flops / 1e12:.2f} model TFLOP/s (4 x {params / 1e6:.0f}M params x tok/s)"
              + (f", MFU {figures['mfu']:.2%} of {peak:.0f} TFLOP/s bf16" if peak else ", MFU: card not in the table"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
