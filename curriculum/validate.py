"""Validation of a curriculum: the YAML, the graph it draws, and every data and probe file.

Every run calls `load_curriculum`; `curriculum validate` prints the same problems. All
problems are collected before reporting, and nothing is ever written.

Why one long file: every check feeds one list of file:line:col problems in one pass (YAML, graph,
then each file with the line map of the YAML that named it); split, the passes would each re-read
the YAML and the line maps, and a problem could be reported twice or not at all.
"""

from __future__ import annotations

import copy
import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import networkx as nx
from pydantic import BaseModel, ValidationError

from curriculum import spec
from curriculum.bases import TOKENIZER_FILES, ModelError, Resolved, resolve_base, tokenizer_for_checks
from curriculum.datasources import BATCH, read_items, read_source
from curriculum.jsonl import Record, read_records
from curriculum.exam import plan_exam
from curriculum.spec import TrainExample
from curriculum.problems import CurriculumError, Problem, decode_utf8, describe_error, display_path
from curriculum.taskcheck import installed_tasks, task_file_problems, unknown_task_message
from curriculum.yamlpos import LocatedYaml, load_located

ID_RULE = "a node id is letters of any script, digits, '.', '_' or '-', starting with a letter or digit"
_ALL_KEYS = sorted(
    {
        name
        for model in (spec.Curriculum, spec.ModelConfig, spec.LoraConfig, spec.Defaults, spec.TrainConfig,
                      spec.GateConfig, spec.Node, spec.ProbeSpec, spec.NewTokens, spec.LexiconEntry, spec.DriftConfig,
                      spec.ExamConfig)
        for name in model.model_fields
    } | {"from"}
)


def node_id_problem(node_id: object) -> str | None:
    """Why a YAML key cannot be a node id, or None: Unicode letters (with their combining marks) and
    decimal digits of any script, plus '.', '_' and '-'; composed (NFC) so one id has one spelling."""
    if not isinstance(node_id, str) or not node_id:
        return f"bad node id {node_id!r}: {ID_RULE}"
    kinds = [unicodedata.category(ch) for ch in node_id]
    if not (kinds[0][0] == "L" or kinds[0] == "Nd") or not all(
            ch in "._-" or kind[0] in "LM" or kind == "Nd" for ch, kind in zip(node_id, kinds)):
        return f"bad node id {node_id!r}: {ID_RULE}"
    if unicodedata.normalize("NFC", node_id) != node_id:
        marks = [f"U+{ord(ch):04X}" for ch, kind in zip(node_id, kinds) if kind[0] == "M"]
        detail = f"{marks[0]} is a separate combining mark; " if marks else ""
        return f"bad node id {node_id!r}: {detail}write the id composed (Unicode NFC), so it has one spelling"
    return None


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


