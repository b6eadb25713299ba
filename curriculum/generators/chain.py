"""Family (a): a chain of dependent skills, in the style of Skill-It's LEGO task.

A prompt is a short program over made-up variables: the first is set to a compass direction, and each next one
is the one before turned by a made-up operation (by default one: a quarter turn clockwise; the `turns` size adds
a quarter turn anticlockwise and a half turn). The question is where the last variable points. Skill d resolves
chains of d operations, so it is built on skill d-1: to know the d-th variable one must know the (d-1)-th, and
node `step{d}` requires `step{d-1}`.

Why this shape: every item's answer is computed exactly, and there are as many distinct items as one likes
(variable names and ops are drawn afresh), so check and exam can hold hundreds of items from one distribution.
The operation words are made up, so the base model cannot resolve even one step before training; the four
directions are one token each, so a choice item costs one short forward pass per option.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from curriculum.generators.common import Generated, GeneratedNode, choice_item, made_up_words, pair

DIRECTIONS = ("north", "east", "south", "west")  # clockwise: a quarter turn clockwise adds 1
TURN_NAMES = {1: "a quarter turn clockwise", 2: "a half turn", 3: "a quarter turn anticlockwise"}
# the operations a chain uses, by the `turns` size: 3 all, 2 the two quarter turns, 1 the clockwise one alone.
# Only 1 learned in 60 steps on SmolLM2-135M: with 2 or 3 the model learned the answer's shortcut (a neighbour of
# the root; not the root) and not which operation a made-up word is (the guide's sizing table).
TURN_SETS = {1: (1,), 2: (1, 3), 3: (1, 2, 3)}
# defaults.train.lr of a generated chain: five times the product's 1e-3 (at 1e-3 no chain node moved in 60 steps)
LR = 0.005


@dataclass(frozen=True)
class ChainSizes:
    """How big a chain curriculum is. Defaults come from the measured runs in the guide's table."""

    depth: int = 3  # skills (nodes): step1 .. step{depth}, chains of 1 .. depth operations
    train: int = 480  # training pairs a node: each seen once in 60 steps of 8
    check: int = 24  # check items a node: read after every training round, so few
    exam: int = 200  # exam items a node: read at the start and at the end, never by a decision
    max_steps: int = 60  # every node's budget of optimizer steps (defaults.train.max_steps)
    turns: int = 1  # made-up operations: 1 (a quarter turn clockwise: learned), 2 or 3 (not learned)

    def __post_init__(self) -> None:
        if self.depth < 1 or self.train < 1 or self.check < 1 or self.exam < 1 or self.max_steps < 1:
            raise ValueError("chain sizes must be at least 1")
        if self.turns not in TURN_SETS:
            raise ValueError(f"chain turns must be one of {', '.join(map(str, TURN_SETS))}, not {self.turns}")


def resolve(root: str, turns: list[int]) -> str:
    """Where the last variable points: the root direction turned by every operation in order."""
    return DIRECTIONS[(DIRECTIONS.index(root) + sum(turns)) % len(DIRECTIONS)]


def _program(rng: random.Random, ops: dict[int, str], depth: int) -> tuple[str, str]:
    """One chain of `depth` operations: its prompt and its answer."""
    names = made_up_words(rng, depth + 1, syllables=(1, 1), taken=set(ops.values()))
    root = rng.choice(DIRECTIONS)
    turns = [rng.choice(list(ops)) for _ in range(depth)]
    lines = [f"{names[0]} = {root}."] + [f"{names[i + 1]} = {ops[t]} {names[i]}." for i, t in enumerate(turns)]
    return " ".join(lines) + f" Which way is {names[-1]}?", resolve(root, turns)


def generate(seed: int = 0, sizes: ChainSizes | None = None, command: str = "") -> Generated:
    """The chain curriculum for this seed and these sizes, deterministic to the byte."""
    sizes = sizes or ChainSizes()
    rng = random.Random(seed)
    used = TURN_SETS[sizes.turns]
    ops = dict(zip(used, made_up_words(rng, len(used), syllables=(2, 2))))
    seen: set[str] = set()  # every prompt of the curriculum, training and probes: no item twice, no leak
    nodes: list[GeneratedNode] = []

    def draw(n: int, depth: int) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        while len(got) < n:
            prompt, answer = _program(rng, ops, depth)
            if prompt.casefold() not in seen:
                seen.add(prompt.casefold())
                got.append((prompt, answer))
        return got

    for depth in range(1, sizes.depth + 1):
        train = [pair(p, a) for p, a in draw(sizes.train, depth)]
        check = [choice_item(rng, p, a, DIRECTIONS, 4, depth=depth) for p, a in draw(sizes.check, depth)]
        exam = [choice_item(rng, p, a, DIRECTIONS, 4, depth=depth) for p, a in draw(sizes.exam, depth)]
        nodes.append(GeneratedNode(
            node_id=f"step{depth}", layer="definition" if depth == 1 else "generalization",
            description=f"resolve a chain of {depth} operation{'s' if depth > 1 else ''}: where the last variable points",
            requires=[f"step{depth - 1}"] if depth > 1 else [], train=train, check=check, exam=exam))
    header = [
        "Generated: a chain of dependent skills (Skill-It's LEGO style). Do not edit by hand; regenerate with",
        f"  {command or f'curriculum generate chain OUT --seed {seed}'}",
        "Operations: " + ", ".join(f"{name} = {TURN_NAMES[turn]}" for turn, name in ops.items()) + ".",
        f"Per node: {sizes.train} training pairs, {sizes.check} check items, {sizes.exam} exam items (4 choices).",
    ]
    return Generated(name=f"chain-s{seed}", header=header, nodes=nodes,
                     train={"epochs": 1, "max_steps": sizes.max_steps, "lr": LR},
                     world={"ops": {name: turn for turn, name in ops.items()}})
