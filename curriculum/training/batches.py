"""What a stage trains on, as tensors: examples tokenized (through the token cache) into int32 ids and labels, replay
drawn from earlier nodes, length-grouped batches epoch after epoch, split between processes, padded per batch or packed; and
the loss over them.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from curriculum.models.chat import IGNORE, Example, ExampleView, example_ids, example_of
from curriculum.models.tokencache import TokenCache
from curriculum.graph.problems import CurriculumError, Problem
from curriculum.graph.spec import TrainConfig


@dataclass(frozen=True)
class Tokenized:
    """An example's token ids and labels, as int32 arrays: a node of 100,000 conversations holds a fifth of the
    memory Python lists of ints would."""

    ids: Sequence[int]
    labels: Sequence[int]

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


TOKENIZE_CHUNK = 1024


def tokenize_examples(tokenizer, examples: Sequence[Example], max_length: int,
                      cache: TokenCache | None = None) -> list[Tokenized]:
    """Tokenize every example (read back from `cache` when it holds it); one problem per example that is too long,
    naming its file:line."""
    out, problems = [], []
    usable = [ex for ex in examples if ex.prompt.strip() and ex.answer.strip()]
    encoded = (pair for at in range(0, len(usable), TOKENIZE_CHUNK)  # a chunk at a time: the lists of a whole
               for pair in (cache.ids(usable[at:at + TOKENIZE_CHUNK]) if cache is not None  # node never held at once
                            else [example_ids(tokenizer, ex) for ex in usable[at:at + TOKENIZE_CHUNK]]))
    for ex in examples:
        if not ex.prompt.strip() or not ex.answer.strip():
            problems.append(Problem(ex.file, ex.line, 1, "empty prompt or answer"))
            continue
        ids, labels = next(encoded)
        if len(ids) > max_length:
            problems.append(Problem(ex.file, ex.line, 1, f"example is {len(ids)} tokens, longer than max_length {max_length}"))
            continue
        out.append(Tokenized(array("i", ids), array("i", labels)))
    if problems:
        raise CurriculumError(problems)
    return out


def length_grouped_batches(items: Sequence[Tokenized], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then sort within mega-batches by length so each batch pads little."""
    order = list(range(len(items)))
    rng.shuffle(order)
    mega = batch_size * 16
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -len(items[i].ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


# attention implementations with variable-length kernels: they skip what a packed row's block mask hides, where
# SDPA and eager compute the whole row's attention under it (packed ran 0.82x padded on the CPU: docs/benchmarks.md)
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


def packs(cfg: TrainConfig, model) -> bool:
    """`packing` resolved for this model: 'auto' packs only where the attention has variable-length kernels."""
    return cfg.packing == "on" or (cfg.packing == "auto" and getattr(model.config, "_attn_implementation", None)
                                   in VARLEN_ATTENTION)


def collate(items: Sequence[Tokenized], pad_id: int, device: str, packed: bool = False) -> dict[str, Any]:
    """A micro-batch as the model reads it. Padded: right-padded to the longest item of the batch, not to
    max_length. Packed: every item end to end in one row, each one's positions counted from 0 and no attention
    mask, which transformers reads as separate sequences (masking_utils' packed-sequence path, taken only without
    a cache: `token_losses` asks for none). Each item's first label is ignored, so no item's loss reads the item
    before it.

    `keep` (the positions whose next token carries a loss, in any row) is found here, on the host, so the step
    does not wait on the device to learn which logits to compute."""
    if packed:
        ids = torch.tensor([t for it in items for t in it.ids], dtype=torch.long)[None]
        labels = torch.tensor([IGNORE if k == 0 else t for it in items for k, t in enumerate(it.labels)], dtype=torch.long)[None]
        positions = torch.tensor([k for it in items for k in range(len(it.ids))], dtype=torch.long)[None]
        return {"input_ids": ids.to(device), "labels": labels.to(device), "position_ids": positions.to(device),
                "keep": _answered(labels).to(device)}
    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.ids)
        ids[row, :n] = torch.tensor(it.ids)
        labels[row, :n] = torch.tensor(it.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device),
            "keep": _answered(labels).to(device)}


