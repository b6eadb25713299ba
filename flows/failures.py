"""Which failures are worth another try: out of memory and lost workers are; bad data is not."""

from __future__ import annotations

from prefect.exceptions import TerminationSignal

from curriculum.training.memory import free_memory, is_oom
from curriculum.graph.problems import CurriculumError


STOPS = (KeyboardInterrupt, SystemExit, TerminationSignal)  # Ctrl-C, exit, SIGTERM as Prefect raises it


class WorkerLost(ConnectionError):
    """A remote stage's worker crashed or vanished before it finished."""


def interruption(exc: BaseException) -> BaseException | None:
    """The Ctrl-C, SIGTERM or exit behind `exc` (itself, or what it was raised while handling), else None.

    A signal that lands while Prefect 3.8's task engine creates a task run is masked: its crash handler fails and
    raises ValueError('Task run is not set') in the interrupt's place, the interrupt left as the error's context. Read
    as a failure, a Ctrl-C between two stages would record the run `failed` and print a traceback. Down the chain only
    a stop counts: a TimeoutError raised from asyncio's CancelledError is a failure, not an interruption."""
    if not isinstance(exc, Exception):
        return exc
    cur: BaseException | None = exc
    for _ in range(8):  # as warehouse.db.is_disk_full walks it: causes are few, and a cycle ends here too
        if cur is None or isinstance(cur, STOPS):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def transient(exc: BaseException) -> str | None:
    """Why a failure may pass on its own ('out of memory', 'lost worker'), or None when retrying cannot help."""
    if isinstance(exc, (CurriculumError, ValueError, TypeError, KeyError)):
        return None
    if is_oom(exc):  # left after the stage or probe shrank its batch to one example (curriculum.training.memory)
        return "out of memory"
    if isinstance(exc, (ConnectionError, TimeoutError, EOFError)):
        return "lost worker"
    return None


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry transient failures only, after freeing what memory can be freed."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None or transient(exc) is None:
        return False
    free_memory()
    return True


def failure_reason(exc: BaseException | None, message: str, retries: int) -> str:
    """The one line a failed stage's back-off records: what failed, and whether it was retried."""
    text = (str(exc) if exc is not None else message or "").strip()
    line = text.splitlines()[0] if text else type(exc).__name__ if exc is not None else "training failed"
    why = transient(exc) if exc is not None else None
    if why is not None:
        return f"{line} ({why}: still failing after {retries} retr{'y' if retries == 1 else 'ies'})"
    kind = "data error" if isinstance(exc, (CurriculumError, ValueError)) else "error"
    return f"{line} ({kind}: not retried)"
