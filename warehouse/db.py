"""The DuckDB file: connections, migrations, and short write transactions.

DuckDB lets one process write a file, or many read it, never both at once. So the writer
opens the file for each transaction and closes it after; a reader in another process gets
in between. Both sides wait while the other holds the lock, with backoff, saying what they
wait for ($CURRICULUM_LOCK_TIMEOUT seconds, default 600: an open interactive session must
not crash a run that took hours).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa

DEFAULT_PATH = Path("warehouse") / "curriculum.duckdb"
HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two database headers, before the first block
LOCK_TIMEOUT_S = 600.0
WAIT_MESSAGE_EVERY_S = 10.0
log = logging.getLogger(__name__)


def lock_timeout() -> float:
    """How long to wait for another process's lock: $CURRICULUM_LOCK_TIMEOUT seconds, else LOCK_TIMEOUT_S."""
    value = os.environ.get("CURRICULUM_LOCK_TIMEOUT")
    return float(value) if value else LOCK_TIMEOUT_S


def default_path() -> Path:
    """`CURRICULUM_WAREHOUSE` when set, else warehouse/curriculum.duckdb under the cwd."""
    return Path(os.environ.get("CURRICULUM_WAREHOUSE", DEFAULT_PATH))


def _holder(exc: duckdb.Error) -> str:
    """Who holds the file, as DuckDB says it ("Conflicting lock is held in PROGRAM (PID N) by user U")."""
    text = " ".join(str(exc).split())
    at = text.find("Conflicting lock")
    return text[at:].split(". See")[0].rstrip(".") if at >= 0 else text


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc)
    return "lock" in text.lower() or "Conflicting" in text


@contextmanager
def connect(path: str | Path, *, read_only: bool = False, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the file, waiting (with backoff, logging what holds it) while another process holds it; always
    closed on exit. timeout: seconds to wait, default lock_timeout()."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"{path}: no warehouse here yet (run a curriculum first)")
    timeout = lock_timeout() if timeout is None else timeout
    started = time.monotonic()
    delay, told = 0.005, started
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            waited = time.monotonic() - started
            if not _is_lock_error(exc):
                raise
            if waited > timeout:
                raise duckdb.IOException(f"{path}: gave up after {waited:.0f} s waiting for another process's lock "
                                         f"(raise $CURRICULUM_LOCK_TIMEOUT to wait longer): {_holder(exc)}") from exc
            if time.monotonic() - told >= WAIT_MESSAGE_EVERY_S:
                told = time.monotonic()
                log.warning("%s: waiting %.0f s so far (of %.0f) for %s to release it", path, waited, timeout, _holder(exc))
            time.sleep(delay)
            delay = min(delay * 2, 0.2 if waited < 5 else 1.0)
    try:
        yield con
    finally:
        con.close()


class DiskFull(OSError):
    """No space left on device, and where: raised instead of whatever the write raised, so a run records one line."""

    def __init__(self, where: str):
        super().__init__(errno.ENOSPC, f"no space left on device {where}")

    def __str__(self) -> str:
        return self.strerror or ""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether a write failed for want of space: ENOSPC itself, or a library's error that says so (DuckDB's
    IOException, safetensors', torch's), anywhere in the chain of causes."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "no space left on device" in str(exc).lower() or "disk quota exceeded" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class WarehouseError(ValueError):
    """The file is not a warehouse this version can use: damaged, foreign, or made by a newer version."""


def latest_version() -> int:
    """The highest migration this code ships: a file recording a higher one was made by a newer version."""
    return max((version for version, _, _ in migrations()), default=0)


