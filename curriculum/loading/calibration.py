"""What the data says a gate should be: the levels a node's score is read against.

A gate means something only relative to what needs no learning (chance, always giving the
most frequent answer, the base model) and to what the data itself reaches (its own training
answers scored as if they were the model's). The suggested gate sits halfway between the best
level that needs no learning and the top: a model must close half the remaining gap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curriculum.loading.jsonl import Record

CEILING = 0.95  # a gate above this cannot be told apart from a perfect score on a dozen items


@dataclass(frozen=True)
class Levels:
    """One node's reference levels (None where a level does not apply to its probes)."""

    kind: str  # choice | paraphrase
    items: int
    base: float | None = None  # the base model's score at baseline
    chance: float | None = None  # choice: expected score of a uniform guess
    bias: float | None = None  # choice: score of always answering the most frequent answer text
    recite: float | None = None  # paraphrase: the nearest training answer's meaning score, no copy rule

    @property
    def floor(self) -> float:
        """The best score a model reaches without learning the node."""
        return max(v for v in (self.base, self.chance, self.bias, 0.0) if v is not None)

    @property
    def top(self) -> float:
        return self.recite if self.kind == "paraphrase" and self.recite is not None else 1.0

    def suggested_gate(self) -> float:
        """Halfway from the floor to the top (the data's own level for paraphrase, 1 for choice)."""
        top = max(self.top, self.floor)
        return round(min(CEILING, self.floor + (top - self.floor) / 2), 3)


def choice_levels(records: Sequence[Record[Any]]) -> tuple[float, float]:
    """(chance, answer bias) of multiple-choice items."""
    chance = sum(1 / len(r.value.choices) for r in records) / len(records)
    answers = Counter(r.value.choices[r.value.answer].casefold() for r in records)
    return chance, answers.most_common(1)[0][1] / len(records)
