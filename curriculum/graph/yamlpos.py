"""Load YAML safely while remembering where every key and value sits in the file.

Validation errors arrive as paths like ('nodes', 'a', 'layer'); this map turns them back
into the line and column the user must edit.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import yaml

from curriculum.graph.problems import Problem, line_col_of_offset

Path_ = tuple[str, ...]

MAX_DEPTH = 64  # a curriculum nests a handful of levels; PyYAML's composer recurses once per level
MAX_ALIAS_VALUES = 100_000  # values aliases may add beyond the text: a billion-laughs document stops here


@dataclass
class LocatedYaml:
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: tuple[Any, ...], *, key: bool = False) -> tuple[int, int]:
        """Position of the deepest known prefix of `path`; the key's position if asked."""
        parts = tuple(str(p) for p in path)
        for n in range(len(parts), -1, -1):
            prefix = parts[:n]
            if key and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return 1, 1


class _Refused(yaml.MarkedYAMLError):
    """A document refused for its shape (depth, aliases, a value no type takes), not its syntax."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses what would hang or overflow the stack before anything walks the data.

    The composer keeps, for every node, the number of values it stands for once aliases are expanded
    and its height; an alias adds its target's count to the document's, so the bound holds whatever
    the nesting of anchors, and an alias to a node still being composed (a recursive one) is refused.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (values expanded, height)

    def fetch_flow_collection_start(self, token_class: type) -> None:
        # the scanner looks ahead over every open bracket for a possible key, quadratic in their number:
        # refuse before it reads thousands of them
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(None, None, f"YAML nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            shape = self._shape.get(id(node))
            name = f"YAML alias '*{event.anchor}'"
            if shape is None:
                raise _Refused(None, None, f"{name} is recursive: it refers to a value that contains it",
                               event.start_mark)
            self._aliased += shape[0]
            if self._aliased > MAX_ALIAS_VALUES:
                raise _Refused(None, None, f"{name} expands the document beyond {MAX_ALIAS_VALUES:,} values "
                               "(an alias bomb?): write the values out", event.start_mark)
            if self._depth + shape[1] > MAX_DEPTH:
                raise _Refused(None, None, f"{name} nests the document deeper than {MAX_DEPTH} levels",
                               event.start_mark)
            return node
        if self._depth >= MAX_DEPTH:
            raise _Refused(None, None, f"YAML nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        shapes = [self._shape[id(child)] for child in children]
        self._shape[id(node)] = (1 + sum(n for n, _ in shapes), 1 + max((h for _, h in shapes), default=0))
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # e.g. 2001-02-30 or `!!int abc`: the constructors raise plain errors
            kind = node.tag.rsplit(":", 1)[-1]
            what = f"YAML value {node.value!r}" if isinstance(node, yaml.ScalarNode) else "YAML value"
            why = "" if isinstance(exc, KeyError) else f": {exc}"
            raise _Refused(None, None, f"{what} is not a valid {kind}{why} (quote it to keep it text)",
                           node.start_mark) from None


class _Positions:
    """Line and column of a mark as editors count them: YAML also breaks lines at U+0085, U+2028 and U+2029,
    which may sit inside a string; then the mark's character offset is mapped over newlines only."""

    def __init__(self, text: str):
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"] \
            if any(ch in text for ch in "\x85\u2028\u2029") else None

    def __call__(self, mark: yaml.Mark) -> tuple[int, int]:
        if self.starts is None:
            return mark.line + 1, mark.column + 1
        line = bisect_right(self.starts, mark.index)
        return line, mark.index - self.starts[line - 1] + 1


def _walk(node: yaml.Node, path: Path_, out: LocatedYaml, file: str, problems: list[Problem], pos: _Positions) -> None:
    _mark = lambda n: pos(n.start_mark)  # noqa: E731
    out.values.setdefault(path, _mark(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key in seen:
                what = "duplicate node id" if path == ("nodes",) else "duplicate key"
                problems.append(Problem(file, *_mark(key_node), f"{what} '{key}'"))
            seen.add(key)
            out.keys.setdefault(path + (key,), _mark(key_node))
            _walk(value_node, path + (key,), out, file, problems, pos)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (str(i),), out, file, problems, pos)


def load_located(text: str, file: str) -> tuple[LocatedYaml | None, list[Problem]]:
    """Parse safely (nothing is constructed beyond plain data) plus positions; refuse what would hang."""
    located: LocatedYaml | None = None
    problems: list[Problem] = []
    pos = _Positions(text)
    try:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
            if root is not None:  # walked before construction: merge keys rewrite the nodes they merge into
                located = LocatedYaml(None)
                _walk(root, (), located, file, problems, pos)
                located.data = loader.construct_document(root)
        finally:
            loader.dispose()
    except _Refused as exc:
        return None, [Problem(file, *pos(exc.problem_mark), exc.problem)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = pos(mark) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(file, line, col, f"YAML syntax error: {reason}")]
    except yaml.reader.ReaderError as exc:
        line, col = line_col_of_offset(text, exc.position)
        return None, [Problem(file, line, col, f"YAML cannot read this file: {exc.reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, f"YAML error: {exc}")]
    return located or LocatedYaml(None), problems
