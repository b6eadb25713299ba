"""What an lm-eval task YAML kept beside a curriculum will read, checked before a run: every problem at file:line:col.

lm-eval reads a task YAML only when its probe first runs, minutes into a run, and its errors come as tracebacks
("FileNotFoundError: Unable to find …"). So validation reads what it will read: each `include:` (merged as lm-eval
merges them, local keys last), the local `data_files` of the merged config (from the top task YAML's folder, as
the bridge resolves them; JSON lines parsed), and each `!function module.name` (module.py beside the YAML that
names it, parsed, never imported: checking must not run a task's helper code). An installed task's name is checked
against lm-eval's index, built only when a probe names one (it takes seconds).
"""

from __future__ import annotations

import ast
import difflib
import glob
from functools import lru_cache
from pathlib import Path

import yaml

from curriculum.loading.datasources import json_refusal, where_json_breaks
from curriculum.graph.problems import Problem, display_path

MAX_INCLUDES = 32
LOCAL_DATASETS = {"json", "csv", "text", "parquet", "arrow"}  # dataset_path values whose data_files are local


def _at(file: Path, node: yaml.Node, message: str) -> Problem:
    return Problem(display_path(file), node.start_mark.line + 1, node.start_mark.column + 1, message)


def _compose(path: Path, problems: list[Problem]) -> yaml.Node | None:
    """The YAML's node tree (tags such as !function kept as tags, nothing constructed), or None with a problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(display_path(path), 1, 1, f"cannot read task file: {getattr(exc, 'strerror', None) or exc}"))
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(display_path(path), line, col, f"task YAML: {getattr(exc, 'problem', None) or exc}"))
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(display_path(path), 1, 1, "a task YAML must be a mapping of lm-eval task settings"))
        return None
    return node


def _scalars(node: yaml.Node) -> list[yaml.ScalarNode]:
    """A scalar, or the scalars of a list or of a mapping's values (data_files: a path, a list, or split -> either)."""
    if isinstance(node, yaml.ScalarNode):
        return [node]
    if isinstance(node, yaml.SequenceNode):
        return [s for item in node.value for s in _scalars(item)]
    if isinstance(node, yaml.MappingNode):
        return [s for _, value in node.value for s in _scalars(value)]
    return []


def _functions(path: Path, node: yaml.Node, problems: list[Problem]) -> None:
    """Every `!function module.name` under node: module.py beside this YAML, parsed, defining name."""
    if node.tag == "!function" and isinstance(node, yaml.ScalarNode):
        module, _, name = node.value.rpartition(".")
        source = path.parent / f"{module}.py"
        if not module:
            problems.append(_at(path, node, f"!function '{node.value}': expected module.function"))
        elif not source.is_file():
            problems.append(_at(path, node, f"!function '{node.value}': module '{module}.py' not found beside the "
                                            f"task file (looked in {display_path(source.parent)})"))
        else:
            try:
                tree = ast.parse(source.read_bytes(), filename=str(source))
            except (SyntaxError, ValueError) as exc:
                problems.append(_at(path, node, f"!function '{node.value}': {display_path(source)} does not parse "
                                                f"(line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)})"))
                return
            if name not in _top_level_names(tree):
                problems.append(_at(path, node, f"!function '{node.value}': {display_path(source)} defines no '{name}'"))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _functions(path, item, problems)
    elif isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            _functions(path, value, problems)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
    return names


def _merged(path: Path, problems: list[Problem], seen: list[Path]) -> dict[str, tuple[Path, yaml.Node]]:
    """key -> (file, value node) of the task as lm-eval merges it: each include, then the file's own keys."""
    node = _compose(path, problems)
    if node is None:
        return {}
    _functions(path, node, problems)
    own = {k.value: (path, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    merged: dict[str, tuple[Path, yaml.Node]] = {}
    if "include" in own:
        for name in _scalars(own.pop("include")[1]):
            target = (path.parent / name.value).resolve()
            if not target.is_file():
                problems.append(_at(path, name, f"include '{name.value}' not found (looked in "
                                                f"{display_path(target.parent)})"))
            elif target in seen or len(seen) > MAX_INCLUDES:
                problems.append(_at(path, name, f"include '{name.value}' includes itself (an include cycle)"))
            else:
                merged.update(_merged(target, problems, [*seen, target]))
    merged.update(own)
    return merged


def _data_problems(data: Path, shown: str) -> list[Problem]:
    """A local JSON or JSON lines data file that `datasets` (which lm-eval reads it with) cannot read, at its first
    bad line: a file it reads is accepted whatever its name says (JSON lines in a `.json` file are)."""
    try:
        text = data.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(shown, 1, 1, f"cannot read data file: {getattr(exc, 'reason', None) or exc}")]
    if (refusal := json_refusal(data)) is None:
        return []
    return [where_json_breaks(text, data.suffix, shown) or Problem(shown, 1, 1, f"`datasets` cannot read it: {refusal}")]


def task_file_problems(path: Path) -> list[Problem]:
    """Every problem of a task YAML and of what it reads (includes, data files, !function modules)."""
    path = path.resolve()
    problems: list[Problem] = []
    merged = _merged(path, problems, [path])
    dataset = merged.get("dataset_path")
    local = dataset is not None and isinstance(dataset[1], yaml.ScalarNode) and dataset[1].value in LOCAL_DATASETS
    kwargs = merged.get("dataset_kwargs")
    if dataset is None or not local or kwargs is None or not isinstance(kwargs[1], yaml.MappingNode):
        return problems
    where, mapping = kwargs
    for key, value in mapping.value:
        if not (isinstance(key, yaml.ScalarNode) and key.value == "data_files"):
            continue
        for name in _scalars(value):
            if "://" in name.value:
                continue
            pattern = name.value if Path(name.value).is_absolute() else str(path.parent / name.value)
            found = sorted(glob.glob(pattern)) if glob.has_magic(name.value) else [pattern] if Path(pattern).is_file() else []
            if not found:
                problems.append(_at(where, name, f"data file '{name.value}' not found (looked in "
                                                 f"{display_path(Path(pattern).parent)})"))
            if dataset[1].value == "json":
                for data in found:
                    problems += _data_problems(Path(data), display_path(Path(data)))
    return problems


def unknown_task_message(name: str, known: list[str]) -> str:
    """An installed task name lm-eval does not know, with the nearest names it does."""
    near = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return f"no installed lm-eval task named '{name}'{hint}; a task YAML beside the curriculum ends in .yaml"


@lru_cache(maxsize=1)
def installed_tasks() -> tuple[str, ...] | None:
    """lm-eval's index of installed task, group and tag names (seconds to build: once per process), or None
    without lm-eval."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        return None
    return tuple(TaskManager().all_tasks)

