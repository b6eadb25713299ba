"""Every policy by the name the YAML and the command line give it: a new policy is a module in this room and one
line here. All policies see the same signals (each node's probe score after each stage) and the graph; `random`,
`fixed` and `flat` are the baselines, `mix` and `skill-it` train a moving mixture (mix.py), the rest are the gated family
(gated.py).
"""

from __future__ import annotations

from collections.abc import Callable

from curriculum.policies.choosers import Exp3S, RandomOrder, first_in_order, largest_gap
from curriculum.policies.flat import FlatPolicy
from curriculum.policies.gated import GatedPolicy
from curriculum.policies.mix import MixPolicy
from curriculum.policies.runstate import Policy

POLICIES: dict[str, Callable[[int], Policy]] = {
    "gated": lambda seed: GatedPolicy("gated", first_in_order),
    "greedy": lambda seed: GatedPolicy("greedy", largest_gap),
    "bandit": lambda seed: GatedPolicy("bandit", Exp3S(seed)),
    "random": lambda seed: GatedPolicy("random", RandomOrder(seed)),
    "fixed": lambda seed: GatedPolicy("fixed", first_in_order, gates=False),
    "flat": lambda seed: FlatPolicy(),
    "mix": lambda seed: MixPolicy(),
    "skill-it": lambda seed: MixPolicy("skill-it", held_at_weight=True),
}


def make_policy(name: str, seed: int = 0) -> Policy:
    """The policy named in the YAML or on the command line (a new policy is one class and one line above)."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy '{name}' (expected one of {', '.join(POLICIES)})")
    return POLICIES[name](seed)
