"""Which code made a run: the product's version and a fingerprint of its source and of the libraries it trains with.

A run's figures come from the code that trained, probed and decided it. `curriculum compare` reuses a finished run
when asked again, so without this a comparison made after an upgrade (or an edit of a policy) would read old runs as
if the current code had made them, and pair them with fresh ones. The fingerprint covers every file of the product's
packages (code and package data, such as the drift prompts) and the versions of the libraries that train and score
(torch, transformers, peft), so it changes with any of those; it may change with a change that moves no figure (a
comment): a rerun then costs compute, never a wrong verdict. It does not cover the hardware or the rest of the
environment.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGES = ("curriculum", "probes", "flows", "warehouse")  # the product's code: what trains, probes, decides, records
SOURCES = (".py", ".sql", ".jsonl")  # code and package data (migrations, drift prompts); never a warehouse file there
LIBRARIES = ("torch", "transformers", "peft")  # what computes the losses and scores
DISTRIBUTION = "curriculum-orchestrator"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def libraries() -> dict[str, str]:
    return {name: _version(name) for name in LIBRARIES}


@cache
def fingerprint() -> str:
    """This installation's fingerprint (computed once a process: the code cannot change under a running run)."""
    return fingerprint_of(Path(__file__).resolve().parents[1], libraries())


def fingerprint_of(root: Path, libs: dict[str, str] | None = None) -> str:
    """12 hex digits of sha256 over the product's source files under `root` (path and bytes, in path order; the
    default warehouse lives in warehouse/ and must not count), and the given library versions."""
    h = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in SOURCES and path.is_file() and "__pycache__" not in path.parts:
                h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name, version in sorted((libs or {}).items()):
        h.update(f"{name}=={version}\0".encode())
    return h.hexdigest()[:12]


def code_record() -> dict[str, object]:
    """What a run's config records of the code that made it."""
    return {"version": _version(DISTRIBUTION), "fingerprint": fingerprint(), "libraries": libraries()}
