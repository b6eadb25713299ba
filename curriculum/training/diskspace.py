"""Room for a stage's adapter, looked at before writing it: a full disk is one clear line, not a half-written folder.

Writing into a nearly full file system fails part way (or, on some, stalls); the adapter's size is known before
it is written (its trainable tensors), so asking the file system first is cheap and says what is missing.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

SLACK_BYTES = 1 << 20  # adapter_config.json, stage.json, tokenizer files, SHA256SUMS


def adapter_bytes(model) -> int:
    """What save_pretrained will write of a PEFT model: its trainable tensors (the LoRA weights, token rows)."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad) + SLACK_BYTES


def ensure_room(folder: Path, needed: int) -> None:
    """Raise ENOSPC (naming the folder, what is free and what is needed) when the file system under folder
    cannot hold `needed` more bytes."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {free} bytes free, about {needed} needed", str(folder))