@dataclass
class _Checker:
    path: Path
    file: str
    yml: LocatedYaml | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    _files: dict[tuple[Any, ...], tuple[Sequence[Record[Any]], bool]] = field(default_factory=dict)

    def at(self, loc: tuple[Any, ...], message: str, *, key: bool = False) -> None:
        line, col = self.yml.where(loc, key=key) if self.yml else (1, 1)
        self.problems.append(Problem(self.file, line, col, message))

    def pydantic(self, exc: ValidationError, prefix: tuple[Any, ...]) -> None:
        for err in exc.errors():
            loc = prefix + tuple(err["loc"])
            kind = err["type"]
            if kind == "missing":
                self.at(loc[:-1], describe_error(err), key=True)
            else:
                self.at(loc, describe_error(err, _ALL_KEYS), key=kind == "extra_forbidden")

    def records(self, rel: str, model: type[BaseModel], loc: tuple[Any, ...],
                fields: dict[str, str] | None = None) -> list[Record[Any]] | None:
        """A data file's records, read once per file; None when the file is unusable. A file that is not JSONL, or
        whose columns `fields` renames, is read by `datasets` (curriculum.datasources.read_items)."""
        try:
            target = (self.path.parent / rel).resolve()
            is_file = target.is_file()
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
            self.at(loc, f"file '{rel}' cannot be opened: {getattr(exc, 'strerror', None) or exc}")
            return None
        key = (target, model) if not fields else (target, model, tuple(sorted(fields.items())))
        cached = self._files.get(key)
        if cached is None:
            if not is_file and not (target.is_dir() and fields is not None):
                self.at(loc, f"file '{rel}' not found (looked in {display_path(target.parent)})")
                self._files[key] = ([], False)
                return None
            if target.suffix == ".jsonl" and not fields:
                records, problems = read_records(target, model, display_path(target))
            else:
                records, problems = read_items(target, model, display_path(target), fields or {})
            self.problems.extend(problems)
            cached = self._files[key] = (records, not problems)
        return cast(list[Record[Any]], cached[0]) if cached[1] else None  # item files are read whole: a list


    def training(self, node: spec.Node, loc: tuple[Any, ...]) -> Sequence[Record[Any]] | None:
        """A node's training examples in any format `datasets` reads, read once per source; None when unusable."""
        source = node.source
        shown = source.hub or ""
        if source.path is not None:
            where = loc if isinstance(node.data, str) else loc + ("path",)
            try:
                target = (self.path.parent / source.path).resolve()
                exists = target.exists()
            except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
                self.at(where, f"file '{source.path}' cannot be opened: {getattr(exc, 'strerror', None) or exc}")
                return None
            if not exists:
                self.at(where, f"file '{source.path}' not found (looked in {display_path(target.parent)})")
                return None
            shown = display_path(target)
        key = (source.model_dump_json(), spec.TrainExample)
        if key not in self._files:
            records, problems = read_source(self.path.parent, source, shown)
            self.problems.extend(problems)
            self._files[key] = (records, not problems)
        records, ok = self._files[key]
        return records if ok else None


def _normal(text: str) -> str:
    """Casefolded, single-spaced, without end punctuation: how a leak is recognised."""
    return " ".join(text.casefold().split()).rstrip(".!?;:")


def _parse(ck: _Checker) -> tuple[spec.Curriculum | None, dict[str, spec.Node], dict[str, Any]]:
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


def _build_graph(ck: _Checker, parsed: dict[str, spec.Node], known: dict[str, Any]) -> nx.DiGraph:
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


def _check_shape(ck: _Checker, graph: nx.DiGraph, parsed: dict[str, spec.Node]) -> None:
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
    _check_dead_branches(ck, parsed)
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


def _check_dead_branches(ck: _Checker, parsed: dict[str, spec.Node]) -> None:
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


def _check_top(ck: _Checker, top: spec.Curriculum | None, known: dict[str, Any]) -> None:
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


def _check_drift(ck: _Checker, top: spec.Curriculum | None, parsed: dict[str, spec.Node]) -> None:
    """A drift gate without drift measured would never fire: say so rather than ignore it."""
    if top is None or top.drift is not None:
        return
    gates: list[tuple[tuple[Any, ...], spec.GateConfig]] = [(("defaults", "gate", "max_drift"), top.defaults.gate)]
    gates += [(("nodes", n, "gate", "max_drift"), node.gate) for n, node in parsed.items() if node.gate is not None]
    for loc, gate in gates:
        if gate.max_drift is not None:
            ck.at(loc, "max_drift needs drift measured: add a top-level `drift: {prompts: 32}`")


def _check_base(ck: _Checker, top: spec.Curriculum) -> Resolved | None:
    """`model.base` resolves to files on this machine (or, online, to a hub id); cheap: nothing is loaded."""
    try:
        resolved = resolve_base(top.model.base)
    except ModelError as exc:
        ck.at(("model", "base"), f"model.base: {exc}")
        return None
    if not resolved.cached:
        line, col = ck.yml.where(("model", "base")) if ck.yml else (1, 1)
        ck.warnings.append(Problem(ck.file, line, col, f"warning: hub model '{resolved.source}' is not in the local "
                                   "cache, so its tokenizer is not checked here (prompt lengths); the run downloads it"))
        return None
    return resolved


