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


def chain_graph(root: Path, gate: str = "{min_score: 0.5}", head: str = "", train: str | None = None) -> Path:
    """z -> y -> x, plus an independent w (the shapes the readiness rules are about): 4 training pairs and 8 two-way
    choice items a node. head: top-level YAML lines (e.g. a policy); train: the defaults' train settings."""
    for n in "zyxw":
        write_jsonl(root / f"{n}.jsonl", [{"prompt": f"{n} {i}?", "answer": f"{n} answer {i}."} for i in range(4)])
        write_jsonl(root / f"{n}_mc.jsonl", [{"prompt": f"{n} pick {i}", "choices": ["yes", "no"], "answer": 0}
                                             for i in range(8)])
    graph = root / "chain.yaml"
    head = head if "policy:" in head else "policy: gated\n" + head  # the tests' expectations are gated's
    graph.write_text("curriculum: chain\nmodel: {base: tiny-random}\n" + head + "defaults:\n"
                     + (f"  train: {train}\n" if train else "") + "  gate: " + gate + "\nnodes:\n" + "".join(
                         f"  {n}:\n    layer: definition\n    data: {n}.jsonl\n" + (f"    requires: [{r}]\n" if r else "")
                         + f"    probes: [{{kind: transfer, items: {n}_mc.jsonl}}]\n"
                         for n, r in (("z", None), ("y", "z"), ("x", "y"), ("w", None))), encoding="utf-8")
    return graph


def probe_kinds_graph(root: Path) -> Path:
    """A node `k` with an lm-eval items probe, an analogy and a generative analogy probe; a node `t` with two
    lm-eval task YAMLs kept beside the graph: ARC-style mapping choices (`sample: 2`), exact-match generation and a
    target's log-likelihood."""
    for node in ("k", "t"):
        write_jsonl(root / f"{node}.jsonl", [{"prompt": f"What is {node}-word {i}?", "answer": f"A hush {i}."} for i in range(4)])
    write_jsonl(root / "k_lmeval.jsonl", [
        {"prompt": f"Which weather fits word {i}?", "choices": ["fog", "a storm", "bright sun"], "answer": i % 3,
         "domain": "weather"} for i in range(3)
    ])
    write_jsonl(root / "k_analogy.jsonl", [
        {"situation": "Fog covers a forest and every sound is muffled.", "domain": "kitchen",
         "choices": ["A lid on a pot quiets the boiling.", "A kettle whistles loudly.", "Sun dries the dishes."], "answer": 0},
        {"situation": "A dying fire keeps a room drowsy and warm.", "domain": "music",
         "choices": ["A drum roll.", "A last low chord fades and lulls the hall.", "A shrill whistle."], "answer": 1},
    ])
    write_jsonl(root / "k_analogy_gen.jsonl", [
        {"situation": "Fog covers a forest and every sound is muffled.", "reference": "A blanket over a drum softens its beat.",
         "facts": [["blanket", "cover", "lid"], ["soft", "muffl", "quiet"]]},
    ])
    tasks = root / "tasks"
    tasks.mkdir(exist_ok=True)
    write_jsonl(tasks / "arc.jsonl", [
        {"question": "What hides the hills at dawn?", "choices": {"text": ["sand", "fog", "a drum"], "label": ["A", "B", "C"]},
         "answerKey": "B"},
        {"question": "What sounds like thunder?", "choices": {"text": ["a drum", "fog", "silk"], "label": ["A", "B", "C"]},
         "answerKey": "A"},
        {"question": "What whistles when it boils?", "choices": {"text": ["a stone", "a kettle", "fog"], "label": ["1", "2", "3"]},
         "answerKey": "2"},
    ])
    (tasks / "arc.yaml").write_text(
        "task: kinds_arc\ndataset_path: json\ndataset_kwargs:\n  data_files: {test: arc.jsonl}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: \"Question: {{question}}\\nAnswer:\"\n"
        "doc_to_choice: \"{{choices.text}}\"\ndoc_to_target: \"{{choices.label.index(answerKey)}}\"\n"
        "metric_list:\n  - {metric: acc, aggregation: mean, higher_is_better: true}\n", encoding="utf-8")
    write_jsonl(tasks / "gen.jsonl", [{"question": "Name the quiet.", "answer": "hush"}, {"question": "Name the cold.", "answer": "frost"}])
    (tasks / "gen.yaml").write_text(
        "task: kinds_gen\ndataset_path: json\ndataset_kwargs:\n  data_files: {test: gen.jsonl}\ntest_split: test\n"
        "output_type: generate_until\ndoc_to_text: \"{{question}}\"\ndoc_to_target: \"{{answer}}\"\n"
        "generation_kwargs: {until: [\"<|im_end|>\"], max_gen_toks: 4, do_sample: false}\n"
        "metric_list:\n  - {metric: exact_match, aggregation: mean, higher_is_better: true}\n", encoding="utf-8")
    (tasks / "ll.yaml").write_text(
        "task: kinds_ll\ndataset_path: json\ndataset_kwargs:\n  data_files: {test: gen.jsonl}\ntest_split: test\n"
        "output_type: loglikelihood\ndoc_to_text: \"{{question}}\"\ndoc_to_target: \" {{answer}}\"\n"
        "metric_list:\n  - {metric: acc, aggregation: mean, higher_is_better: true}\n", encoding="utf-8")
    graph = root / "graph.yaml"
    graph.write_text(
        "curriculum: kinds\nmodel: {base: tiny-random}\ndefaults:\n  gate: {min_score: 0.5}\nnodes:\n"
        "  k:\n    layer: analogy\n    data: k.jsonl\n    probes:\n"
        "      - {kind: lmeval, items: k_lmeval.jsonl, sample: 2}\n      - {kind: analogy, items: k_analogy.jsonl}\n"
        "      - {kind: analogy_generative, items: k_analogy_gen.jsonl}\n"
        "  t:\n    layer: transfer\n    data: t.jsonl\n    probes:\n"
        "      - {kind: lmeval, task: tasks/arc.yaml, sample: 2}\n      - {kind: lmeval, task: tasks/gen.yaml}\n"
        "      - {kind: lmeval, task: tasks/ll.yaml}\n",
        encoding="utf-8",
    )
    return graph
