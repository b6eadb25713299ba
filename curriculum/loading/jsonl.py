"""Read JSONL records with their line numbers, so every bad record is reported where it is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from curriculum.graph.problems import Problem, decode_utf8, describe_error

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 64  # as for the YAML: no record needs more, and deeper ones overflow the stack of whatever walks them


_TOO_DEEP = object()


def _depth(value: object) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return deepest


@dataclass(frozen=True)
class Record(Generic[M]):
    """One validated record and the line it came from (errors later still point at it)."""

    file: str
    line: int
    value: M
    row: int | None = None  # a row of a file without lines (then `line` is that row too)

    @property
    def where(self) -> str:
        return f"{self.file}:row {self.row}" if self.row is not None else f"{self.file}:{self.line}"

    def problem(self, message: str) -> Problem:
        """A problem with this record, placed where it is."""
        return Problem(self.file, self.line, 1, message, self.row)


def read_records(path: Path, model: type[M], file: str) -> tuple[list[Record[M]], list[Problem]]:
    """All records of a JSONL file that validate, and a problem for each line that does not."""
    rows, problems = read_objects(path, file)
    return validated(rows, problems, model, file)


def validated(rows: list[tuple[int, dict]], problems: list[Problem], model: type[M],
              file: str) -> tuple[list[Record[M]], list[Problem]]:
    """read_objects' rows as records of `model`, a problem for each that is not one."""
    records: list[Record[M]] = []
    fields = list(model.model_fields)
    for number, obj in rows:
        try:
            records.append(Record(file, number, model.model_validate(obj)))
        except ValidationError as exc:
            problems.extend(Problem(file, number, 1, describe_error(e, fields)) for e in exc.errors())
    if not records and not problems:
        problems.append(Problem(file, 1, 1, "empty file: no records"))
    return records, problems


def read_objects(path: Path, file: str) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Each line's JSON object with its line number, and a problem for each line that is not one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], [Problem(file, 1, 1, "file not found")]
    except OSError as exc:
        return [], [Problem(file, 1, 1, f"cannot read: {exc.strerror}")]
    text, problem = decode_utf8(raw, file)
    if problem or text is None:
        return [], [problem] if problem else []
    rows: list[tuple[int, dict]] = []
    problems: list[Problem] = []
    for number, obj in objects(text, file):
        if isinstance(obj, Problem):
            problems.append(obj)
        else:
            rows.append((number, obj))
    return rows, problems


def objects(text: str, file: str) -> Iterator[tuple[int, dict | Problem]]:
    """Each non-blank line's number and its JSON object, or the problem that keeps it from being one, a line at a
    time (so a caller that wants only where the objects are holds none of them)."""
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit in a JSON string
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, Problem(file, number, exc.colno, f"malformed JSON: {exc.msg}")
            continue
        except RecursionError:
            obj = _TOO_DEEP
        if obj is _TOO_DEEP or (line.count("[") + line.count("{") > MAX_DEPTH and _depth(obj) > MAX_DEPTH):
            yield number, Problem(file, number, 1, f"JSON nested deeper than {MAX_DEPTH} levels")
        elif not isinstance(obj, dict):
            yield number, Problem(file, number, 1, f"expected a JSON object, got {type(obj).__name__}")
        else:
            yield number, obj
