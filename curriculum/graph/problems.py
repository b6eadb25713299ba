"""A problem found in a user's file, printed as `file:line:col: message` like a compiler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    message: str
    row: int | None = None  # a row of a file without lines (Parquet, a JSON array, a saved or hub dataset)

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else f"{self.line}:{self.col}"
        return f"{one_line(self.file)}:{where}: {one_line(self.message)}"


def one_line(text: str) -> str:
    """User text quoted in a message stays on one line and cannot drive the terminal: every character that
    is not printable (newlines, U+0085, U+2028, escape sequences) is written as its Python escape."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


class CurriculumError(Exception):
    """Raised by library calls when a curriculum is unsound; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def display_path(path: Path) -> str:
    """Relative to the working directory when under it: shorter, and what users typed."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def line_col_of_offset(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a character (or byte) offset."""
    if isinstance(text, str):
        line, start = text.count("\n", 0, offset) + 1, text.rfind("\n", 0, offset) + 1
    else:
        line, start = text.count(b"\n", 0, offset) + 1, text.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def decode_utf8(raw: bytes, file: str) -> tuple[str | None, Problem | None]:
    """Decode user text, or say where the first byte that is not UTF-8 sits."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = line_col_of_offset(raw, exc.start)
        return None, Problem(file, line, col, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
    if "\x00" in text:
        line, col = line_col_of_offset(text, text.index("\x00"))
        return None, Problem(file, line, col, "binary data (NUL byte) in a text file")
    return text.removeprefix("\ufeff"), None


def describe_error(err: Mapping[str, Any], known_keys: list[str] | None = None) -> str:
    """One readable sentence for a pydantic error dict (no 'Value error,' noise, no URLs)."""
    from difflib import get_close_matches

    loc = [str(p) for p in err["loc"]]
    name = loc[-1] if loc else "value"
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        hint = get_close_matches(name, known_keys or [], n=1)
        return f"unknown key '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    if kind == "missing":
        return f"missing required field '{name}'"
    if kind in ("enum", "literal_error"):
        expected = err.get("ctx", {}).get("expected", "")
        what = "layer" if name == "layer" else f"value for '{name}'"
        return f"unknown {what} {value!r} (expected {expected})"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    where = ".".join(p for p in loc if not p.isdigit()) or "record"
    return f"{where}: {msg}" + ("" if kind == "value_error" else f" (got {value!r})")
