"""The files a run is made from besides its YAML: every node's data and probe items, hashed.

The run's record keeps each file's sha256 and text, so the warehouse can say which data a run
used, and resume can refuse data that changed since (its replay would not mean the same).
"""

from __future__ import annotations

import hashlib

from curriculum.runs.lineage import content, node_files
from curriculum.loading.validate import LoadedCurriculum


def input_files(loaded: LoadedCurriculum) -> list[tuple[str, str, str | None]]:
    """(path as the YAML names it, sha256 of its bytes, text) of each data and probe file, once each. The text
    is kept for UTF-8 files up to SNAPSHOT_LIMIT (a task YAML's data may be parquet or a large eval set): None
    otherwise, and only the hash is recorded."""
    root = loaded.path.parent
    names = [rel for node in loaded.spec.nodes.values() for rel in node_files(node, root).values()]
    out = []
    for name in dict.fromkeys(names):
        raw = content(root / name)
        out.append((name, hashlib.sha256(raw).hexdigest(), _text(raw)))
    return out


SNAPSHOT_LIMIT = 8 << 20  # bytes of one file's text kept in the warehouse


def _text(raw: bytes) -> str | None:
    if len(raw) > SNAPSHOT_LIMIT:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def changed_files(recorded: dict[str, str], current: list[tuple[str, str, str | None]]) -> list[str]:
    """The recorded files whose content is not what it was, or that are gone. A file read now but not recorded
    is new only if the YAML or a task YAML changed, which their own hashes say; or the run was recorded before
    task YAMLs' data files were part of the snapshot, so it is not a change."""
    now = {name: sha for name, sha, _ in current}
    return sorted(name for name in recorded if recorded[name] != now.get(name))
