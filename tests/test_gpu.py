"""What only a GPU can show: bf16 training, a real out-of-memory, QLoRA, probing batches on CUDA.

Marked `gpu` and skipped without CUDA (never required by CI); `make gpu-check` runs them. Each must fit the few
minutes a GPU machine is lent, so they use the bundled 135M model and a handful of steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curriculum.models.chat import Example
from curriculum.models.load import BUNDLED, load_base
from curriculum.models.placement import CPU, resolve
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.stagefiles import ADAPTER_FILE
from curriculum.training.stagespec import STAGE_FILE
from curriculum.training.train import train_stage
from probes.lm import choice_logprobs, greedy_answers

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

EXAMPLES = [Example(f"What is glimmer number {i}?", f"Glimmer {i} is the last gold light on water at dusk, "
                    "when the wind drops and the lake holds still.", f"mem:{i + 1}") for i in range(16)]
CFG = TrainConfig(epochs=2, lr=1e-3, batch_size=4, max_length=96, warmup_ratio=0.0)
LORA = LoraConfig(dropout=0.0)


def test_bf16_stage_on_the_card_follows_the_same_precision_on_the_cpu(tmp_path: Path) -> None:
    """The card must not change the numbers beyond rounding: compared with the same bf16 mixed
    precision on the CPU. Against fp32 it cannot be held to 5 % on the real model: bf16 activations round away
    LoRA's first, tiny updates, so its loss lags fp32's (+8 % at step 2, +21 % at step 8 on the CPU; the first H200
    run gave 3.365 at step 2 where the CPU's bf16 gives 3.371 and fp32 3.123). The fp32 curve is printed beside."""
    fp32 = train_stage(BUNDLED, None, EXAMPLES, LORA, CFG, tmp_path / "fp32", progress=False, placement=CPU)
    cpu = train_stage(BUNDLED, None, EXAMPLES, LORA, CFG, tmp_path / "cpu", progress=False,
                      placement=resolve("cpu", "bfloat16"))
    gpu = train_stage(BUNDLED, None, EXAMPLES, LORA, CFG, tmp_path / "gpu", progress=False,
                      placement=resolve("cuda", "bfloat16"))
    record = json.loads((tmp_path / "gpu" / STAGE_FILE).read_text())
    assert (record["device"], record["dtype"]) == ("cuda", "bfloat16")
    assert gpu.steps == cpu.steps == fp32.steps == 8
    curves = "\n".join(f"step {a.step}: fp32 cpu {a.loss:.4f}, bf16 cpu {b.loss:.4f}, bf16 cuda {c.loss:.4f}"
                       for a, b, c in zip(fp32.log, cpu.log, gpu.log))
    print("\n" + curves)  # the whole curve, not only the first step out of tolerance: the evidence a lent GPU is for
    assert all(c.loss == pytest.approx(b.loss, rel=0.05, abs=0.05) for b, c in zip(cpu.log, gpu.log)), curves
    assert gpu.log[-1].loss < gpu.log[0].loss


def test_real_out_of_memory_is_recovered_by_a_smaller_micro_batch(tmp_path: Path) -> None:
    """A per-process memory cap of about three long examples: 16 at once cannot fit, a few can."""
    long = [Example(f"Tell the long story {i}.", " ".join(["the fog rolls over the hills and the frost holds"] * 60),
                    f"mem:{i + 1}") for i in range(16)]
    cfg = TrainConfig(epochs=1, lr=1e-4, batch_size=16, max_length=1024, warmup_ratio=0.0)
    loaded = load_base(BUNDLED, placement=resolve("cuda", "bfloat16"))  # lent to both stages: one copy, measured once
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    resident = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    one = train_stage(BUNDLED, None, long[:1], LORA, cfg.model_copy(update={"batch_size": 1}), tmp_path / "one",
                      progress=False, shared=loaded)
    per_example = torch.cuda.max_memory_allocated() - resident
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (resident + 3 * per_example) / total))
    try:
        result = train_stage(BUNDLED, None, long, LORA, cfg, tmp_path / "capped", progress=False, shared=loaded)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    record = json.loads((tmp_path / "capped" / STAGE_FILE).read_text())
    assert one.ooms == 0 and record["ooms"] >= 1, record
    assert record["micro_batch"] <= 8 and record["micro_batch"] * record["grad_accum"] == 16
    assert result.steps == 1 and (tmp_path / "capped" / ADAPTER_FILE).exists()


def test_qlora_stage_trains_on_a_4bit_base(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    where = resolve("cuda", quantize="4bit")
    result = train_stage(BUNDLED, None, EXAMPLES, LORA, CFG.model_copy(update={"lr": 2e-3}), tmp_path / "q",
                         progress=False, placement=where)
    record = json.loads((tmp_path / "q" / STAGE_FILE).read_text())
    assert record["quantize"] == "4bit" and record["device"] == "cuda"
    assert result.log[-1].loss < result.log[0].loss
    from peft import PeftModel

    base = load_base(BUNDLED, placement=resolve("cuda", "bfloat16"))
    reloaded = PeftModel.from_pretrained(base.model, str(tmp_path / "q")).eval()  # a plain adapter: fits a bf16 base
    ids = base.tokenizer("Glimmer", return_tensors="pt").to("cuda")
    assert torch.isfinite(reloaded(**ids).logits).all()


def test_probe_batches_on_the_gpu_agree_with_the_cpu() -> None:
    gpu, cpu = load_base(BUNDLED, placement=resolve("cuda", "bfloat16")), load_base(BUNDLED, placement=CPU)
    prompts = [f"Describe the weather on day {i} in one sentence." for i in range(8)]
    rows: list[int] = []
    hook = gpu.model.register_forward_pre_hook(lambda _m, a, kw: rows.append(kw["input_ids"].size(0)), with_kwargs=True)
    try:
        answers = greedy_answers(gpu.model.eval(), gpu.tokenizer, prompts, max_new_tokens=12, batch_size=8)
    finally:
        hook.remove()
    assert rows[0] == 8 and all(answers)  # one batch of eight on the card
    reference = greedy_answers(cpu.model.eval(), cpu.tokenizer, prompts, max_new_tokens=12, batch_size=8)
    same_start = sum(a.split()[:2] == r.split()[:2] for a, r in zip(answers, reference))
    assert same_start >= len(prompts) // 2, list(zip(answers, reference))
    questions = [("Which is cold?", ["ice", "fire", "sun"]), ("Which is loud?", ["a drum", "a feather", "fog"])]
    got, want = choice_logprobs(gpu.model, gpu.tokenizer, questions), choice_logprobs(cpu.model, cpu.tokenizer, questions)
    for g, w in zip(got, want):
        assert [s for s, _ in g] == pytest.approx([s for s, _ in w], abs=0.5)
