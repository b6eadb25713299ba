"""Small graphs written on the fly for tests: real files, the tiny model."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def tiny_graph(root: Path, extra_yaml: str = "") -> Path:
    """Two nodes with a paraphrase and a transfer probe each, on the tiny random model."""
    for node in ("a", "b"):
        write_jsonl(root / f"{node}.jsonl", [
            {"prompt": f"What is {node}-word {i}?", "answer": f"The {node}-word {i} means a quiet lake at dawn."}
            for i in range(6)
        ])
        write_jsonl(root / f"{node}_para.jsonl", [
            {"prompt": f"Say {node}-word {i} differently.", "reference": f"A still lake early in the morning ({node}).",
             "context": "calm"} for i in range(3)
        ])
        write_jsonl(root / f"{node}_choice.jsonl", [
            {"prompt": f"Which fits {node}-word {i}?", "choices": ["a still lake at dawn", "a loud market", "a hot desert"],
             "answer": 0} for i in range(2)
        ])
    graph = root / "graph.yaml"
    graph.write_text(
        "curriculum: tiny\nmodel: {base: tiny-random}\n"
        "defaults:\n  train: {epochs: 2, lr: 0.005, batch_size: 4, max_length: 96}\n  gate: {min_score: 0.5, max_attempts: 2}\n"
        + extra_yaml +
        "nodes:\n"
        "  a:\n    layer: definition\n    data: a.jsonl\n    probes:\n"
        "      - {kind: paraphrase, items: a_para.jsonl, sample: 1}\n      - {kind: transfer, items: a_choice.jsonl, sample: 1}\n"
        "  b:\n    layer: causality\n    requires: [a]\n    data: b.jsonl\n    probes:\n"
        "      - {kind: paraphrase, items: b_para.jsonl}\n      - {kind: transfer, items: b_choice.jsonl}\n",
        encoding="utf-8",
    )
    return graph