@lru_cache(maxsize=8)
def _base_tokenizer(base: str, source: str, stamp: float):
    """The base's tokenizer, loaded once per process and folder state (validation runs again and again)."""
    import transformers

    transformers.logging.set_verbosity_error()
    return tokenizer_for_checks(base)


def _tokenizer(ck: _Checker, top: spec.Curriculum, resolved: Resolved):
    """The tokenizer training will use, hyperword tokens included; None (and a problem) when it cannot load."""
    source = Path(resolved.source)
    stamp = max((source / f).stat().st_mtime for f in TOKENIZER_FILES if (source / f).is_file()) \
        if source.is_dir() else 0.0
    try:
        tokenizer = _base_tokenizer(top.model.base, resolved.source, stamp)
    except Exception as exc:  # noqa: BLE001 (whatever a broken tokenizer folder raises, it is the user's to fix)
        ck.at(("model", "base"), f"model.base: cannot load the tokenizer of '{top.model.base}': {exc}")
        return None
    if top.model.new_tokens is None or not top.lexicon:
        return tokenizer
    from curriculum.tokens import add_forms, token_plan, token_problems  # imports torch: only for new tokens

    plan = token_plan(top)
    if plan is None:
        return tokenizer
    problems = token_problems(tokenizer, plan["lexicon"])
    for loc, message in problems:
        ck.at(loc, message)
    if problems:
        return None
    tokenizer = copy.deepcopy(tokenizer)
    add_forms(tokenizer, plan)
    return tokenizer


def _check_lengths(ck: _Checker, cur: spec.Curriculum, tokenizer,
                   examples: dict[str, Sequence[Record[spec.TrainExample]]]) -> None:
    """Every training pair fits its node's max_length, tokenized as training does (chat template, new tokens):
    a pair that does not would only fail when its stage trains. A node is read a batch at a time; what is held
    is one length pair per distinct example, under a digest of it."""
    from curriculum.chat import IGNORE, Example
    from curriculum.tokencache import TokenCache

    lengths: dict[bytes, tuple[int, int]] = {}
    reported: set[tuple[str, int]] = set()
    cache = TokenCache(tokenizer)  # what is tokenized here, every stage reads back

    def key_of(value: spec.TrainExample) -> tuple[bytes, Example]:
        history = tuple((user, assistant) for user, assistant in value.history)
        example = Example(value.prompt, value.answer, system=value.system, history=history)
        digest = hashlib.blake2b(repr((value.prompt, value.answer, value.system, history)).encode(), digest_size=16)
        return digest.digest(), example

    for node_id, records in examples.items():
        limit = cur.train_config(node_id).max_length
        for start in range(0, len(records), BATCH):
            batch = [(rec, *key_of(rec.value)) for rec in records[start:start + BATCH]]
            fresh = {key: example for _, key, example in batch if key not in lengths}
            try:
                for key, (ids, labels) in zip(fresh, cache.ids(list(fresh.values()))):
                    lengths[key] = (len(ids), labels.count(IGNORE))
            except ValueError:  # one example the template cannot render: each is tokenized alone below, to say which
                pass
            for rec, key, example in batch:
                if key not in lengths:
                    try:
                        (ids, labels), = cache.ids([example])
                    except ValueError as exc:  # the chat template renders the prompt differently with an answer
                        ck.problems.append(rec.problem(f"cannot tokenize this example: {exc}"))
                        lengths[key] = (0, 0)
                        continue
                    lengths[key] = (len(ids), labels.count(IGNORE))
                total, prompt = lengths[key]
                if total <= limit or (rec.file, rec.line) in reported:
                    continue
                reported.add((rec.file, rec.line))
                what = (f"its prompt alone is {prompt} tokens" if prompt >= limit
                        else f"it is {total} tokens ({prompt} of them the prompt)")
                ck.problems.append(rec.problem(f"example too long: {what}, over max_length {limit} "
                                           f"of node '{node_id}' (chat-templated with the tokenizer of '{cur.model.base}')"))


