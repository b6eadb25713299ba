"""What every family of generated curricula shares: made-up names, choice items, and writing the files.

Why a module of its own: the families differ in what they teach, not in how a curriculum lands on disk. Every
generated curriculum is a folder holding `graph.yaml` and, per node, `train.jsonl`, `check.jsonl` and
`exam.jsonl`, written byte for byte the same for the same family, seed and sizes, so a benchmark can name a
curriculum by its command instead of shipping its files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRAPH_FILE = "graph.yaml"  # the curriculum's YAML inside the output folder; its JSONL paths are relative to it

# Letters of made-up words. No 'c', 'q', 'x', 'y', 'h' or 'w': spelling stays plain and English words rarer.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st", "sk")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "", "k", "l", "m", "n", "r", "s", "t", "sk", "nd", "rn", "ld")
# a few common words the syllables can spell; a made-up name must not be one of them
_REAL = frozenset("""
bad bed bid bin ban bun bus bat bet but dad den did dig dim din dog don dot dun fan fat fed fin fit for fun
fur gas get gin god got gum gun gut kid kin kit lab lad led let lid lip lit log lot mad man mat men met mid
mob mom mud mug nab nap net nod not nun nut pad pal pan pat peg pen pet pig pin pit pod pot pub pun pus rag
ram ran rat red rib rid rim rob rod rot rub rug rum run rut sad sat set sin sip sit sob son sub sum sun tab
tag tan tap ten tin tip ton top tub tug van vat vet zen zip band bend bind bold bond fund kind land lend mend
mind pond rend sand send tend told fold gold hold mold sold wild stem step stop stun skim skin skit sking
dram drum drug grim grin grit gram trim trip trot brim brat bran kris bara data diva kilo lava mama memo
menu moto papa pita puma soda sofa tuna toga vida zero lima kara rome mars dune lure rule tune mule dome
""".split())


def made_up_words(rng: random.Random, count: int, syllables: tuple[int, int] = (2, 2), taken: set[str] | None = None,
                  min_len: int = 3) -> list[str]:
    """`count` distinct lower-case made-up words of `syllables` syllables, none in `taken` (which grows).

    Why made up: the base model must not know the answer before training, so every gain is learning.
    """
    taken = taken if taken is not None else set()
    words: list[str] = []
    while len(words) < count:
        n = rng.randint(*syllables)
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if i == n - 1 else "")
                       for i in range(n))
        if len(word) < min_len or word in taken or word in _REAL:
            continue
        taken.add(word)
        words.append(word)
    return words


def choice_item(rng: random.Random, prompt: str, answer: str, options: Sequence[str], n_choices: int,
                must: Sequence[str] = (), **tags: Any) -> dict[str, Any]:
    """A ChoiceItem record: the answer among `n_choices - 1` other options (`must` among them), drawn by `rng`.

    The options are listed in the order of `options`, not shuffled per item: a calibrated choice probe scores
    every distinct option list once more after a content-free question, so a few recurring lists halve the cost
    of a sweep (with four options of four, one list for every item). The answer's position still varies with
    the answer, which is uniform over `options`, so no position is right more often than chance allows.
    """
    others = [o for o in options if o != answer and o not in must]
    chosen = {answer, *must, *rng.sample(others, n_choices - 1 - len(must))}
    choices = [o for o in options if o in chosen]
    return {"prompt": prompt, "choices": choices, "answer": choices.index(answer), **tags}


def pair(prompt: str, answer: str) -> dict[str, str]:
    """A training pair as the product reads it."""
    return {"prompt": prompt, "answer": answer}


@dataclass
class GeneratedNode:
    """One node: its YAML fields and the three files it owns."""

    node_id: str
    layer: str
    description: str
    requires: list[str]
    train: list[dict[str, Any]]
    check: list[dict[str, Any]]
    exam: list[dict[str, Any]]
    max_steps: int | None = None  # a node's own budget of optimizer steps, when it differs from the default

    def files(self) -> dict[str, list[dict[str, Any]]]:
        folder = self.node_id
        return {f"{folder}/train.jsonl": self.train, f"{folder}/check.jsonl": self.check,
                f"{folder}/exam.jsonl": self.exam}


@dataclass
class Generated:
    """A whole generated curriculum, before it is written."""

    name: str
    header: list[str]  # comment lines at the top of graph.yaml: what it is and the command that made it
    nodes: list[GeneratedNode]
    train: dict[str, Any] = field(default_factory=dict)  # defaults.train
    world: dict[str, Any] = field(default_factory=dict)  # the hidden truth the items were drawn from (for tests)
    sample: int = 16  # check items a regression sweep reads of a node that is not being trained: cheap checks

    def yaml_text(self) -> str:
        """graph.yaml, written by hand so its layout is stable and reads like the bundled graphs.

        Items are asked as the training pairs are written (`options: hidden`): listing the options under the
        question made a model that answered every check item right when asked as trained score 0.08 (the guide's
        pilot). Scored `raw`: the question is the trained one, so the model's own likelihood of each answer is
        the reading; a content-free prior of a one-word answer only adds noise (the base model: 0.26 raw,
        0.02 calibrated, chance 0.25)."""
        lines = [f"# {h}" if h else "#" for h in self.header]
        lines += [f"curriculum: {self.name}", "model:", "  base: smollm2-135m-instruct", "defaults:",
                  "  gate: {min_score: auto}"]
        if self.train:
            lines.append("  train: {" + ", ".join(f"{k}: {v}" for k, v in self.train.items()) + "}")
        lines += ["policy: gated", "nodes:"]
        for node in self.nodes:
            lines += [f"  {node.node_id}:", f"    layer: {node.layer}", f"    description: {json.dumps(node.description)}"]
            if node.requires:
                lines.append(f"    requires: [{', '.join(node.requires)}]")
            if node.max_steps is not None:
                lines.append(f"    train: {{max_steps: {node.max_steps}}}")
            lines += [f"    data: {node.node_id}/train.jsonl", "    probes:",
                      f"      - {{kind: transfer, items: {node.node_id}/check.jsonl, exam: {node.node_id}/exam.jsonl, "
                      f"sample: {self.sample}, options: hidden, scoring: raw}}", ""]
        return "\n".join(lines).rstrip("\n") + "\n"

    def files(self) -> dict[str, bytes]:
        """Every file of the curriculum by its path inside the output folder, as bytes."""
        out = {GRAPH_FILE: self.yaml_text().encode()}
        for node in self.nodes:
            for path, records in node.files().items():
                out[path] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        return out


class TargetExists(Exception):
    """The output folder is there and not empty, and --force was not given."""


def write(generated: Generated, out_dir: Path, force: bool = False) -> Path:
    """Write the curriculum into `out_dir` (created) and return its graph.yaml.

    A non-empty folder is refused unless `force`: a generated curriculum may sit beside runs that were scored on
    it, and silently changing its items would change what those runs mean.
    """
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise TargetExists(f"{out_dir} exists and is not empty; pass --force to overwrite it")
    for rel, data in generated.files().items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out_dir / GRAPH_FILE
