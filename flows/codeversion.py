"""Which code made a run: the product's version and a fingerprint of its source.

A run's figures come from the code that trained, probed and decided it. `curriculum compare` reuses a finished run
when asked again, so without this a comparison made after an upgrade (or an edit of a policy) would read old runs as
if the current code had made them, and pair them with fresh ones. The fingerprint covers every Python file of the
product's packages, so it changes with any change that could change a figure (and with some that could not, such as a
comment: a rerun then costs compute, never a wrong verdict).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

PACKAGES = ("curriculum", "probes", "flows", "warehouse")  # the product's code: what trains, probes, decides, records
DISTRIBUTION = "curriculum-orchestrator"


@cache
def fingerprint() -> str:
    """This installation's fingerprint (computed once a process: the code cannot change under a running run)."""
    return fingerprint_of(Path(__file__).resolve().parents[1])


def fingerprint_of(root: Path) -> str:
    """12 hex digits of sha256 over every .py file of the product's packages under `root` (path and bytes, in path
    order)."""
    h = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def version() -> str:
    """The installed distribution's version ('unknown' when the code runs from a tree that was never installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def code_record() -> dict[str, str]:
    """What a run's config records of the code that made it."""
    return {"version": version(), "fingerprint": fingerprint()}
