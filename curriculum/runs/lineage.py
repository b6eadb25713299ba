"""What changed between the graph a run was made from and an edited one, and what `--from` does with each node.

Pure: the parent run's snapshot comes in as data (its YAML text, file hashes, end statuses), so
`curriculum diff` and `curriculum run --from` read the same answer. A node keeps its status only when
its definition (as the run would use it: defaults laid over), its data and its probe files are unchanged
and nothing it requires is scheduled again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import ValidationError

from curriculum.graph import spec
from curriculum.loading.taskfiles import task_reads
from curriculum.loading.validate import LoadedCurriculum

COSMETIC = ("layer", "facet", "description")  # fields no stage or probe reads: reported, never retrain a node
KEEP_STATUSES = ("mastered", "trained", "forgotten", "below-gate", "failed", "skipped", "dormant")  # end states a kept node carries
BLOCKED_BY = ("failed", "skipped")  # a scheduled node requiring one of these can never unlock


@dataclass(frozen=True)
class Change:
    field: str  # dotted: gate.min_score, train.lr, requires, probes[0], file data, file probes[1]
    old: Any
    new: Any


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    action: str  # keep (its parent-run status stands) | schedule (fresh, trained as the policy decides) | skip | drop
    reason: str
    status: str | None  # the parent run's end status; None for a node the parent did not walk


@dataclass
class Snapshot:
    """What a run recorded of the graph it walked and where it ended."""

    run_id: str
    yaml_text: str
    run_status: str
    policy: str
    base_model: str
    nodes: list[str] | None  # a profile run's walked nodes; None: every node of its YAML
    files: dict[str, dict[str, str | None]] | None  # node -> file key -> sha256; None: the run recorded none
    status: dict[str, str]  # node -> the policy's last recorded status


@dataclass
class GraphDiff:
    parent: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[Change]] = field(default_factory=dict)  # node -> every change (cosmetic ones too)
    files: dict[str, list[Change]] = field(default_factory=dict)  # node -> data / probe files whose bytes changed
    gates: dict[str, list[Change]] = field(default_factory=dict)  # node -> changes of its effective gate
    top: list[Change] = field(default_factory=list)  # curriculum-level: model, lexicon, policy, defaults
    blockers: list[str] = field(default_factory=list)  # why `--from` cannot continue this run at all
    plan: dict[str, NodePlan] = field(default_factory=dict)  # the edited graph's run order, then dropped nodes
    files_known: bool = True

    def actions(self) -> dict[str, str]:
        return {n: p.action for n, p in self.plan.items()}

    def nodes(self, action: str) -> list[str]:
        return [n for n, p in self.plan.items() if p.action == action]

    def to_json(self) -> dict[str, Any]:
        changes = lambda d: {n: [asdict(c) for c in cs] for n, cs in d.items()}  # noqa: E731
        return {"parent_run": self.parent, "added": self.added, "removed": self.removed,
                "changed": changes(self.changed), "files_changed": changes(self.files), "gates_changed": changes(self.gates),
                "curriculum_changed": [asdict(c) for c in self.top], "file_hashes_recorded": self.files_known,
                "blockers": self.blockers, "plan": [asdict(p) for p in self.plan.values()]}


def content(path: Path) -> bytes:
    """A file's bytes; for a folder (a dataset saved by `datasets`), the sha256 and name of each file in it,
    so an edit anywhere inside is an edit of the node's data."""
    if not path.is_dir():
        return path.read_bytes()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(path).as_posix()}\n"
                   for p in files).encode()


def _sha(path) -> str | None:
    try:
        return hashlib.sha256(content(path)).hexdigest()
    except OSError:
        return None


