"""Validation of a curriculum: the YAML, the graph it draws, and every data and probe file, into a
`LoadedCurriculum` ready for a run.

Every run calls `load_curriculum`; `curriculum validate` prints the same problems. All problems are collected
in one pass before reporting (checker.Checker holds them with the YAML's line map): the YAML and the graph
(graphchecks), then each file the graph names (filechecks). Nothing is ever written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx

from curriculum.graph import spec
from curriculum.loading.jsonl import Record
from curriculum.loading.exam import plan_exam
from curriculum.graph.spec import TrainExample
from curriculum.graph.problems import CurriculumError, Problem, decode_utf8, display_path
from curriculum.graph.yamlpos import load_located
from curriculum.loading.checker import Checker
from curriculum.loading.filechecks import check_base, check_files, check_lengths, lint, tokenizer_of
from curriculum.loading.graphchecks import build_graph, check_drift, check_shape, check_top, parse


@dataclass
class LoadedCurriculum:
    """A curriculum that passed validation, with its parsed data, ready for a run."""

    path: Path
    text: str
    sha256: str
    spec: spec.Curriculum
    graph: nx.DiGraph  # edge u->v: v requires u (kind='requires') or u's gate failure leads to v ('on_fail')
    examples: dict[str, Sequence[Record[TrainExample]]]  # a list, or NodeRows read where they lie
    probe_items: dict[str, list[list[Record[Any]]]]  # node id -> CHECK items of each of its probes: all a decision reads
    exam_items: dict[str, list[list[Record[Any]]]] = field(default_factory=dict)  # node id -> exam items, per probe
    unsplit: dict[str, int] = field(default_factory=dict)  # nodes too small to split -> their item count
    profile: str | None = None
    warnings: list[Problem] = field(default_factory=list)  # lint: sound, but the signals will be weak

    @property
    def requires_dag(self) -> nx.DiGraph:
        return nx.subgraph_view(self.graph, filter_edge=lambda u, v: self.graph[u][v]["kind"] == "requires")


def check_curriculum(path: str | Path) -> tuple[LoadedCurriculum | None, list[Problem]]:
    """Validate everything; return the loaded curriculum, or None and every problem found."""
    path = Path(path)
    ck = Checker(path, display_path(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, [Problem(ck.file, 1, 1, "file not found")]
    except OSError as exc:
        return None, [Problem(ck.file, 1, 1, f"cannot read: {exc.strerror or exc}")]
    text, problem = decode_utf8(raw, ck.file)
    if problem or text is None:
        return None, [problem] if problem else []
    ck.yml, yaml_problems = load_located(text, ck.file)
    ck.problems.extend(yaml_problems)
    if ck.yml is None:
        return None, ck.problems
    top, parsed, known = parse(ck)
    graph = build_graph(ck, parsed, known)
    check_shape(ck, graph, parsed)
    check_top(ck, top, known)
    check_drift(ck, top, parsed)
    resolved = check_base(ck, top) if top is not None else None
    if top is not None and top.model.accelerate_config and not (path.parent / top.model.accelerate_config).is_file():
        ck.at(("model", "accelerate_config"), f"model.accelerate_config: no such file '{top.model.accelerate_config}' "
              "(relative to the curriculum file)")
    if top is not None and top.model.new_tokens is not None and not top.lexicon:
        ck.at(("model", "new_tokens"), "new_tokens comes from the lexicon, but the curriculum declares no 'lexicon'")
    examples, items, exams = check_files(ck, parsed)
    if resolved is not None and top is not None and not ck.problems:  # tokenizing costs seconds: only when all else holds
        tokenizer = tokenizer_of(ck, top, resolved)
        if tokenizer is not None:
            check_lengths(ck, top.model_copy(update={"nodes": parsed}), tokenizer, examples)
    if ck.problems or top is None:
        return None, list(dict.fromkeys(ck.problems))
    curriculum = top.model_copy(update={"nodes": parsed})
    sha = hashlib.sha256(raw).hexdigest()
    split = plan_exam(curriculum, items, exams)
    check = {n: s.check for n, s in split.nodes.items()}
    warnings = ck.warnings + lint(ck, curriculum, check)  # decisions read check items: their power is what counts
    return LoadedCurriculum(path, text, sha, curriculum, graph, examples, check, warnings=warnings,
                            exam_items={n: s.exam for n, s in split.nodes.items()}, unsplit=split.unsplit()), []


def profile_closure(graph: nx.DiGraph, named: list[str]) -> set[str]:
    """The named nodes, everything they require, and the on_fail branches of all of those."""
    keep: set[str] = set()
    frontier = list(named)
    while frontier:
        node_id = frontier.pop()
        if node_id in keep:
            continue
        keep.add(node_id)
        frontier += list(graph.predecessors(node_id))  # requires, and nodes whose on_fail lands here
        frontier += [v for v in graph.successors(node_id) if graph[node_id][v]["kind"] == "on_fail"]
    return keep


def select_profile(loaded: LoadedCurriculum, name: str) -> LoadedCurriculum:
    """The profile's nodes, everything they require, and the on_fail branches of all of those."""
    profiles = loaded.spec.profiles
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none declared"
        raise CurriculumError([Problem(display_path(loaded.path), 1, 1, f"unknown profile '{name}' (profiles: {known})")])
    keep = profile_closure(loaded.graph, profiles[name])
    order = [n for n in loaded.spec.nodes if n in keep]  # the YAML's order, which the policies follow
    nodes = {n: loaded.spec.nodes[n] for n in order}
    return replace(loaded, spec=loaded.spec.model_copy(update={"nodes": nodes}),
                   graph=loaded.graph.subgraph(order).copy(), profile=name,
                   examples={n: loaded.examples[n] for n in order},
                   probe_items={n: loaded.probe_items[n] for n in order},
                   exam_items={n: loaded.exam_items.get(n, []) for n in order},
                   unsplit={n: c for n, c in loaded.unsplit.items() if n in keep})


def load_curriculum(path: str | Path, profile: str | None = None) -> LoadedCurriculum:
    """The library entry point every run uses: a sound curriculum (or one profile of it) or a CurriculumError."""
    loaded, problems = check_curriculum(path)
    if loaded is None:
        raise CurriculumError(problems)
    return select_profile(loaded, profile) if profile else loaded
