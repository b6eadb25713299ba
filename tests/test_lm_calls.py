"""The probes' model calls on models that are not the tiny Llama: absolute positions, several end-of-turn tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from curriculum.models.chat import prompt_ids
from curriculum.models.load import TINY, load_base
from probes.lm import choice_logprobs, greedy_answers

QUESTIONS = [("Which fits a quiet lake at dawn?", ["still water", "a loud market"]),
             ("Pick one.", ["yes", "no", "perhaps not today"]),
             ("A much longer question, so that the batch is left-padded by many tokens for the short ones?", ["a", "b c"])]


@pytest.fixture(scope="module")
def tokenizer():
    return load_base(TINY).tokenizer


def test_choice_scoring_passes_positions_so_absolute_position_models_batch_right(tokenizer) -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=256)).eval()
    batched = choice_logprobs(model, tokenizer, QUESTIONS, batch_size=8)
    alone = [choice_logprobs(model, tokenizer, [q], batch_size=1)[0] for q in QUESTIONS]
    for got, want in zip(batched, alone):
        assert [n for _, n in got] == [n for _, n in want]
        assert [lp for lp, _ in got] == pytest.approx([lp for lp, _ in want], abs=1e-4)


def test_generation_stops_on_any_of_the_models_end_tokens(tokenizer) -> None:
    model = load_base(TINY).model.eval()
    prompt = ["Tell me about the lake."]
    free = greedy_answers(model, tokenizer, prompt, max_new_tokens=6)
    first = int(model(torch.tensor([prompt_ids(tokenizer, prompt[0])])).logits[0, -1].argmax())  # greedy's first token
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, first]  # e.g. <|im_end|> and <|endoftext|>
    stopped = greedy_answers(model, tokenizer, prompt, max_new_tokens=6)
    assert free[0] and stopped[0] == tokenizer.decode([first]).strip() and stopped != free


def test_choice_scoring_uses_no_deprecated_argument() -> None:
    """The cache goes in as transformers now names it: no deprecation warning on every choice probe."""
    import warnings

    loaded = load_base(TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        scored = choice_logprobs(loaded.model.eval(), loaded.tokenizer, QUESTIONS, batch_size=8)
    assert [len(s) for s in scored] == [2, 3, 2]
