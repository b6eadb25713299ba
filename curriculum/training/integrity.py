"""What a stage folder's bytes should be: a SHA256SUMS file written with it, checked before anything trusts it.

A truncated adapter (a full disk, a broken copy) loads as a safetensors header error deep in a traceback, or worse,
is copied on as if it were fine. So every file a stage writes is hashed when it is written, into SHA256SUMS
(`sha256sum` format, so `sha256sum -c` checks it too), written last and atomically; whoever reuses, continues,
exports or talks to a stage checks the folder first and refuses a damaged or missing file in one line naming it.
A folder saved before this record existed has no SHA256SUMS: it is read as "unverified", never refused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

SUMS = "SHA256SUMS"
_CHUNK = 1 << 20


class IntegrityError(ValueError):
    """A file of a stage folder is missing or its bytes differ from those recorded when it was written."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def seal(folder: Path) -> Path:
    """Record the sha256 of every file in the folder (subfolders included) in SHA256SUMS, written last and
    atomically (a temporary file renamed), so a folder with SHA256SUMS has all of what it lists."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (SUMS, SUMS + ".tmp"))
    text = "".join(f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files)
    tmp = folder / (SUMS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / SUMS)
    return folder / SUMS


def recorded(folder: Path) -> dict[str, str] | None:
    """{relative path: sha256} as SHA256SUMS records it, or None for a folder saved before the record existed."""
    sums = Path(folder) / SUMS
    if not sums.is_file():
        return None
    out = {}
    for number, line in enumerate(sums.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise IntegrityError(f"{sums}:{number}: not a sha256sum line")
        out[name] = digest
    return out


@dataclass
class Verdict:
    """One folder checked: `verified` False when it has no record (older runs); `damaged` one line per bad file."""

    folder: Path
    verified: bool
    damaged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged


def verify(folder: Path) -> Verdict:
    """Every file SHA256SUMS lists, present and with its recorded bytes."""
    folder = Path(folder)
    if not folder.is_dir():
        return Verdict(folder, False, [f"{folder}: missing (no such folder)"])
    sums = recorded(folder)
    if sums is None:
        return Verdict(folder, False)
    damaged = []
    for name, digest in sums.items():
        path = folder / name
        if not path.is_file():
            damaged.append(f"{path}: missing (listed in {folder / SUMS})")
        elif file_sha256(path) != digest:
            damaged.append(f"{path}: damaged (its sha256 differs from the one recorded when it was written)")
    return Verdict(folder, True, damaged)


def check(folder: Path) -> bool:
    """Raise IntegrityError naming the first damaged or missing file; True when verified, False when the folder
    predates the record (unverified, but loaded as before)."""
    verdict = verify(folder)
    if verdict.damaged:
        more = f" (and {len(verdict.damaged) - 1} more: curriculum verify lists them)" if len(verdict.damaged) > 1 else ""
        raise IntegrityError(verdict.damaged[0] + more)
    return verdict.verified


def stage_folders(run_dir: Path) -> list[Path]:
    """A run folder's stage-N folders, in stage order (folders moved aside and .partial ones left out)."""
    found = [p for p in Path(run_dir).glob("stage-*") if p.is_dir() and p.name.removeprefix("stage-").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("stage-")))
