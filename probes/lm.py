"""Batched model calls every probe needs: greedy answers and continuation log-likelihoods.

Items are sorted by length before batching so padding stays small; results come back in
the callers' order. A batch that runs out of memory is halved and run again (curriculum.training.memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from curriculum.models.chat import prompt_ids
from curriculum.training.memory import in_batches

# How probe answers are generated, recorded with every run: greedy, and no 3-gram twice, so a tuned model
# cannot loop ("steady, steady, steady, ...") and a loop cannot pad an answer with cue words.
DECODING = {"do_sample": False, "max_new_tokens": 48, "no_repeat_ngram_size": 3}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _left_padded(seqs: Sequence[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences aligned on their last token, so a batch's next positions line up."""
    width = max(len(seq) for seq in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 48, batch_size: int = 16,
                   no_repeat_ngram_size: int = DECODING["no_repeat_ngram_size"]) -> list[str]:
    """Greedy chat answers (no n-gram repeated), left-padded batches; a batch ends when all its answers have."""
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    device = _device(model)
    # the model's own end-of-turn tokens (often several, e.g. <|im_end|> and <|endoftext|>), not just the tokenizer's
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos

    def answer(idx: Sequence[int]) -> None:
        ids, mask = _left_padded([encoded[i] for i in idx], pad, device)
        width = ids.size(1)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad, eos_token_id=eos,
                             no_repeat_ngram_size=no_repeat_ngram_size)
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()

    in_batches(order, batch_size, answer)
    return out


@torch.no_grad()
def choice_logprobs(model, tokenizer, questions: Sequence[tuple[str, Sequence[str]]],
                    batch_size: int = 16) -> list[list[tuple[float, int]]]:
    """(sum log p, token count) of each option given its question's chat prompt.

    The prompt is most of every sequence, so it runs once per question: prompts go through
    left-padded, with position ids counted from each prompt's first real token (so models with
    absolute positions score the same as one at a time), their KV cache is repeated once per
    option, and only the short options run on top of it.
    """
    device = _device(model)
    heads = [prompt_ids(tokenizer, prompt) for prompt, _ in questions]
    tails = [[tokenizer(option, add_special_tokens=False)["input_ids"] for option in options] for _, options in questions]
    order = sorted(range(len(questions)), key=lambda i: len(heads[i]))
    out: list[list[tuple[float, int]]] = [[] for _ in questions]
    pad = tokenizer.pad_token_id

    def score(idx: Sequence[int]) -> None:
        ids, mask = _left_padded([heads[i] for i in idx], pad, device)
        prefix = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0), use_cache=True)
        first = torch.log_softmax(prefix.logits[:, -1].float(), -1)
        rows = [(row, tail) for row, i in enumerate(idx) for tail in tails[i]]
        owner = torch.tensor([row for row, _ in rows], device=device)
        cache = prefix.cache  # transformers 5 names the cache `cache` (past_key_values is deprecated)
        cache.reorder_cache(owner)
        length = max(len(tail) for _, tail in rows)
        opt = torch.full((len(rows), length), pad, dtype=torch.long)
        opt_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for r, (_, tail) in enumerate(rows):
            opt[r, : len(tail)] = torch.tensor(tail)
            opt_mask[r, : len(tail)] = 1
        positions = mask.sum(1)[owner, None] + torch.arange(length, device=device)
        logits = model(input_ids=opt.to(device), attention_mask=torch.cat([mask[owner], opt_mask.to(device)], 1),
                       cache=cache, position_ids=positions).logits
        scored = []
        for r, (row, tail) in enumerate(rows):
            total = first[row, tail[0]].item()
            if len(tail) > 1:
                rest = torch.log_softmax(logits[r, : len(tail) - 1].float(), -1)
                total += rest.gather(1, torch.tensor(tail[1:], device=device)[:, None]).sum().item()
            scored.append((idx[row], (total, len(tail))))
        for i, pair in scored:  # only once the whole batch has run: a batch halved after an OOM adds nothing twice
            out[i].append(pair)

    in_batches(order, batch_size, score)
    return out
