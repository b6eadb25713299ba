"""Seeded generators of synthetic curricula big enough to tell a curriculum from a plain fine-tune.

Two families, each a module with `generate(seed, sizes, command) -> Generated` and a sizes dataclass:
`chain` (dependent skills, Skill-It's LEGO style) and `layers` (facts, rules, transfer and two hops,
Physics of LMs 3.1 style). `common.write` puts one in a folder as graph.yaml plus JSONL the product runs
unchanged. Pure Python: no model, no flow, no warehouse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from curriculum.generators import chain, layers
from curriculum.generators.common import GRAPH_FILE, Generated, TargetExists, write

FAMILIES: dict[str, tuple[Callable[[int, Any, str], Generated], type]] = {
    "chain": (chain.generate, chain.ChainSizes), "layers": (layers.generate, layers.LayersSizes)}

__all__ = ["FAMILIES", "GRAPH_FILE", "Generated", "TargetExists", "generate", "write"]


def generate(family: str, seed: int = 0, command: str = "", **sizes: int) -> Generated:
    """One family's curriculum; `sizes` are that family's sizes fields (unset ones keep their defaults)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (expected one of {', '.join(FAMILIES)})")
    make, sizes_type = FAMILIES[family]
    known = {f.name for f in dataclasses.fields(sizes_type)}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise ValueError(f"{family} has no size {', '.join(unknown)} (its sizes: {', '.join(sorted(known))})")
    return make(seed, sizes_type(**sizes), command)