def check_file(path: str | Path) -> None:
    """Refuse, in one line naming the file, a warehouse this code must not write: unreadable (damaged,
    truncated), a DuckDB file of something else (tables but no schema_version), or one migrated by a newer
    version (never migrated backwards). A file that is not there yet, or an empty one, is fine: it is created."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_dir():
        raise WarehouseError(f"{path}: a folder, not a warehouse file")
    if path.stat().st_size == 0:
        raise WarehouseError(f"{path}: an empty file, not a DuckDB warehouse (move it away to start a new one)")
    try:
        with connect(path, read_only=True) as con:
            tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if not tables:
                return
            if "schema_version" not in tables:
                raise WarehouseError(f"{path}: a DuckDB file, but not a curriculum warehouse (no schema_version table; "
                                     f"it has {', '.join(sorted(tables)[:3])}{', …' if len(tables) > 3 else ''})")
            version = schema_version(con)
            # Blocks in use, not total_blocks: DuckDB may trim free blocks off the file's tail, so the total can
            # exceed the file (a healthy warehouse refused in CI); every used block sits at its own offset.
            blocks, block_size = _one(con.execute("SELECT used_blocks, block_size FROM pragma_database_size()"))
        if path.stat().st_size < HEADER_BYTES + blocks * block_size:  # DuckDB reads a missing tail lazily: look first
            raise WarehouseError(f"{path}: a truncated DuckDB warehouse ({path.stat().st_size} bytes, fewer than the "
                                 f"{HEADER_BYTES + blocks * block_size} its blocks in use need: a full disk or a broken copy?)")
    except duckdb.Error as exc:
        if _is_lock_error(exc) and "gave up" in str(exc):
            raise
        raise WarehouseError(f"{path}: not a readable DuckDB warehouse (damaged or truncated?): "
                             f"{' '.join(str(exc).split())[:160]}") from None
    known = latest_version()
    if version > known:
        raise WarehouseError(f"{path}: made by a newer version of curriculum (schema version {version}; this one "
                             f"knows up to {known}): upgrade curriculum to use it")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in warehouse/migrations, in order."""
    found = []
    for entry in resources.files("warehouse").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply each migration not yet recorded in schema_version, once, in order."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}
    if done and max(done) > latest_version():  # never migrate backwards: a newer version's file stays as it is
        raise WarehouseError(f"made by a newer version of curriculum (schema version {max(done)}; this one knows up to "
                             f"{latest_version()}): upgrade curriculum to use it")
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return _one(con.execute("SELECT coalesce(max(version), 0) FROM schema_version"))[0]


def _one(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The one row an aggregate query returns (DuckDB types fetchone() as optional)."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("an aggregate query returned no row")
    return row


Rows: TypeAlias = "pa.Table | Sequence[Mapping[str, Any]]"


def _as_arrow(rows: Rows) -> pa.Table:
    """Arrow table over the union of the rows' keys (from_pylist alone keeps the first row's)."""
    if isinstance(rows, pa.Table):
        return rows
    records: list[Mapping[str, Any]] = list(rows)
    names = list(dict.fromkeys(key for row in records for key in row))
    return pa.Table.from_pydict({name: [row.get(name) for row in records] for name in names})


class Warehouse:
    """One project's DuckDB file, written only by the orchestrating process."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_path()
        self._migrated = False
        self.before_commit: Callable[[], None] | None = None  # a hook the flow's kill tests stop the process in

    def check(self) -> Warehouse:
        """check_file on this warehouse: called before a run writes anything (WarehouseError when unusable)."""
        check_file(self.path)
        return self

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short write transaction: open, migrate once, BEGIN … COMMIT, close."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.path) as con:
            if not self._migrated:
                migrate(con)
                self._migrated = True
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                if self.before_commit is not None:
                    self.before_commit()
                con.execute("COMMIT")
            except BaseException as exc:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:  # a full disk can fail the rollback too: the commit never happened either way
                    pass
                if is_disk_full(exc) and not isinstance(exc, DiskFull):
                    raise DiskFull(f"committing to the warehouse {self.path}") from exc
                raise

    @staticmethod
    def append(con: duckdb.DuckDBPyConnection, table: str, rows: Rows) -> int:
        """Bulk insert through Arrow, matching columns by name (absent ones take defaults)."""
        data = _as_arrow(rows)
        if data.num_rows == 0:
            return 0
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        _incoming = data  # noqa: F841 — DuckDB reads this Arrow table by its local name
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _incoming')
        return data.num_rows

    def write(self, table: str, rows: Rows) -> int:
        """Append rows to one table in one transaction."""
        with self.transaction() as con:
            return self.append(con, table, rows)

    def has_table(self, name: str) -> bool:
        """Whether the file has this table yet: a warehouse written before its migration is read, not migrated."""
        return bool(self.query("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])[1][0][0])

    def not_exam(self) -> str:
        """The filter that keeps a query of probe_results on what the run decided on (its check and unsplit rows);
        empty on a warehouse written before the split (read without migrating it), whose rows are all unsplit."""
        return "AND split <> 'exam'" if self.has_table("exam_scores") else ""

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Read-only query: (column names, rows). Never blocks the writer for long."""
        with connect(self.path, read_only=True) as con:
            cur = con.execute(sql, params or [])
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, cur.fetchall()
