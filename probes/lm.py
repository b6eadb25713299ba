"""Batched model calls every probe needs: greedy answers and continuation log-likelihoods.

Items are sorted by length before batching so padding stays small; results come back in
the callers' order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from curriculum.chat import prompt_ids


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 48, batch_size: int = 16) -> list[str]:
    """Greedy chat answers, left-padded batches; a batch ends when all its answers have."""
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id
    device = _device(model)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()
    return out


@torch.no_grad()
def continuation_logprobs(model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> list[tuple[float, int]]:
    """(sum log p, token count) of each continuation given its chat prompt, batched."""
    seqs = []
    for prompt, continuation in pairs:
        head = prompt_ids(tokenizer, prompt)
        tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        seqs.append((head + tail, len(head)))
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    device = _device(model)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(seqs[i][0]) for i in idx)
        ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i][0])] = torch.tensor(seqs[i][0])
            mask[row, : len(seqs[i][0])] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, i in enumerate(idx):
            tokens, head = seqs[i]
            target = torch.tensor(tokens[head:], device=device)
            logprobs = torch.log_softmax(logits[row, head - 1 : len(tokens) - 1].float(), -1)
            picked = logprobs.gather(1, target[:, None])
            out[i] = (picked.sum().item(), len(target))
    return out
