"""The files a run is made from besides its YAML: every node's data and probe items, hashed.

The run's record keeps each file's sha256 and text, so the warehouse can say which data a run
used, and resume can refuse data that changed since (its replay would not mean the same).
"""

from __future__ import annotations

import hashlib

from curriculum.lineage import file_keys
from curriculum.validate import LoadedCurriculum


def input_files(loaded: LoadedCurriculum) -> list[tuple[str, str, str]]:
    """(path as the YAML names it, sha256 of its bytes, text) of each data and probe file, once each."""
    names = [rel for node in loaded.spec.nodes.values() for rel in file_keys(node, loaded.path.parent).values()]
    out = []
    for name in dict.fromkeys(names):
        raw = (loaded.path.parent / name).read_bytes()
        out.append((name, hashlib.sha256(raw).hexdigest(), raw.decode("utf-8")))
    return out


def changed_files(recorded: dict[str, str], current: list[tuple[str, str, str]]) -> list[str]:
    """The recorded files whose content is not what it was (or that are gone), and files new since."""
    now = {name: sha for name, sha, _ in current}
    return sorted(name for name in recorded.keys() | now.keys() if recorded.get(name) != now.get(name))
