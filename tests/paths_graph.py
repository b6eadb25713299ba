"""A small graph built so that the tiny model walks every decision path of the gated policy.

The tiny random model learns token patterns fast, so a choice probe whose right option
repeats the training answers' words moves from wrong to right after one stage (scored raw:
that lean is what this graph uses), and a later stage trained on the other option's words
pulls all four items back at once (forgetting that a paired test calls significant).
"""

from __future__ import annotations

from pathlib import Path

from helpers import write_jsonl

A, B = "zorblat glimmer", "quiet market"


def paths_graph(root: Path, epochs: int = 2) -> Path:
    def node_data(name: str, words: str, n: int = 8) -> None:
        write_jsonl(root / f"{name}.jsonl", [{"prompt": f"Tell me about {name} {i}.", "answer": f"{words} {words} {words}"}
                                             for i in range(n)])

    def choice(name: str, right: str, wrong: str) -> None:
        write_jsonl(root / f"{name}_mc.jsonl", [{"prompt": f"Pick for {name} {i}.", "choices": [wrong, right], "answer": 1}
                                               for i in range(4)])

    for name in ("seen", "hard", "remedial", "child"):
        node_data(name, "plain words here")
        write_jsonl(root / f"{name}_para.jsonl", [{"prompt": f"Rephrase {name} {i}.", "reference": "Some other words entirely."}
                                                  for i in range(2)])
    node_data("learn", A)
    choice("learn", A, B)
    node_data("flip", B, n=16)  # no probes: mastered once trained; pulls `learn` toward B
    graph = root / "paths.yaml"
    graph.write_text(f"""curriculum: paths
model: {{base: tiny-random}}
policy: gated
defaults:
  train: {{epochs: {epochs}, lr: 0.01, batch_size: 4, max_length: 64}}
  gate: {{min_score: 0.5, max_attempts: 2}}
nodes:
  seen:
    layer: definition
    data: seen.jsonl
    gate: {{min_score: 0.0}}
    probes: [{{kind: paraphrase, items: seen_para.jsonl}}]
  learn:
    layer: definition
    data: learn.jsonl
    probes: [{{kind: transfer, items: learn_mc.jsonl, scoring: raw}}]  # the lean towards trained words is the point here
  hard:
    layer: causality
    requires: [learn]
    data: hard.jsonl
    on_fail: remedial
    gate: {{min_score: 1.0, keep_progress: false, required: true}}  # a strict gate: the back-off path
    probes: [{{kind: paraphrase, items: hard_para.jsonl}}]
  remedial:
    layer: analogy
    entered_by: on_fail
    data: remedial.jsonl
    gate: {{min_score: 0.0}}
    probes: [{{kind: paraphrase, items: remedial_para.jsonl}}]
  child:
    layer: transfer
    requires: [hard]
    data: child.jsonl
    probes: [{{kind: paraphrase, items: child_para.jsonl}}]
  flip:
    layer: counterexample
    requires: [learn, seen]
    data: flip.jsonl
""")
    return graph
