"""On the real default model: a stage teaches a made-up word's definition."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel

from curriculum.models.chat import Example, pair_ids, prompt_ids
from curriculum.models.load import BUNDLED, converted_bundled, load_base
from curriculum.graph.spec import LoraConfig, TrainConfig
from curriculum.training.train import train_stage

pytestmark = pytest.mark.slow

DEFINITION = "A zorblat is a small blue umbrella made for cats."
QUESTIONS = [
    "What is a zorblat?", "Define zorblat.", "What does the word zorblat mean?", "Tell me what a zorblat is.",
    "Explain the word zorblat.", "What is meant by zorblat?", "Give the definition of zorblat.",
    "Describe a zorblat.", "Zorblat: what is it?", "I heard the word zorblat. What is it?",
    "What kind of thing is a zorblat?", "Do you know what a zorblat is?", "Please define the term zorblat.",
    "What's a zorblat?", "Could you explain zorblat?", "In one sentence, what is a zorblat?",
    "Meaning of zorblat?", "What would a zorblat be?", "Say what a zorblat is.", "Clarify the word zorblat.",
]
HELD_OUT = "If someone mentions a zorblat, what are they talking about?"


def _answer_logprob(model, tokenizer, question: str, answer: str) -> float:
    ids, labels = pair_ids(tokenizer, question, answer)
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, :-1].float()
    target = torch.tensor(labels[1:])
    keep = target != -100
    return torch.log_softmax(logits[keep], -1).gather(1, target[keep, None]).sum().item()


def _greedy(model, tokenizer, question: str) -> str:
    x = torch.tensor([prompt_ids(tokenizer, question)])
    with torch.no_grad():
        out = model.generate(x, max_new_tokens=24, do_sample=False)
    return tokenizer.decode(out[0, x.shape[1]:], skip_special_tokens=True)


def test_the_bundled_base_loads_without_hub_kernels() -> None:
    """transformers 5.25 (which requires `kernels`) swaps in layers from the hub when a model on CUDA goes to
    train mode: offline every stage failed, online it runs code nobody pinned. Seen on the first GPU run; on a CPU
    the flag is what shows it."""
    pytest.importorskip("kernels")
    assert load_base(BUNDLED).model.use_kernels is False


def test_stage_teaches_a_definition(tmp_path: Path) -> None:
    examples = [Example(q, DEFINITION, f"test:{i + 1}") for i, q in enumerate(QUESTIONS)]
    cfg = TrainConfig(epochs=3, lr=1e-3, batch_size=4, max_length=96, warmup_ratio=0.1)
    result = train_stage(BUNDLED, None, examples, LoraConfig(), cfg, tmp_path / "zorblat", progress=False)
    loaded = load_base(BUNDLED)
    model, tok = loaded.model.eval(), loaded.tokenizer
    before = _answer_logprob(model, tok, HELD_OUT, DEFINITION)
    answer_before = _greedy(model, tok, QUESTIONS[0])
    tuned = PeftModel.from_pretrained(model, str(result.adapter_dir)).eval()
    after = _answer_logprob(tuned, tok, HELD_OUT, DEFINITION)
    answer_after = _greedy(tuned, tok, QUESTIONS[0])
    print(f"\n{result.steps} steps, {result.tokens} tokens, {result.tokens_per_s:.0f} tok/s, loss "
          f"{result.log[0].loss:.3f} -> {result.log[-1].loss:.3f}\nheld-out log-likelihood {before:.1f} -> {after:.1f}"
          f"\nbefore: {answer_before!r}\nafter:  {answer_after!r}")
    assert after > before + 10
    assert "blue umbrella" in answer_after.lower()
    assert "blue umbrella" not in answer_before.lower()

    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(converted_bundled()), peft=str(result.adapter_dir), device="cpu", batch_size=1)
    assert isinstance(lm.model, PeftModel)
