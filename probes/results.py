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
    facts: float | None = None  # paraphrase: share of the item's key facts the answer states
    ref_logprob: float | None = None  # paraphrase: mean per-token log-likelihood of the reference (teacher-forced)
    options: list[dict[str, Any]] | None = None  # choice: each option's summed log-likelihoods and token count
    raw_correct: bool | None = None  # choice: right by per-token log-likelihood
    calibrated_correct: bool | None = None  # choice: right by log-likelihood minus the content-free prior
    scoring: str | None = None  # choice: which of the two the score uses
    split: str = "unsplit"  # check (read by decisions) | exam (read only for the verdict) | unsplit (curriculum.loading.exam)

    def row(self) -> dict[str, Any]:
        """The warehouse row (run_id and stage are added by the caller)."""
        import json

        data = asdict(self)
        data["tags"] = json.dumps(self.tags) if self.tags else None
        data["options"] = json.dumps(self.options) if self.options is not None else None
        return data


def mean_score(scores: Sequence[float]) -> float:
    """A node's score: the mean of its items' scores (0.0 when it has none).

    fsum is exact whatever the order, so a resumed run re-derives the very same float
    from the warehouse rows.
    """
    return math.fsum(scores) / len(scores) if scores else 0.0


def evidence_of(results: Sequence[ItemResult], pool: int):
    """A node's item results as the evidence its gate call reads."""
    from curriculum.stats.evidence import evidence_from

    return evidence_from([(r.probe_index, r.item, r.probe_kind, r.score) for r in results], pool)


def aggregate(results: Sequence[ItemResult]) -> float:
    return mean_score([r.score for r in results])