def _check_files(ck: _Checker, parsed: dict[str, spec.Node]):
    examples: dict[str, Sequence[Record[spec.TrainExample]]] = {}
    items: dict[str, list[list[Record[Any]]]] = {}
    exams: dict[str, list[list[Record[Any]] | None]] = {}
    installed: list[tuple[tuple[Any, ...], str]] = []  # (where, name) of each probe naming an installed lm-eval task
    for node_id, node in parsed.items():
        examples[node_id] = ck.training(node, ("nodes", node_id, "data")) or []
        items[node_id], exams[node_id] = [], []
        for i, probe in enumerate(node.probes):
            got = None
            exams[node_id].append(None if probe.exam is None else ck.records(
                probe.exam, spec.ITEM_MODELS[probe.kind], ("nodes", node_id, "probes", i, "exam"), probe.fields) or [])
            if probe.items is not None:
                got = ck.records(probe.items, spec.ITEM_MODELS[probe.kind], ("nodes", node_id, "probes", i, "items"),
                                 probe.fields)
            elif probe.task is not None and probe.task.endswith((".yaml", ".yml")):
                target = (ck.path.parent / probe.task).resolve()
                if not target.is_file():
                    ck.at(("nodes", node_id, "probes", i, "task"),
                          f"task file '{probe.task}' not found (looked in {display_path(target.parent)})")
                else:  # what lm-eval will read of it: includes, data files, !function modules
                    ck.problems.extend(task_file_problems(target))
            elif probe.task is not None:
                installed.append((("nodes", node_id, "probes", i, "task"), probe.task))
            items[node_id].append(got or [])
    if installed and (known := installed_tasks()) is not None:  # the index takes seconds: only when a probe names one
        for loc, name in installed:
            if name not in known:
                ck.at(loc, unknown_task_message(name, list(known)))
    probed = [*items.values(), *([r for r in e if r is not None] for e in exams.values())]
    # what an item could leak as: only these texts of the training data are kept, a node streamed past them
    wanted = {_normal(text) for per_probe in probed for records in per_probe for rec in records
              for text in (rec.value.prompt, getattr(rec.value, "reference", None)) if text is not None}
    prompts: dict[str, Record[spec.TrainExample]] = {}
    answers: dict[str, Record[spec.TrainExample]] = {}
    for records in examples.values():
        for rec in records if wanted else ():
            turns = [*rec.value.history, (rec.value.prompt, rec.value.answer)]  # earlier turns are trained too
            for user, assistant in turns:
                if (p := _normal(user)) in wanted:
                    prompts.setdefault(p, rec)
                if (a := _normal(assistant)) in wanted:
                    answers.setdefault(a, rec)
    leaked: set[tuple[str, int]] = set()
    for per_probe in probed:
        for records in per_probe:
            for rec in records:
                if (rec.file, rec.line) in leaked:
                    continue
                hit = prompts.get(_normal(rec.value.prompt))
                what = "prompt"
                reference = getattr(rec.value, "reference", None)
                if hit is None and reference is not None:
                    hit, what = answers.get(_normal(reference)), "reference"
                if hit is not None:
                    leaked.add((rec.file, rec.line))
                    train = "answer" if what == "reference" else "prompt"
                    ck.problems.append(rec.problem(f"probe item leaks into training data: its {what} "
                                               f"is the training {train} at {hit.where}"))
    for node_id, exam_files in exams.items():  # an exam item that is also a check item would be read by decisions
        for check_records, exam in zip(items[node_id], exam_files):
            checked = {_normal(r.value.prompt): r for r in check_records}
            for rec in exam or []:
                if (same := checked.get(_normal(rec.value.prompt))) is not None:
                    ck.problems.append(rec.problem(f"exam item repeats the check item at "
                                               f"{same.where}: an exam item must be one no decision reads"))
    return examples, items, exams


