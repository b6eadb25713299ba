"""Named points of a run where tests stop or break it, as real life would: kill -9, out of memory.

CURRICULUM_KILL_AT=POINT[:N] sends SIGKILL to this process the Nth time (default 1st) it reaches
POINT; CURRICULUM_FAIL_AT=POINT:KIND[:N] raises there instead, on the first N times (KIND: oom,
connection, data, nospace: ENOSPC as a full disk raises it). Unset, `reached` costs one dict lookup. Points: train (after a training
round, adapter not saved), probe (a probe sweep done, its rows not written), commit (inside a
warehouse transaction, before COMMIT), stage (between stages, the last one committed),
report (the run's stages done, its report not written), save (a stage's adapter half written, not sealed).
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def _parse(value: str) -> tuple[str, list[str]]:
    point, *rest = value.split(":")
    return point, rest


def reached(point: str) -> None:
    """Called at each named point: kill or raise when the environment asks for it here."""
    kill, fail = os.environ.get("CURRICULUM_KILL_AT"), os.environ.get("CURRICULUM_FAIL_AT")
    if not kill and not fail:
        return
    _seen[point] += 1
    if kill:
        where, rest = _parse(kill)
        if where == point and _seen[point] == int(rest[0] if rest else 1):
            os.kill(os.getpid(), signal.SIGKILL)
    if fail:
        where, rest = _parse(fail)
        if where == point and _seen[point] <= int(rest[1] if len(rest) > 1 else 1):
            kind = rest[0] if rest else "oom"
            if kind == "oom":
                raise RuntimeError(f"CUDA out of memory. Tried to allocate 2.00 GiB (CURRICULUM_FAIL_AT at {point})")
            if kind == "connection":
                raise ConnectionError(f"connection to the worker lost (CURRICULUM_FAIL_AT at {point})")
            if kind == "nospace":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"CURRICULUM_FAIL_AT at {point}")
            raise ValueError(f"bad data (CURRICULUM_FAIL_AT at {point})")
