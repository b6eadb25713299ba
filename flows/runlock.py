"""One live process per run: a lock file (pid, host, since) in the run's folder.

A second `curriculum run --resume ID` while the first lives is refused. A lock left by a
process that died on this host (kill -9, a crash) is stale: it is taken over, with a message.
A lock from another host cannot be checked from here, so it refuses and says how to clear it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "run.lock"


class RunLocked(RuntimeError):
    """Another live process holds the run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextmanager
def _guard(run_dir: Path) -> Iterator[None]:
    """Serialises check-and-take between processes, so two resumes never both take a stale lock."""
    with open(run_dir / f".{LOCK_FILE}.guard", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder_message(path: Path, run_id: str, host: str) -> str | None:
    """Raises RunLocked when a live process (or one on another host) holds the lock; else the message to give
    when taking it (a stale or unreadable lock replaced), or None when there is none."""
    if not path.exists():
        return None
    try:
        held = json.loads(path.read_text())
        pid, where, since = int(held["pid"]), str(held["host"]), str(held.get("since", "?"))
    except (OSError, ValueError, KeyError, TypeError):
        return f"{path}: unreadable lock replaced"
    if where != host:
        raise RunLocked(f"run '{run_id}' is locked by pid {pid} on host {where} since {since} ({path}); "
                        f"if that process is gone, delete the file")
    if _alive(pid):
        raise RunLocked(f"run '{run_id}' is already running: pid {pid} on {where} since {since} holds {path}")
    return f"run '{run_id}': taking over the stale lock of pid {pid} (since {since}), no longer running"


def check(run_dir: Path, run_id: str) -> None:
    """RunLocked when a live process holds the run; takes and writes nothing (a run's setup asks this early, so a
    second process is refused before Prefect starts; the flow takes the lock)."""
    _holder_message(run_dir / LOCK_FILE, run_id, socket.gethostname())


def acquire(run_dir: Path, run_id: str) -> str | None:
    """Take the run's lock; returns a message when a stale lock was taken over, raises RunLocked when a
    live process (or one on another host) holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    host = socket.gethostname()
    with _guard(run_dir):
        message = _holder_message(path, run_id, host)
        tmp = path.with_name(f"{LOCK_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        os.replace(tmp, path)
        return message


def release(run_dir: Path) -> None:
    """Drop the lock if this process holds it."""
    path = run_dir / LOCK_FILE
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
