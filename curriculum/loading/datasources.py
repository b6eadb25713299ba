"""A node's training data from the files and datasets fine-tuning tools already use, read by `datasets`.

Users arrive with chat `messages`, alpaca or ShareGPT rows in JSONL, JSON, Parquet or CSV files, a folder
written by `save_to_disk`, or a hub dataset. Each is read by the `datasets` library, the reader the tools they
came from use, so what it accepts is accepted here (a JSON-lines file named `.json` included). Only a `.jsonl`
file is read line by line here, as before, so a bad line is reported at its line and column; a file `datasets`
cannot read is reported at the line where JSON breaks when it is text, else at the file.

Every row becomes a `TrainExample`: its last user turn and the answer to it, and for a conversation the turns
before and its system prompt, every assistant turn trained (curriculum.models.chat.example_ids). A bad row is reported
where it is: file:line for JSONL and CSV, the row for Parquet, JSON arrays and datasets.

A node read by `datasets` stays where `datasets` keeps it, an Arrow table mapped from disk (`NodeRows`): validation
streams it a batch at a time, and a stage, a replay draw or a mixture reads the rows it uses, so a node of 100,000
conversations costs its line numbers in memory, not its text.
"""

from __future__ import annotations

import csv
import hashlib
import json
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from curriculum.loading.jsonl import Record, objects, read_objects, validated
from curriculum.graph.problems import Problem, decode_utf8, describe_error
from curriculum.graph.spec import DataFormat, DataSource, TrainExample
from curriculum.loading.formats import columns_of, format_of, to_example

BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
M = TypeVar("M", bound=BaseModel)
Located = tuple[int, int | None, dict[str, Any]]  # (line or row, row when the file has no lines, the row)
BATCH = 1024  # rows converted at a time when a node is streamed


class NodeRows(Sequence[Record[TrainExample]]):
    """A node's training rows where `datasets` keeps them (an Arrow table mapped from disk), each made a
    `TrainExample` when it is read: by index for a draw, a batch at a time for a pass. Only the rows' line numbers
    (or row numbers) are held. `fingerprint` names the rows' content and how they are read, so a stage that draws
    from them can be identified without reading them all."""

    def __init__(self, shown: str, dataset: Any, lines: array, lined: bool, fmt: DataFormat, source: DataSource,
                 fingerprint: str) -> None:
        self.shown, self.dataset, self.lines, self.lined = shown, dataset, lines, lined
        self.fmt, self.source, self.fingerprint = fmt, source, fingerprint

    def __len__(self) -> int:
        return len(self.lines)

    @overload
    def __getitem__(self, i: int) -> Record[TrainExample]: ...
    @overload
    def __getitem__(self, i: slice) -> list[Record[TrainExample]]: ...
    def __getitem__(self, i: int | slice) -> Record[TrainExample] | list[Record[TrainExample]]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return [self[k] for k in range(start, stop, step)]
            batch = self.dataset[start:stop] if stop > start else {}  # one read of the table, as a batch
            return [self._record(start + j, values) for j, values in enumerate(_row_dicts(batch))]
        k = i + len(self) if i < 0 else i
        if not 0 <= k < len(self):
            raise IndexError(i)
        return self._record(k, self.dataset[k])

    def __iter__(self) -> Iterator[Record[TrainExample]]:
        for k, values in enumerate(self.values()):
            yield self._record(k, values)

    def values(self) -> Iterator[dict[str, Any]]:
        """Each row as `datasets` gives it, a batch at a time."""
        yield from _batched_rows(self.dataset)

    def problems(self) -> list[Problem]:
        """A problem for each row that is not a training example, named by the user's own columns."""
        out: list[Problem] = []
        for k, values in enumerate(self.values()):
            line, row = self.lines[k], (None if self.lined else self.lines[k])
            try:
                to_example(values, self.fmt, self.source)
            except ValidationError as exc:  # before ValueError, which it is
                named = columns_of(self.fmt, self.source.fields)
                out.extend(Problem(self.shown, line, 1, describe_error({**e, "loc": tuple(
                    named.get(str(p), p) for p in e["loc"])}), row) for e in exc.errors())
            except ValueError as exc:
                out.append(Problem(self.shown, line, 1, str(exc), row))
        return out

    def _record(self, k: int, values: dict[str, Any]) -> Record[TrainExample]:
        line = self.lines[k]
        return Record(self.shown, line, to_example(values, self.fmt, self.source), None if self.lined else line)


