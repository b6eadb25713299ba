"""Out of memory: a stage halves its micro-batch (twice the accumulation, the same steps) and probing halves its
batch, down to one example; simulated on the CPU with $CURRICULUM_MEMORY_CAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from curriculum.models.chat import Example
from curriculum.training.memory import CAP_ENV, in_batches, is_oom, memory_cap
from curriculum.models.load import TINY, load_base
from curriculum.models.placement import CPU
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.stagespec import STAGE_FILE
from curriculum.training.train import train_stage
from flows.failures import transient
from probes.lm import choice_logprobs, greedy_answers

EXAMPLES = [Example(f"What is frost number {i}?", f"Frost {i} is the white lace the night leaves on glass.", f"mem:{i + 1}")
            for i in range(16)]
CFG = TrainConfig(epochs=2, lr=5e-3, batch_size=8, max_length=64, warmup_ratio=0.0)


def _stage(out: Path):
    return train_stage(TINY, None, EXAMPLES, LoraConfig(dropout=0.0), CFG, out, progress=False, placement=CPU)


def test_stage_under_a_memory_cap_halves_its_micro_batch_and_ends_as_the_uncapped_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free = _stage(tmp_path / "free")
    monkeypatch.setenv(CAP_ENV, "2")
    capped = _stage(tmp_path / "capped")
    record = json.loads((tmp_path / "capped" / STAGE_FILE).read_text())
    assert (record["micro_batch"], record["grad_accum"], record["ooms"]) == (2, 4, 2)  # 8 -> 4 -> 2, each OOM once
    assert capped.steps == free.steps == 4
    for a, b in zip(free.log, capped.log):  # the same examples per step: the same losses up to summation order
        assert b.loss == pytest.approx(a.loss, rel=1e-3, abs=1e-5)
        assert b.tokens == a.tokens
    assert capped.train_loss == pytest.approx(free.train_loss, rel=1e-3)


def test_a_batch_that_never_fits_is_raised_at_one_example_for_the_retry_to_see() -> None:
    sizes: list[int] = []

    def always_oom(batch) -> None:
        sizes.append(len(batch))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.OutOfMemoryError) as info:
        in_batches(list(range(10)), 8, always_oom)
    assert sizes == [8, 4, 2, 1]
    assert transient(info.value) == "out of memory"


def test_only_out_of_memory_shrinks_a_batch() -> None:
    sizes: list[int] = []

    def broken(batch) -> None:
        sizes.append(len(batch))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        in_batches(list(range(10)), 8, broken)
    assert sizes == [8]
    assert is_oom(RuntimeError("CUDA error: out of memory")) and not is_oom(ValueError("out of memory"))


def test_a_cap_that_is_not_a_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAP_ENV, "lots")
    with pytest.raises(ValueError, match="CURRICULUM_MEMORY_CAP must be a positive whole number"):
        memory_cap()


def test_probing_under_a_memory_cap_shrinks_its_batches_and_answers_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_base(TINY, placement=CPU)
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = [f"Say something about frost {i}." for i in range(6)]
    questions = [(f"Which fits frost {i}?", ["white lace", "a hot stove", "loud drums"]) for i in range(6)]
    answers, scores = greedy_answers(model, tok, prompts, max_new_tokens=6), choice_logprobs(model, tok, questions)
    rows: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, args, kw: rows.append(kw["input_ids"].size(0)), with_kwargs=True)
    monkeypatch.setenv(CAP_ENV, "2")
    try:
        capped_answers = greedy_answers(model, tok, prompts, max_new_tokens=6)
        generated, rows[:] = list(rows), []
        capped_scores = choice_logprobs(model, tok, questions)
    finally:
        hook.remove()
    assert generated and max(generated) == 2  # uncapped: all 6 prompts in one batch
    assert rows and max(rows) == 2 * 3  # two questions' prompts, then their three options each on the cache
    assert capped_answers == answers
    for got, want in zip(capped_scores, scores):
        assert [n for _, n in got] == [n for _, n in want]
        assert [s for s, _ in got] == pytest.approx([s for s, _ in want], abs=1e-4)
