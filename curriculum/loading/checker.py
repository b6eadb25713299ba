"""The one list of problems a validation collects: each at its file:line:col in the YAML (through its line map) or
in the data file it names, each data file read once (Checker); and what a node id may be.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from curriculum.graph import spec
from curriculum.loading.datasources import read_items, read_source
from curriculum.loading.jsonl import Record, read_records
from curriculum.graph.problems import Problem, describe_error, display_path
from curriculum.graph.yamlpos import LocatedYaml


ID_RULE = "a node id is letters of any script, digits, '.', '_' or '-', starting with a letter or digit"
ALL_KEYS = sorted(
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
class Checker:
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
                self.at(loc, describe_error(err, ALL_KEYS), key=kind == "extra_forbidden")

    def records(self, rel: str, model: type[BaseModel], loc: tuple[Any, ...],
                fields: dict[str, str] | None = None) -> list[Record[Any]] | None:
        """A data file's records, read once per file; None when the file is unusable. A file that is not JSONL, or
        whose columns `fields` renames, is read by `datasets` (curriculum.loading.datasources.read_items)."""
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
