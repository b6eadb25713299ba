"""Which probe items a stage looks at: draws for a gate decision, rotating samples for regression.

A gate decision starts on part of the node's pool and draws the rest only while the
decision is unclear; a regression sweep looks at a rotating window of the very items the
node was mastered on, so the forgetting test compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from curriculum.stats.evidence import ItemKey, draw_order, first_draw, rotating_sample
from curriculum.loading.validate import LoadedCurriculum


def pool_keys(loaded: LoadedCurriculum, node_id: str) -> list[ItemKey]:
    """Every item of the node's item-file probes, and the first `sample` docs of its lm-eval `task:` probes
    (doc d is item d+1), in the node's fixed draw order."""
    keys = [(i, rec.line) for i, records in enumerate(loaded.probe_items[node_id]) for rec in records]
    keys += [(i, d) for i, probe in enumerate(loaded.spec.nodes[node_id].probes)
             if probe.task is not None and probe.sample for d in range(1, probe.sample + 1)]
    return draw_order(node_id, keys)


def first_items(loaded: LoadedCurriculum, node_id: str) -> list[ItemKey]:
    keys = pool_keys(loaded, node_id)
    return keys[: first_draw(len(keys))]


def more_items(loaded: LoadedCurriculum, node_id: str, used: Iterable[ItemKey]) -> list[ItemKey]:
    """The next draw: as many unused items as the first draw took (never one already used)."""
    keys = pool_keys(loaded, node_id)
    seen = set(used)
    fresh = [k for k in keys if k not in seen]
    return fresh[: first_draw(len(keys))]


def regression_items(loaded: LoadedCurriculum, node_id: str, mastered_on: Sequence[ItemKey], stage: int) -> list[ItemKey]:
    """Per probe, `sample` of the items the node was mastered on (all when unset), rotating with the stage."""
    out: list[ItemKey] = []
    for i, probe in enumerate(loaded.spec.nodes[node_id].probes):
        keys = [k for k in mastered_on if k[0] == i]
        out += rotating_sample(keys, probe.sample or len(keys), stage)
    return out
