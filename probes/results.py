"""What a probe returns: one row per item, plus the node's aggregate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ItemResult:
    node_id: str
    probe_kind: str
    probe_index: int
    item: int  # line of the item in its JSONL file
    prompt: str
    output: str
    reference: str
    score: float
    passed: bool
    sim: float | None = None
    novelty: float | None = None
    copied: bool | None = None
    logprob: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The warehouse row (run_id and stage are added by the caller)."""
        import json

        data = asdict(self)
        data["tags"] = json.dumps(self.tags) if self.tags else None
        return data


def mean_score(scores: Sequence[float]) -> float:
    """A node's score: the mean of its items' scores (0.0 when it has none).

    fsum is exact whatever the order, so a resumed run re-derives the very same float
    from the warehouse rows.
    """
    return math.fsum(scores) / len(scores) if scores else 0.0


def aggregate(results: Sequence[ItemResult]) -> float:
    return mean_score([r.score for r in results])
