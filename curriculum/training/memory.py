"""Running out of accelerator memory: what counts as it, freeing what can be freed, and shrinking a batch until
it fits (down to one example) instead of failing the same way again on a retry.

$CURRICULUM_MEMORY_CAP=N makes any batch of more than N examples fail as a CUDA OOM does, so the recovery runs
(and is tested) on a CPU; it is read here only.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

CAP_ENV = "CURRICULUM_MEMORY_CAP"
T = TypeVar("T")


def is_oom(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or a RuntimeError whose text says so (some kernels raise it plain)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def free_memory() -> None:
    """Drop what the failed attempt left (its tensors die with its frames) and hand cached blocks back to CUDA."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory_cap() -> int | None:
    """The simulated memory: the most examples a batch may hold ($CURRICULUM_MEMORY_CAP), or None (no cap)."""
    value = os.environ.get(CAP_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${CAP_ENV} must be a positive whole number of examples, got {value!r}")
    return int(value)


def pressure(examples: int) -> None:
    """Fail as a CUDA OOM would when a batch of this many examples is over the simulated cap."""
    cap = memory_cap()
    if cap is not None and examples > cap:
        raise torch.OutOfMemoryError(
            f"CUDA out of memory (simulated by ${CAP_ENV}={cap}: a batch of {examples} examples)")


def halved(size: int) -> int:
    return max(1, size // 2)


def in_batches(items: Sequence[T], batch_size: int, run: Callable[[Sequence[T]], None]) -> int:
    """run(batch) over consecutive batches of items; a batch that runs out of memory is halved and run again
    (no result of a failed batch is kept), down to one item, then the OOM is raised. Returns the size that fit."""
    start, size = 0, batch_size
    while start < len(items):
        batch = items[start : start + size]
        try:
            pressure(len(batch))
            run(batch)
            start += len(batch)
            continue
        except Exception as exc:
            if not is_oom(exc) or size == 1:
                raise
        free_memory()  # outside the except block: the traceback and the batch's tensors are gone by now
        size = halved(size)
    return size