def file_keys(node: spec.Node) -> dict[str, str]:
    """file key -> path as the YAML writes it: the node's data and each probe's items file (or task YAML) and its
    exam file: an edited exam is another exam, so a comparison names other runs and a resume notices."""
    keys = {"data": node.source.path} if node.source.path is not None else {}  # a hub dataset is no file
    keys.update({f"probes[{i}]": path for i, p in enumerate(node.probes) if (path := p.items or p.task) is not None
                 and (p.items is not None or path.endswith((".yaml", ".yml")))})
    keys.update({f"probes[{i}].exam": p.exam for i, p in enumerate(node.probes) if p.exam is not None})
    return keys


def node_files(node: spec.Node, root: Path) -> dict[str, str]:
    """file_keys, and what each task YAML there reads besides itself (`probes[i] include[j]`, `probes[i]
    data_files[j]`, read from the curriculum's folder `root`): an edit there is an edit of the probe."""
    keys = file_keys(node)
    for i, p in enumerate(node.probes):
        if p.items is None and p.task is not None and f"probes[{i}]" in keys:  # a task YAML kept beside the curriculum
            keys.update({f"probes[{i}] {kind}[{j}]": dep for kind, paths in task_reads(root, p.task).items()
                         for j, dep in enumerate(paths)})
    return keys