def check_curriculum(path: str | Path) -> tuple[LoadedCurriculum | None, list[Problem]]:
    """Validate everything; return the loaded curriculum, or None and every problem found."""
    path = Path(path)
    ck = _Checker(path, display_path(path))
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
    top, parsed, known = _parse(ck)
    graph = _build_graph(ck, parsed, known)
    _check_shape(ck, graph, parsed)
    _check_top(ck, top, known)
    _check_drift(ck, top, parsed)
    resolved = _check_base(ck, top) if top is not None else None
    if top is not None and top.model.accelerate_config and not (path.parent / top.model.accelerate_config).is_file():
        ck.at(("model", "accelerate_config"), f"model.accelerate_config: no such file '{top.model.accelerate_config}' "
              "(relative to the curriculum file)")
    if top is not None and top.model.new_tokens is not None and not top.lexicon:
        ck.at(("model", "new_tokens"), "new_tokens comes from the lexicon, but the curriculum declares no 'lexicon'")
    examples, items, exams = _check_files(ck, parsed)
    if resolved is not None and top is not None and not ck.problems:  # tokenizing costs seconds: only when all else holds
        tokenizer = _tokenizer(ck, top, resolved)
        if tokenizer is not None:
            _check_lengths(ck, top.model_copy(update={"nodes": parsed}), tokenizer, examples)
    if ck.problems or top is None:
        return None, list(dict.fromkeys(ck.problems))
    curriculum = top.model_copy(update={"nodes": parsed})
    sha = hashlib.sha256(raw).hexdigest()
    split = plan_exam(curriculum, items, exams)
    check = {n: s.check for n, s in split.nodes.items()}
    warnings = ck.warnings + lint(ck, curriculum, check)  # decisions read check items: their power is what counts
    return LoadedCurriculum(path, text, sha, curriculum, graph, examples, check, warnings=warnings,
                            exam_items={n: s.exam for n, s in split.nodes.items()}, unsplit=split.unsplit()), []


TYPICAL_SPREAD = 0.15  # sd of paraphrase item scores (0.08-0.15 measured on the bundled demo run) assumed when judging whether a probe can decide its gate
DECISION_MARGIN = 0.1  # a pool must tell a node 0.1 above its gate from one 0.1 below


def lint(ck: _Checker, cur: spec.Curriculum, items: dict[str, list[list[Record[Any]]]]) -> list[Problem]:
    """Warnings (exit 0) for signals too weak to trust: one answer for every choice item, too few items
    for the gate to be decided at its confidence."""
    from curriculum.calibration import choice_levels
    from curriculum.evidence import decidable, interval

    found: list[Problem] = []

    def warn(loc: tuple[Any, ...], message: str) -> None:
        line, col = ck.yml.where(loc) if ck.yml else (1, 1)
        found.append(Problem(ck.file, line, col, f"warning: {message}"))

    for node_id, node in cur.nodes.items():
        gate = cur.gate_config(node_id)
        binary: list[Record[Any]] = []
        continuous = 0
        for i, probe in enumerate(node.probes):
            records = items[node_id][i]
            if probe.kind in spec.CONTINUOUS_PROBE_KINDS:
                continuous += len(records)
                continue
            binary += records
            answers = {r.value.choices[r.value.answer].casefold() for r in records}
            if len(records) > 1 and len(answers) == 1:
                warn(("nodes", node_id, "probes", i, "items"),
                     f"every item of this {probe.kind} probe has the answer '{records[0].value.choices[records[0].value.answer]}':"
                     " a model leaning towards that word scores 1.0; spread the answers over several options")
        level = gate.min_score
        if binary and not continuous:
            if level == "auto":
                level = (choice_levels(binary)[0] + 1) / 2
            if not decidable(len(binary), level, gate.confidence):
                warn(("nodes", node_id, "probes"), f"{len(binary)} right/wrong items cannot decide gate {level:.2f} at "
                     f"{gate.confidence:.0%} confidence: every decision will fall back to the point estimate; add items")
        elif continuous:
            n = continuous + len(binary)
            low, _ = interval([0.5 - TYPICAL_SPREAD, 0.5 + TYPICAL_SPREAD] * (n // 2) + [0.5] * (n % 2), False, gate.confidence)
            if n < 2 or 0.5 - low > DECISION_MARGIN:
                warn(("nodes", node_id, "probes"), f"{n} paraphrase items cannot tell a score {DECISION_MARGIN} above the "
                     f"gate from one {DECISION_MARGIN} below at {gate.confidence:.0%} confidence (items typically spread "
                     f"±{TYPICAL_SPREAD}); add items")
    return found


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
