"""What an lm-eval task YAML kept beside a curriculum reads besides itself, so a run's file snapshot holds it.

Read as lm-eval reads it (`lm_eval.tasks._yaml_loader.load_yaml`: includes merged, local keys win) and
as the product's bridge resolves it (`data_files` from the top task YAML's folder), with `!function`
tags left unresolved: naming the files must never import a task's helper code.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

import yaml


class _NoTags(yaml.SafeLoader):
    """Reads a task YAML for its file names only: lm-eval's `!function` tags read as None."""


_NoTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def task_reads(root: Path, task: str) -> dict[str, list[str]]:
    """The files a task YAML (a path from the curriculum's folder) reads: its `include:` YAMLs, recursively,
    the local `data_files` of the merged config, globs expanded, and the modules its `!function` tags name
    (an edited helper changes what the probe scores); as paths from the curriculum's folder.
    Only files that exist: a missing one is lm-eval's error to report when the probe runs."""
    path = root / task
    includes: list[Path] = []
    try:
        config = _merged(path, includes, set())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError):
        return {}
    kwargs = config.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    data = [p for f in _names(files) for p in _matches(path.parent, f)]
    functions = [m for f in [path, *includes] for m in _function_modules(f)]
    out = {"include": [_rel(root, p) for p in includes], "data_files": [_rel(root, p) for p in data],
           "functions": [_rel(root, p) for p in functions]}
    return {k: list(dict.fromkeys(v)) for k, v in out.items() if v}


def _function_modules(path: Path) -> list[Path]:
    """module.py beside a task YAML for each `!function module.name` in it (found by reading its text, never by
    importing), only those that exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found = (path.parent / f"{name.rpartition('.')[0]}.py" for name in re.findall(r"!function\s+([\w.]+)", text))
    return [module for module in found if module.name != ".py" and module.is_file()]


def _merged(path: Path, includes: list[Path], seen: set[Path]) -> dict[str, Any]:
    """lm-eval's merge: each include (a name or a list), then the file's own keys over them."""
    path = path.resolve()
    if path in seen or len(seen) > 32:
        raise ValueError(f"include cycle at {path}")
    seen.add(path)
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoTags)  # noqa: S506 (a SafeLoader)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a mapping")
    merged: dict[str, Any] = {}
    inc = config.pop("include", None)
    for name in inc if isinstance(inc, list) else [inc] if isinstance(inc, str) else []:
        target = path.parent / name
        includes.append(target)
        merged.update(_merged(target, includes, seen))
    merged.update(config)
    return merged


def _names(files: Any) -> list[str]:
    """`data_files` as lm-eval takes it: a path, a list, or split -> either."""
    if isinstance(files, dict):
        return [n for v in files.values() for n in _names(v)]
    if isinstance(files, list):
        return [n for v in files for n in _names(v)]
    return [files] if isinstance(files, str) else []


def _matches(folder: Path, name: str) -> list[Path]:
    pattern = name if Path(name).is_absolute() else str(folder / name)
    return sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(name) else [Path(pattern)] if Path(pattern).is_file() else []


def _rel(root: Path, path: Path) -> str:
    """A file's path as seen from the curriculum's folder (POSIX, `..` allowed)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