def _answered(labels: torch.Tensor) -> torch.Tensor:
    """Positions p, over all rows, whose next token p + 1 carries a loss (the last position when none does)."""
    keep = (labels[:, 1:] != IGNORE).any(dim=0).nonzero().squeeze(1)
    return keep if keep.numel() else torch.tensor([labels.size(1) - 1])


def token_losses(model, batch: dict[str, Any]) -> torch.Tensor:
    """The cross-entropy of each kept position on the token after it (column j is position `batch["keep"][j]`),
    0 where that token carries no loss in a row.

    The vocabulary projection runs only where some row has an answer token next: a prompt's logits carry no loss,
    and with a 49k vocabulary they cost a fifth of the step; in a packed row the prompts sit between the answers.
    """
    keep = batch["keep"]
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits.float()
    targets = batch["labels"][:, keep + 1]
    losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE, reduction="none")
    return losses.view(targets.shape)


def summed_loss(model, batch: dict[str, Any]) -> torch.Tensor:
    """Sum of answer-token cross-entropies (callers divide by the window's answer tokens)."""
    return token_losses(model, batch).sum()


@torch.no_grad()
def mean_loss(model, items: Sequence[Tokenized], pad_id: int, device: str, batch_size: int = 16) -> float:
    """Token-weighted loss over items in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        total += summed_loss(model, collate(chunk, pad_id, device)).item()
        count += sum(it.answer_tokens for it in chunk)
    model.train(was_training)
    return total / max(count, 1)


def with_replay(examples: Sequence[Example], pools: Sequence[Sequence[Example]], fraction: float,
                seed: int, at_least: int = 0) -> list[Example]:
    """The node's examples plus about fraction * n earlier ones, drawn per mastered node (one pool each):
    every mastered node gets at least one example, so replay does not thin out as the graph grows.
    at_least: `replay_each`, a floor per held node, so a node of 8 examples is not down to one a stage when the
    trained node is small or many nodes are held."""
    pools = [p for p in pools if len(p)]  # a view stays one: rng.sample reads only the rows it draws
    each = _replay_each(len(examples), len(pools), fraction, at_least)
    if not each:
        return list(examples)
    rng = random.Random(seed)
    return list(examples) + [ex for pool in pools for ex in rng.sample(pool, min(each, len(pool)))]


def replayed_size(n_examples: int, pool_sizes: Sequence[int], fraction: float, at_least: int = 0) -> int:
    """How many examples with_replay gives, without drawing them (the flow sizes a stage by it)."""
    sizes = [n for n in pool_sizes if n]
    each = _replay_each(n_examples, len(sizes), fraction, at_least)
    return n_examples + sum(min(each, n) for n in sizes)


def _replay_each(n_examples: int, n_pools: int, fraction: float, at_least: int) -> int:
    """Earlier examples drawn from each non-empty pool (0: no replay)."""
    if not (fraction or at_least) or not n_pools:
        return 0
    return max(1 if fraction else 0, round(fraction * n_examples / n_pools), at_least)


def windows(items: Sequence[Tokenized], cfg: TrainConfig, rng: random.Random) -> Iterator[tuple[int, list[list[int]]]]:
    """(epoch, window of grad_accum batches), epoch after epoch, each epoch reshuffled."""
    epoch = 0
    while True:
        batches = length_grouped_batches(items, cfg.batch_size, rng)
        for start in range(0, len(batches), cfg.grad_accum):
            yield epoch, batches[start : start + cfg.grad_accum]
        epoch += 1


def shard(batches: Sequence[Sequence[Tokenized]], index: int, count: int) -> list[list[Tokenized]]:
    """Process `index` of `count`'s part of one optimizer step's batches: every count-th example of each batch, so
    the processes together see exactly the examples one process would, and each batch stays length-grouped."""
    return [list(batch[index::count]) for batch in batches]


def examples_from_records(records) -> list[Example]:
    """Validated records -> chat examples that remember their file:line (a conversation with its earlier turns)."""
    return [example_of(r) for r in records]


def pool_of(records) -> Sequence[Example]:
    """A node's examples to draw from: a view that reads only the drawn rows when the node lies on disk
    (datasources.NodeRows), else the list."""
    return ExampleView(records) if hasattr(records, "fingerprint") else examples_from_records(records)
