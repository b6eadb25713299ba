"""Faults a user causes are one line in the log, not a traceback: Prefect logs every task and flow failure with its
traceback, which buries "no space left on device" under forty lines of engine frames that say nothing to fix."""

from __future__ import annotations

import logging

from curriculum.training.integrity import IntegrityError
from curriculum.graph.problems import CurriculumError
from flows.setup import SetupError
from warehouse.db import WarehouseError, is_disk_full

USER_FAULTS = (IntegrityError, CurriculumError, WarehouseError, SetupError)


def user_fault(exc: BaseException | None) -> bool:
    """A fault of the machine or the user's files (full disk, damaged adapter or warehouse, unsound curriculum)."""
    return exc is not None and (isinstance(exc, USER_FAULTS) or is_disk_full(exc))


class DropUserFaultTracebacks(logging.Filter):
    """Keeps the record, drops its traceback when the exception is a user fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and user_fault(record.exc_info[1]):
            record.exc_info, record.exc_text = None, None
        return True


def hide_user_fault_tracebacks() -> None:
    """Put the filter on every handler of Prefect's loggers and the root's (once each)."""
    names = ["", *[n for n in logging.root.manager.loggerDict if n.split(".")[0] == "prefect"]]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, DropUserFaultTracebacks) for f in handler.filters):
                handler.addFilter(DropUserFaultTracebacks())
