"""The YAML and the graph it draws: the top-level keys, each node parsed, the edges (`requires`, `on_fail`) and what
they must not be (a cycle, an unknown node, a remedial branch nobody reaches), the drift settings.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Any

import networkx as nx
from pydantic import ValidationError

from curriculum.graph import spec
from curriculum.loading.checker import Checker, node_id_problem


def parse(ck: Checker) -> tuple[spec.Curriculum | None, dict[str, spec.Node], dict[str, Any]]:
    raw = ck.yml.data if ck.yml else None
    if raw is None:
        ck.at((), "empty file: expected a curriculum mapping with 'curriculum' and 'nodes'")
        return None, {}, {}
    if not isinstance(raw, dict):
        ck.at((), f"top level must be a mapping of curriculum keys, found a {type(raw).__name__}")
        return None, {}, {}
    raw_nodes = raw.get("nodes")
    top: spec.Curriculum | None = None
    try:
        top = spec.Curriculum.model_validate({**raw, "nodes": {"_": {"layer": "definition", "data": "_"}}})
    except ValidationError as exc:
        ck.pydantic(exc, ())
    if "nodes" not in raw:
        ck.at((), "missing required field 'nodes'")
        return None, {}, {}
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        ck.at(("nodes",), "'nodes' must be a non-empty mapping of node id -> node")
        return None, {}, {}
    parsed: dict[str, spec.Node] = {}
    for node_id, body in raw_nodes.items():
        if (problem := node_id_problem(node_id)) is not None:
            ck.at(("nodes", node_id), problem, key=True)
            continue
        try:
            parsed[node_id] = spec.Node.model_validate(body)
        except ValidationError as exc:
            ck.pydantic(exc, ("nodes", node_id))
    return top, parsed, raw_nodes


def build_graph(ck: Checker, parsed: dict[str, spec.Node], known: dict[str, Any]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for node_id, node in parsed.items():
        graph.nodes[node_id]["layer"] = node.layer.value
        refs: list[tuple[tuple[Any, ...], str, str]] = [
            (("nodes", node_id, "requires", i), r, "requires") for i, r in enumerate(node.requires)]
        if node.on_fail is not None:
            refs.append((("nodes", node_id, "on_fail"), node.on_fail, "on_fail"))
        for loc, ref, kind in refs:
            if ref not in known:
                hint = get_close_matches(str(ref), [str(k) for k in known], n=1)
                ck.at(loc, f"{kind} names unknown node '{ref}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            elif kind == "requires":
                graph.add_edge(ref, node_id, kind=kind, loc=loc)
            else:
                graph.add_edge(node_id, ref, kind=kind, loc=loc)
    return graph


def check_shape(ck: Checker, graph: nx.DiGraph, parsed: dict[str, spec.Node]) -> None:
    cyclic = graph.copy()
    found = 0
    while found < 20:
        try:
            cycle = nx.find_cycle(cyclic)
        except nx.NetworkXNoCycle:
            break
        found += 1
        names = [u for u, _ in cycle] + [cycle[0][0]]
        ck.at(graph.edges[cycle[-1][:2]]["loc"], "cycle: " + " -> ".join(names))
        cyclic.remove_edge(*cycle[-1][:2])
    if found:
        return  # reachability is meaningless until the cycles are gone
    check_dead_branches(ck, parsed)
    roots = [n for n, node in parsed.items() if not node.requires and node.entered_by is None]
    unparsed = set(graph) - set(parsed)  # already reported; assume the best of them here
    if parsed and not roots and not unparsed:
        ck.at(("nodes",), "no root node: every node has 'requires' or 'entered_by'")
        return
    targets = {node.on_fail for node in parsed.values() if node.on_fail}
    reachable = set(roots) | unparsed
    for node_id in nx.topological_sort(graph):
        if node_id in reachable or node_id not in parsed:
            continue
        node = parsed[node_id]
        preds = list(graph.predecessors(node_id))
        via_requires = bool(node.requires) and all(r in reachable for r in node.requires)
        via_on_fail = any(graph[p][node_id]["kind"] == "on_fail" and p in reachable for p in preds)
        if via_requires or via_on_fail:
            reachable.add(node_id)
    for node_id, node in parsed.items():
        if node_id in reachable:
            continue
        if node.entered_by == "on_fail" and node_id not in targets:
            ck.at(("nodes", node_id, "entered_by"), f"node '{node_id}' is entered by on_fail but no node's on_fail names it")
        elif all(r in parsed for r in node.requires):
            ck.at(("nodes", node_id), f"node '{node_id}' is unreachable from any root", key=True)


def check_dead_branches(ck: Checker, parsed: dict[str, spec.Node]) -> None:
    """A remedial node that requires, directly or through others, the node whose failed gate sends the run
    to it can never run: that node is not mastered once its gate has failed."""
    requires = nx.DiGraph()
    requires.add_nodes_from(parsed)
    requires.add_edges_from((r, n) for n, node in parsed.items() for r in node.requires if r in parsed)
    for source, node in parsed.items():
        target = node.on_fail
        if target not in parsed:
            continue
        for i, req in enumerate(parsed[target].requires):
            if req not in parsed or not nx.has_path(requires, source, req):
                continue
            chain = nx.shortest_path(requires, source, req)
            via = f", which needs '{source}' ({' -> '.join(reversed(chain))})" if len(chain) > 1 else ""
            ck.at(("nodes", target, "requires", i),
                  f"'{target}' can never run: it requires '{req}'{via}, but the run enters it when '{source}' "
                  f"fails its gate (on_fail), so '{source}' is never mastered first")
            break


def check_top(ck: Checker, top: spec.Curriculum | None, known: dict[str, Any]) -> None:
    """Lexicon words are unique; profiles name existing nodes."""
    if top is None:
        return
    first_line: dict[str, int] = {}
    for i, entry in enumerate(top.lexicon):
        loc = ("lexicon", i, "word")
        if entry.word in first_line:
            ck.at(loc, f"duplicate hyperword '{entry.word}' (first declared at line {first_line[entry.word]})")
        else:
            first_line[entry.word] = ck.yml.where(loc)[0] if ck.yml else 1
    for name, node_ids in top.profiles.items():
        if not node_ids:
            ck.at(("profiles", name), f"profile '{name}' names no nodes")
        for i, node_id in enumerate(node_ids):
            if node_id not in known:
                hint = get_close_matches(str(node_id), [str(k) for k in known], n=1)
                ck.at(("profiles", name, i), f"profile '{name}' names unknown node '{node_id}'"
                      + (f" (did you mean '{hint[0]}'?)" if hint else ""))


def check_drift(ck: Checker, top: spec.Curriculum | None, parsed: dict[str, spec.Node]) -> None:
    """A drift gate without drift measured would never fire: say so rather than ignore it."""
    if top is None or top.drift is not None:
        return
    gates: list[tuple[tuple[Any, ...], spec.GateConfig]] = [(("defaults", "gate", "max_drift"), top.defaults.gate)]
    gates += [(("nodes", n, "gate", "max_drift"), node.gate) for n, node in parsed.items() if node.gate is not None]
    for loc, gate in gates:
        if gate.max_drift is not None:
            ck.at(loc, "max_drift needs drift measured: add a top-level `drift: {prompts: 32}`")