def read_source(root: Path, source: DataSource, shown: str) -> tuple[Sequence[Record[TrainExample]], list[Problem]]:
    """The source's rows as training examples (a `.jsonl` file of pairs read here, whole, as it always was; any other
    source left where `datasets` keeps it, as `NodeRows`), or a problem for each row that is not one."""
    path = None if source.path is None else (root / source.path)
    if path is not None and path.suffix == ".jsonl" and not source.fields and source.format in (None, "pairs") \
            and not source.where and source.system is None:
        rows, problems = read_objects(path, shown)
        if problems or not rows or format_of(rows[0][1].keys(), {}) in (None, "pairs"):
            return validated(rows, problems, TrainExample, shown)  # the product's own pairs, as they always read
    ds, problems = _dataset(path, source, shown)
    if problems:
        return [], problems
    lines, lined = _positions(path, ds.num_rows, shown)
    if source.where:
        ds, lines = _where(ds, lines, source.where)
    if not len(lines):
        where = f" where {source.where}" if source.where else ""
        return [], [Problem(shown, 1, 1, f"no rows{where}")]
    columns = ds.column_names
    fmt = source.format or format_of(columns, source.fields)
    if fmt is None:
        return [], [Problem(shown, lines[0], 1, f"cannot tell the format from the columns {sorted(columns)}: "
                            "say `format:` (pairs, chat, alpaca or sharegpt) and `fields:` where the names differ",
                            None if lined else lines[0])]
    node = NodeRows(shown, ds, lines, lined, fmt, source, _fingerprint(path, ds, source))
    problems = node.problems()
    return ([], problems) if problems else (node, [])


def read_items(path: Path, model: type[M], shown: str, fields: dict[str, str]) -> tuple[list[Record[M]], list[Problem]]:
    """Probe items from any file or saved dataset `datasets` reads, each item's field taken from the column `fields`
    names (its own name otherwise); a bad row reported where it is, named by the user's column."""
    located, problems = _rows(path, DataSource(path=str(path)), shown)
    if problems:
        return [], problems
    records: list[Record[M]] = []
    columns = {f: fields.get(f, f) for f in model.model_fields}
    for line, row, values in located:
        item = {f: values[c] for f, c in columns.items() if c in values}
        item |= {k: v for k, v in values.items() if k not in columns.values() and k not in item}  # extra: tags
        try:
            records.append(Record(shown, line, model.model_validate(item), row))
        except ValidationError as exc:
            problems.extend(Problem(shown, line, 1, describe_error({**e, "loc": tuple(
                columns.get(str(p), p) for p in e["loc"])}, list(model.model_fields)), row) for e in exc.errors())
    if not records and not problems:
        problems.append(Problem(shown, 1, 1, "empty file: no records"))
    return records, problems


def _rows(path: Path | None, source: DataSource, shown: str) -> tuple[list[Located], list[Problem]]:
    """Every row of the source with where it is, through `datasets` (probe items: a few hundred, held)."""
    ds, problems = _dataset(path, source, shown)
    if problems:
        return [], problems
    lines, lined = _positions(path, ds.num_rows, shown)
    return [(line, None if lined else line, row) for line, row in zip(lines, ds.to_list())], []


def _dataset(path: Path | None, source: DataSource, shown: str) -> tuple[Any, list[Problem]]:
    """The source as `datasets` reads it (a table mapped from its cache on disk), or why it cannot."""
    import datasets

    with _quiet():
        try:
            if path is None:
                return datasets.load_dataset(source.hub, split=source.split), []
            if path.is_dir():
                ds = datasets.load_from_disk(str(path))
                if isinstance(ds, datasets.DatasetDict):
                    if source.split not in ds:
                        return None, [Problem(shown, 1, 1, f"no split '{source.split}' (it has {', '.join(ds)})")]
                    ds = ds[source.split]
                return ds, []
            if not path.is_file():
                return None, [Problem(shown, 1, 1, "file not found")]
            if path.suffix not in BUILDERS:
                return None, [Problem(shown, 1, 1, f"cannot read a '{path.suffix}' file: JSONL, JSON, Parquet, CSV or a "
                                      "folder saved by `datasets`")]
            # a CSV's cells as written: "42" is an answer, not a number, and "NA" or "None" are words
            kwargs = _csv_as_text(path) if path.suffix == ".csv" else {}
            return datasets.load_dataset(BUILDERS[path.suffix], data_files=str(path), split="train", **kwargs), []
        except Exception as exc:  # noqa: BLE001 - whatever `datasets` refuses is refused, at its place when we can tell
            return None, _unreadable(path, shown, exc)


def _positions(path: Path | None, n: int, shown: str) -> tuple[array, bool]:
    """Where each of the n rows is: its line in a JSON-lines or CSV file (True), else its row number (False)."""
    if path is not None and path.suffix in (".jsonl", ".json") and path.is_file():
        lines = _json_lines(path, shown)
        if len(lines) == n:
            return lines, True
    if path is not None and path.suffix == ".csv":
        lines = _csv_lines(path)
        if len(lines) == n:
            return lines, True
    return array("q", range(1, n + 1)), False


