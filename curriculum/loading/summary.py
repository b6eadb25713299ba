"""The one-screen summary printed for a valid curriculum."""

from __future__ import annotations

from collections import Counter

import networkx as nx

from curriculum.graph.spec import Layer
from curriculum.loading.validate import LoadedCurriculum


def _names(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "") if items else "none"


def exam_line(loaded: LoadedCurriculum) -> str:
    """Which nodes are judged on exam items no decision reads, and which are too small to split (with their counts):
    their verdicts are read on the items that also steered the run."""
    split = len(loaded.spec.nodes) - len(loaded.unsplit)
    cfg = loaded.spec.exam
    small = [f"{n} ({count})" for n, count in loaded.unsplit.items()]
    head = f"  exam:     {split} of {len(loaded.spec.nodes)} nodes split into check and exam items"
    if not small:
        return head
    return (f"{head}; unsplit, under {cfg.min_items} items a side at share {cfg.share:g} (their verdicts are marked "
            f"unsplit): {_names(small, 8)}")


def summary_lines(loaded: LoadedCurriculum) -> list[str]:
    """Nodes per layer, depth, roots, leaves and branches: enough to see the shape at a glance."""
    cur = loaded.spec
    dag = loaded.requires_dag
    layers = Counter(node.layer for node in cur.nodes.values())
    roots = [n for n, node in cur.nodes.items() if not node.requires and node.entered_by is None]
    leaves = [n for n in cur.nodes if dag.out_degree(n) == 0]
    branches = [f"{n} -> {node.on_fail}" for n, node in cur.nodes.items() if node.on_fail]
    depth = nx.dag_longest_path_length(dag) + 1 if len(dag) else 0
    per_file = {recs[0].file: len(recs) for recs in loaded.examples.values() if recs}
    items = sum(len(recs) for per_node in loaded.probe_items.values() for recs in per_node)
    exam = sum(len(recs) for per_node in loaded.exam_items.values() for recs in per_node)
    lines = [
        f"{loaded.path}: valid — curriculum '{cur.curriculum}', {len(cur.nodes)} nodes, "
        f"policy {cur.policy}, model {cur.model.base}",
        "  layers:   " + " · ".join(f"{layer.value} {layers[layer]}" for layer in Layer if layers[layer]),
        f"  depth:    {depth}",
        f"  roots:    {_names(roots)}",
        f"  leaves:   {_names(leaves)}",
        f"  branches: {_names(branches, 4)}",
        f"  data:     {len(per_file)} files, {sum(per_file.values())} training examples · probe items: {items} check, "
        f"{exam} exam",
        exam_line(loaded),
    ]
    if cur.lexicon:
        tokens = f", single tokens ({cur.model.new_tokens.init} init)" if cur.model.new_tokens else ""
        lines.append(f"  lexicon:  {len(cur.lexicon)} hyperwords{tokens}: {_names([e.word for e in cur.lexicon], 4)}")
    if cur.drift:
        lines.append(f"  drift:    the base model's answers to {cur.drift.prompts} neutral prompts, re-read after every stage")
    if cur.profiles:
        lines.append("  profiles: " + ", ".join(f"{name} ({len(ids)} named)" for name, ids in cur.profiles.items()))
    if loaded.warnings:
        lines.append(f"  warnings: {len(loaded.warnings)}")
        lines += [f"    {w}" for w in loaded.warnings]
    return lines