def file_rows(loaded: LoadedCurriculum, hashes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every data and probe file of the walked nodes with the sha256 of its bytes: the run's file snapshot.
    hashes: path -> sha256 already read (curriculum.runs.inputs.input_files), so no file is read twice."""
    root = loaded.path.parent
    sha = hashes.get if hashes is not None else (lambda rel: _sha(root / rel))
    return [{"node_id": n, "file_key": key, "path": rel, "sha256": sha(rel)}
            for n, node in loaded.spec.nodes.items() for key, rel in node_files(node, root).items()]


def _node_fields(cur: spec.Curriculum, n: str) -> dict[str, Any]:
    """A node as the run uses it: its own fields, and its train and gate settings with the defaults laid over."""
    node = cur.nodes[n]
    out: dict[str, Any] = {"layer": node.layer.value, "facet": node.facet, "description": node.description,
                           "data": node.data if isinstance(node.data, str) else node.data.model_dump(exclude_defaults=True),
                           "requires": sorted(node.requires), "on_fail": node.on_fail,
                           "entered_by": node.entered_by}
    out.update({f"train.{k}": v for k, v in cur.train_config(n).model_dump().items()})
    out.update({f"gate.{k}": v for k, v in cur.gate_config(n).model_dump().items()})
    out.update({f"probes[{i}]": p.model_dump(exclude_defaults=True) for i, p in enumerate(node.probes)})
    return out


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return [Change(k, old.get(k), new.get(k)) for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(f"{prefix}.{key}" if prefix else key, sub).items()}
    return {prefix: value}


def parse_snapshot(text: str, run_id: str) -> spec.Curriculum:
    """The parent run's curriculum from its recorded YAML (its files are not needed, nor read)."""
    try:
        return spec.Curriculum.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ValueError(f"run '{run_id}': its recorded YAML no longer reads as a curriculum: "
                         f"{str(exc).splitlines()[0]}") from None


def run_order(cur: spec.Curriculum) -> list[str]:
    """The nodes in the order a run walks them (RunState's): requirements first, then YAML order."""
    g = nx.DiGraph()
    g.add_nodes_from(cur.nodes)
    g.add_edges_from((r, n) for n, node in cur.nodes.items() for r in node.requires if r in cur.nodes)
    return list(nx.lexicographical_topological_sort(g, key=list(cur.nodes).index))


def diff_graphs(parent: Snapshot, loaded: LoadedCurriculum) -> GraphDiff:
    """Compare the parent run's graph with the edited one, and plan each node for `--from`."""
    old = parse_snapshot(parent.yaml_text, parent.run_id)
    new = loaded.spec
    walked = [n for n in old.nodes if parent.nodes is None or n in parent.nodes]
    out = GraphDiff(parent.run_id, files_known=parent.files is not None)
    out.added = [n for n in new.nodes if n not in walked]
    out.removed = [n for n in walked if n not in new.nodes]

    top = {"model", "policy", "defaults", "curriculum", "exam"}  # another exam split: other check items decide
    old_top = _flat("", old.model_dump(include=top))
    new_top = _flat("", new.model_dump(include=top))
    out.top = _changes(old_top, new_top)
    old_words = [e.model_dump() for e in old.lexicon]
    new_words = [e.model_dump() for e in new.lexicon]
    if old_words != new_words:
        out.top.append(Change("lexicon", [e["word"] for e in old_words], [e["word"] for e in new_words]))
    for c in out.top:
        if c.field.startswith("model."):
            out.blockers.append(f"{c.field} changed ({c.old!r} -> {c.new!r}): the parent's adapter belongs to "
                                "another model; start a fresh run")
    if (old.model.new_tokens or new.model.new_tokens) and old_words != new_words:
        out.blockers.append("the lexicon changed and its hyperwords are single tokens: the parent's adapter has "
                            "other embedding rows; start a fresh run")
    if parent.run_status != "completed":
        out.blockers.append(f"run '{parent.run_id}' is {parent.run_status}: --from continues a finished run "
                            f"(finish it first with --resume {parent.run_id})")

    root = loaded.path.parent
    for n in new.nodes:
        if n not in walked:
            continue
        changes = _changes(_node_fields(old, n), _node_fields(new, n))
        gate = [c for c in changes if c.field.startswith("gate.")]
        if gate:
            out.gates[n] = gate
        if parent.files is not None:
            before, paths = parent.files.get(n, {}), file_keys(old.nodes[n])  # (a task YAML's reads: by hash alone)
            files = [Change(f"file {key}", before[key], sha) for key, rel in node_files(new.nodes[n], root).items()
                     if key in before and paths.get(key, rel) == rel and before[key] != (sha := _sha(root / rel))]
            if files:
                out.files[n] = files
                changes += files
        if changes:
            out.changed[n] = changes

    scheduled: set[str] = set()
    for n in run_order(new):
        node, was = new.nodes[n], parent.status.get(n)
        material = [c.field for c in out.changed.get(n, []) if c.field not in COSMETIC]
        needs = [r for r in node.requires if r in scheduled]
        blocked = [r for r in node.requires if r in out.plan and (out.plan[r].action == "skip" or
                   out.plan[r].action == "keep" and out.plan[r].status in BLOCKED_BY)]
        if n in out.added:
            plan = NodePlan(n, "schedule", "new" if n not in old.nodes else f"not walked in run '{parent.run_id}'", None)
        elif material:
            plan = NodePlan(n, "schedule", "changed: " + ", ".join(material), was)
        elif needs:
            plan = NodePlan(n, "schedule", f"requires {', '.join(repr(r) for r in needs)}, scheduled", was)
        elif was in KEEP_STATUSES:
            cosmetic = [c.field for c in out.changed.get(n, [])]
            what = f"only {', '.join(cosmetic)} edited" if cosmetic else "unchanged"
            plan = NodePlan(n, "keep", f"{what}; {was} in run '{parent.run_id}'", was)
        else:
            plan = NodePlan(n, "schedule", f"unchanged, not finished in run '{parent.run_id}' ({was or 'no status'})", was)
        if plan.action == "schedule" and blocked:
            why = "skipped" if out.plan[blocked[0]].action == "skip" else f"{out.plan[blocked[0]].status} in run '{parent.run_id}'"
            plan = NodePlan(n, "skip", f"{plan.reason}; but requires {', '.join(repr(r) for r in blocked)}, {why}", was)
        if plan.action == "schedule":
            scheduled.add(n)
        out.plan[n] = plan
    for n in out.removed:
        out.plan[n] = NodePlan(n, "drop", "removed from the graph" if loaded.profile is None
                               else f"not in the graph or profile '{loaded.profile}'", parent.status.get(n))
    return out
