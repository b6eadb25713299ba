"""Load YAML safely while remembering where every key and value sits in the file.

Validation errors arrive as paths like ('nodes', 'a', 'layer'); this map turns them back
into the line and column the user must edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from curriculum.problems import Problem, line_col_of_offset

Path_ = tuple[str, ...]


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


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path_, out: LocatedYaml, file: str, problems: list[Problem]) -> None:
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
            _walk(value_node, path + (key,), out, file, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (str(i),), out, file, problems)


def load_located(text: str, file: str) -> tuple[LocatedYaml | None, list[Problem]]:
    """Parse with yaml.safe_load (nothing is constructed beyond plain data) plus positions."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        return None, [Problem(file, line, col, f"YAML syntax error: {reason}")]
    except yaml.reader.ReaderError as exc:
        line, col = line_col_of_offset(text, exc.position)
        return None, [Problem(file, line, col, f"YAML cannot read this file: {exc.reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, f"YAML error: {exc}")]
    located = LocatedYaml(data)
    problems: list[Problem] = []
    if root is not None:
        _walk(root, (), located, file, problems)
    return located, problems
