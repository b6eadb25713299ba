"""The rooms of the code and what each may import (docs/architecture.md), read from the sources with `ast`: every
import, at the top of a module or inside a function, counts."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("curriculum", "flows", "probes", "warehouse")
# curriculum's rooms, lowest first: a room imports only rooms below it (training and policies stand side by side)
RANK = {"generators": 0, "graph": 0, "stats": 1, "models": 2, "loading": 3, "training": 4, "policies": 4, "runs": 5,
        "cli": 6}
EDGE_ONLY = ("prefect", "duckdb", "flows", "warehouse")  # reached from the domain only by its command line


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, as a dotted name (`from pkg import mod` counted as pkg.mod when that is one)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> nx.DiGraph:
    files = {_module(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        for target in _imports(path):
            if target in files and target != name:
                graph.add_edge(name, target)
            elif target.split(".")[0] in EDGE_ONLY or target.split(".")[0] not in PACKAGES:
                graph.add_node(target, external=True)
                graph.add_edge(name, target)
    return graph


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "curriculum" and len(parts) > 1 else None


def test_every_module_of_the_domain_sits_in_a_room() -> None:
    loose = [p.name for p in (ROOT / "curriculum").glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"curriculum/ holds modules outside its rooms: {loose}"
    rooms = {p.name for p in (ROOT / "curriculum").iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(RANK), f"rooms on disk {sorted(rooms)} differ from the rules {sorted(RANK)}"
    for room in rooms:
        doc = ast.get_docstring(ast.parse((ROOT / "curriculum" / room / "__init__.py").read_text()))
        assert doc and len(doc) > 80, f"curriculum/{room}/__init__.py must say what the room holds and may import"


def test_rooms_import_only_rooms_below_them() -> None:
    graph = _graph()
    wrong = []
    for a, b in graph.edges:
        ra, rb = _room(a), _room(b)
        if ra and rb and ra != rb and not RANK[rb] < RANK[ra]:
            wrong.append(f"{a} -> {b}")
    assert wrong == []


def test_the_domain_reaches_prefect_duckdb_flows_and_warehouse_only_from_its_command_line() -> None:
    graph = _graph()
    wrong = [f"{a} -> {b}" for a, b in graph.edges
             if _room(a) not in (None, "cli") and b.split(".")[0] in EDGE_ONLY]
    assert wrong == []


def test_the_packages_depend_one_way() -> None:
    """flows -> curriculum, probes, warehouse; probes -> curriculum; warehouse imports none of them; the domain
    imports none of them but from its command line, the edge that calls them all."""
    allowed = {"curriculum": {"curriculum"}, "probes": {"probes", "curriculum"}, "warehouse": {"warehouse"},
               "flows": set(PACKAGES)}
    graph = _graph()
    wrong = [f"{a} -> {b}" for a, b in graph.edges if b.split(".")[0] in PACKAGES and _room(a) != "cli"
             and b.split(".")[0] not in allowed[a.split(".")[0]]]
    assert wrong == []


def test_no_import_circle_between_modules() -> None:
    graph = _graph()
    ours = graph.subgraph(n for n in graph if not graph.nodes[n].get("external"))
    # a package's __init__ importing its own modules is how a package is assembled, not a circle
    edges = [(a, b) for a, b in ours.edges if not b.startswith(a + ".") and not a.startswith(b + ".")]
    circles = list(nx.simple_cycles(nx.DiGraph(edges)))
    assert circles == []
