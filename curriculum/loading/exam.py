"""Check items and exam items: which probe items steer a run and which judge it.

A run that decides on the items it is then scored on reports an optimistic score: its gates, retries, kept
rounds and stopping points were all chosen to look good on exactly those items. So every probe item sits on one
side. Check items are all that a run's decisions ever read; exam items are read only for the verdict (on the
end state, after the run's last decision), never by a gate, draw, retry, round, plateau, forgetting call, auto gate, bandit
reward, mix weight or stopping rule.

The side of an item is a function of its content alone (a seeded hash), not of its position, of the run's seed
or of its policy: every run of a comparison sits the same exam, and adding an item moves no other item. A probe
that names its own `exam:` file has that file as its exam. A node with too few items for both sides stays
unsplit: its items steer the run and judge it, and its verdict is marked so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from curriculum.loading.jsonl import Record
from curriculum.graph.spec import Curriculum


class Split(str, Enum):
    """Which side of the split a probe row is on (the warehouse's probe_results.split)."""

    CHECK = "check"  # read by the run's decisions
    EXAM = "exam"  # read only for the verdict
    UNSPLIT = "unsplit"  # a node too small to split, or a row written before the split existed

    def __str__(self) -> str:
        return self.value


HASH_SCALE = float(2**64)


def exam_side(value: Any, seed: int, share: float) -> bool:
    """Whether an item is an exam item: the first 8 bytes of sha256(seed, its content as canonical JSON), read as a
    number in [0, 1), fall under `share`. Same content, same side, in every run."""
    # what the item's file says (no defaults filled in): a field added to an item model later moves no item
    data = value.model_dump(exclude_unset=True) if hasattr(value, "model_dump") else value
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SCALE < share


@dataclass
class NodeSplit:
    """One node's items on each side, per probe (index-aligned with the node's probes)."""

    check: list[list[Record[Any]]]
    exam: list[list[Record[Any]]]
    split: bool  # False: too small (or share 0): every item is in `check`, and the verdict is unsplit

    @property
    def counts(self) -> tuple[int, int]:
        return sum(len(r) for r in self.check), sum(len(r) for r in self.exam)


@dataclass
class ExamPlan:
    """Every node's split, and the nodes left unsplit with their item counts (what `validate` reports)."""

    nodes: dict[str, NodeSplit] = field(default_factory=dict)

    def unsplit(self) -> dict[str, int]:
        return {n: sum(self.nodes[n].counts) for n, s in self.nodes.items() if not s.split}


def split_node(cur: Curriculum, node_id: str, items: list[list[Record[Any]]],
               exam_files: list[list[Record[Any]] | None]) -> NodeSplit:
    """A node's items split by its probes' own exam files, else by the curriculum's `exam:` hash."""
    cfg = cur.exam
    check: list[list[Record[Any]]] = []
    exam: list[list[Record[Any]]] = []
    own = False
    for records, own_exam in zip(items, exam_files):
        if own_exam is not None:
            own = True
            check.append(list(records))
            exam.append(list(own_exam))
            continue
        sides = [exam_side(r.value, cfg.seed, cfg.share) for r in records]
        check.append([r for r, is_exam in zip(records, sides) if not is_exam])
        exam.append([r for r, is_exam in zip(records, sides) if is_exam])
    n_check, n_exam = sum(len(r) for r in check), sum(len(r) for r in exam)
    if own and n_exam:
        return NodeSplit(check, exam, True)
    if n_exam == 0 or n_check < cfg.min_items or n_exam < cfg.min_items:
        return NodeSplit([list(r) for r in items], [[] for _ in items], False)
    return NodeSplit(check, exam, True)


def plan_exam(cur: Curriculum, items: dict[str, list[list[Record[Any]]]],
              exam_files: dict[str, list[list[Record[Any]] | None]]) -> ExamPlan:
    return ExamPlan({n: split_node(cur, n, items[n], exam_files.get(n) or [None] * len(items[n])) for n in items})