def _where(ds: Any, lines: array, where: dict[str, Any]) -> tuple[Any, array]:
    """The rows whose columns hold `where`'s values (a missing column holds None), read a column at a time."""
    present = [k for k in where if k in ds.column_names]
    if present:
        values = _batched_rows(ds.select_columns(present))
        keep = array("q", (k for k, row in enumerate(values) if all(row.get(c) == v for c, v in where.items())))
    else:
        keep = array("q", range(ds.num_rows)) if all(v is None for v in where.values()) else array("q")
    return ds.select(keep, keep_in_memory=True), array("q", (lines[k] for k in keep))


def _batched_rows(ds: Any) -> Iterator[dict[str, Any]]:
    """Each row of a dataset as a dict, read a batch at a time (as `to_list` would give it)."""
    for batch in ds.iter(batch_size=BATCH):
        yield from _row_dicts(batch)


def _row_dicts(batch: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """A batch of columns as its rows."""
    names = list(batch)
    return (dict(zip(names, values)) for values in zip(*(batch[c] for c in names)))


def _fingerprint(path: Path | None, ds: Any, source: DataSource) -> str:
    """sha256 of how the rows are read and of what they are: the file's bytes, every file of a saved dataset, or
    the fingerprint `datasets` gives a hub dataset."""
    h = hashlib.sha256(source.model_dump_json().encode())
    if path is None:
        h.update(ds._fingerprint.encode())
    else:
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            with file.open("rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
            h.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
    return h.hexdigest()


def _json_lines(path: Path, shown: str) -> array:
    """The line of each row when the file is JSON lines (empty when it is one JSON document): the lines read_objects
    would keep, without holding their objects."""
    text, problem = decode_utf8(path.read_bytes(), shown)
    if problem is not None or text is None:
        return array("q")
    starts = array("q")
    for number, obj in objects(text, shown):
        if isinstance(obj, Problem):
            return array("q")
        starts.append(number)
    return starts


def _csv_as_text(path: Path) -> dict[str, Any]:
    """The CSV reader's settings that keep every cell the text it is (its header names the columns)."""
    import datasets

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    return {"keep_default_na": False,
            "features": datasets.Features({name: datasets.Value("string") for name in header})}


def _csv_lines(path: Path) -> array:
    """The line each CSV row starts on (a quoted field may span lines)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        starts, at = array("q"), 1
        for _ in reader:
            starts.append(at)
            at = reader.line_num + 1
    return starts[1:]  # the header is not a row


def _unreadable(path: Path | None, shown: str, exc: Exception) -> list[Problem]:
    """What `datasets` could not read, at the line where a text file's JSON breaks when that is the reason."""
    if path is not None and path.suffix in (".json", ".jsonl") and path.is_file():
        text, problem = decode_utf8(path.read_bytes(), shown)
        if problem is not None or text is None:
            return [problem] if problem else []
        if (broken := where_json_breaks(text, path.suffix, shown)) is not None:
            return [broken]
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return [Problem(shown, 1, 1, f"`datasets` cannot read it: {first}")]


def where_json_breaks(text: str, suffix: str, shown: str) -> Problem | None:
    """Where a JSON or JSON-lines text stops parsing: the first bad line of JSON lines (a `.jsonl` file, or a
    file whose first line is a whole value), else the place in the one document; None when it parses."""
    bad_line = None  # (a line before it parsed, the problem)
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    for k, (number, line) in enumerate(lines):
        try:
            json.loads(line)
        except json.JSONDecodeError as exc:
            bad_line = (k > 0, Problem(shown, number, exc.colno, f"not a JSON line: {exc.msg}"))
            break
    if bad_line is None and len(lines) > 1:
        return None  # every line is JSON: what is wrong is what the reader said (e.g. a column of two types)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if bad_line is not None and (bad_line[0] or suffix != ".json"):
            return bad_line[1]
        return Problem(shown, exc.lineno, exc.colno, f"not JSON: {exc.msg}")
    return None


def json_refusal(path: Path) -> str | None:
    """Why `datasets`' JSON reader cannot read a file, or None when it can."""
    import datasets

    with _quiet():
        try:
            datasets.load_dataset("json", data_files=str(path), split="train")
        except Exception as exc:  # noqa: BLE001 - its refusal, whatever it is, is the answer
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@contextmanager
def _quiet() -> Iterator[None]:
    """`datasets` without progress bars or its own error log while it reads: what it refuses is said once, as a
    problem."""
    import datasets

    datasets.disable_progress_bars()
    was = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(was)
