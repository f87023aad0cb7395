"""SQLite adapter of the store port.

WAL mode lets the services and the gateway read while one process writes. Each process
writes through one thread with `BEGIN IMMEDIATE`, so a transaction takes the write lock at
its start and never fails half-way on a lock upgrade; `busy_timeout` queues writers from
other processes. `synchronous=NORMAL` survives process crashes; set
`TAMS_SQLITE_SYNCHRONOUS=FULL` to survive power loss too (docs/deploy.md).

Checkpoints (copying the WAL back into the database file, with an fsync) run in a background
thread once a second instead of inside whichever commit crosses the auto-checkpoint size, so
no write request pays for one. Those are passive: they never stop a writer. But the WAL
starts over from its beginning only when a write begins with every frame copied back, and
under a steady stream of writes a passive checkpoint never quite catches up: the WAL grew
by 3 GB in 70 s of single registrations, and every process slowed down as it grew. So once
the thread finds the WAL at `WAL_RESTART_FRAMES`, the process's next write first runs a
RESTART checkpoint on the writer thread, between its own writes (a checkpoint from another
thread waits for a free moment, which back-to-back writes never leave). It copies what the
passive ones left, waits at most `WAL_RESTART_WAIT_MS` for readers to move to the database
file, and the write that follows starts the WAL over. Meanwhile the process's other writes
queue behind it; the event loop does not wait. `journal_size_limit` cuts the file back to
twice the restart size at most, not to it: the WAL outgrows the restart size by about a
second of writes before each restart, and cutting the file back every time made the writer
wait for the filesystem to allocate those blocks again (p99 spikes of 55 to 114 ms, against
46 to 72 ms).

The writing connection keeps a larger page cache (`TAMS_SQLITE_WRITER_CACHE_MB`, 64 MB) than
SQLite's 2 MB: a bulk registration inserts at hundreds of places in the segments-by-object
index, and with the default those pages were read back from the OS every batch.

A write runs **on the event loop** when it can start at once: nothing of this process is
writing or waiting to, and the write lock is free (tried with no busy wait). Otherwise it
runs on the writer thread, which waits for the lock. Both use the one writing connection,
in arrival order. A write is a few milliseconds of Python and SQLite: on the loop it does
not pay for the hop to the thread and back, nor contend for the GIL with the loop
meanwhile: a batch of registrations took about 5.4 ms instead of 6.8 (docs/benchmarks.md).
`writes_on_loop=False` (a service whose loop has other work while it writes, or
`TAMS_SQLITE_WRITES_ON_LOOP=false`) keeps every write on the thread. Reads stay on their
threads, so the gateway's reads run beside each other.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tams_store.errors import StoreUnavailable
from tams_store.executor import ThreadBoundExecutor
from tams_store.port import ReadTx, WriteTx
from tams_store.sqlite.migrations import migrate
from tams_store.sqlite.transactions import SqliteReadTx, SqliteWriteTx

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a write waits for another process's write lock before failing (retried then).
BUSY_TIMEOUT_MS = 10_000
# A WAL this long (frames, 4 KiB pages: 256 MiB) is checkpointed in RESTART mode, so that it
# starts over; a restart cuts the file back to twice that size at most (512 MiB).
WAL_RESTART_FRAMES = 65_536
WAL_SIZE_LIMIT_BYTES = 2 * WAL_RESTART_FRAMES * 4096
# How long a RESTART checkpoint waits for the writer and readers; writers wait behind it.
WAL_RESTART_WAIT_MS = 50
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class SqliteStore:
    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        readers: int = 4,
        writer_cache_mb: int = 64,
        writes_on_loop: bool = True,
    ) -> None:
        self.path = Path(path)
        self.writer_cache_mb = writer_cache_mb
        self.writes_on_loop = writes_on_loop
        self.synchronous = synchronous.upper()
        if self.synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"invalid SQLite synchronous mode {synchronous!r}")
        self._readers_count = readers
        self._writer: ThreadBoundExecutor[sqlite3.Connection] | None = None
        self._writer_conn: sqlite3.Connection | None = None
        # Writes handed to the writer thread and not finished: while there are any, a new
        # write queues behind them instead of running on the loop.
        self._thread_writes = 0
        self._readers: ThreadBoundExecutor[sqlite3.Connection] | None = None
        self._stop_checkpoints = threading.Event()
        # Set by the checkpoint thread: the next write restarts the WAL first.
        self._wal_restart_due = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _enter_wal(conn)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        # A negative cache_size is in KiB.
        conn.execute(f"PRAGMA cache_size=-{self.writer_cache_mb * 1024}")
        return conn

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        failing: str | None = None  # the error the last checkpoint failed with
        try:
            while not self._stop_checkpoints.wait(1.0):
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    # Busy or locked: the next round will do it. Anything else (a full disk,
                    # an I/O error) leaves the WAL growing until it is fixed: said once.
                    problem = str(exc)
                    if problem != failing and not any(w in problem for w in ("busy", "locked")):
                        log.warning(
                            "the SQLite WAL cannot be copied back into the database; it grows "
                            "until this is fixed",
                            extra={"error": problem, "path": str(self.path)},
                        )
                    failing = problem
                    continue
                if failing is not None:
                    log.info("the SQLite WAL is copied back again", extra={"path": str(self.path)})
                    failing = None
                if row[1] >= WAL_RESTART_FRAMES:
                    self._wal_restart_due.set()
        finally:
            conn.close()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writing connection, used by the loop and the writer thread in turn.
        writer_conn = self._writer_conn = self._connect_writer()
        self._writer = ThreadBoundExecutor("sqlite-writer", 1, lambda: writer_conn)
        self._readers = ThreadBoundExecutor("sqlite-reader", self._readers_count, self._connect)
        await self._writer.run(migrate)
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
            self._checkpointer = None
        for executor in (self._writer, self._readers):
            if executor is not None:
                executor.shutdown(lambda conn: conn.close())
        if self._writer_conn is not None:
            self._writer_conn.close()  # again if the thread had it: a no-op
        self._writer = self._readers = None
        self._writer_conn = None

    async def ping(self) -> bool:
        if self._readers is None:
            return False
        try:
            await self._readers.run(lambda conn: conn.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")

        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return work(SqliteReadTx(conn))
            finally:
                conn.execute("COMMIT")

        return await self._readers.run(_translated(run))

    async def write(self, work: Callable[[WriteTx], T]) -> T:
        if self._writer is None or self._writer_conn is None:
            raise StoreUnavailable("store is not open")

        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            return _finish(conn, work)

        if self._wal_restart_due.is_set():
            self._wal_restart_due.clear()
            await self._on_writer_thread(_restart_wal)
        conn = self._writer_conn
        if self.writes_on_loop and self._thread_writes == 0 and _begin_now(conn):
            return _translated(lambda conn: _finish(conn, work))(conn)
        return await self._on_writer_thread(_translated(run))

    async def _on_writer_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` on the writer thread; the process's writes meanwhile queue behind it."""
        assert self._writer is not None
        self._thread_writes += 1
        try:
            return await self._writer.run(work)
        finally:
            self._thread_writes -= 1


def _restart_wal(conn: sqlite3.Connection) -> None:
    """A RESTART checkpoint on the writing connection (the module's docstring says why).
    Readers that outlast the wait, or another process's write, leave the WAL as it is: the
    checkpoint thread asks again a second later."""
    conn.execute(f"PRAGMA busy_timeout={WAL_RESTART_WAIT_MS}")
    try:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _begin_now(conn: sqlite3.Connection) -> bool:
    """`BEGIN IMMEDIATE` without waiting: False if another process holds the write lock."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF in _BUSY:  # the primary code of an extended one
            return False
        raise StoreUnavailable(str(exc)) from exc
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return True


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (a no-op once it is).

    The local stack's services share one file and open it together. Switching a new file
    to WAL needs an exclusive lock, and SQLite refuses a contending switch with "database is
    locked" at once, without the busy timeout, or leaves the mode unchanged. So retry, for
    as long as a write would wait."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
            problem = "the journal mode did not change to WAL"
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _BUSY:
                raise
            problem = str(exc)
        if time.monotonic() >= deadline:
            raise StoreUnavailable(f"could not put the database in WAL mode: {problem}")
        time.sleep(0.005)


def _finish(conn: sqlite3.Connection, work: Callable[[WriteTx], T]) -> T:
    """Run `work` in the transaction just begun, and commit it (or roll it back)."""
    try:
        result = work(SqliteWriteTx(conn))
    except BaseException:
        # SQLite rolls the transaction back itself after some errors (a full disk, an I/O
        # error): a ROLLBACK then fails, "no transaction is active", and hid the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _translated(run: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Report lock and I/O trouble as `StoreUnavailable` (retryable), not as a crash."""

    def wrapper(conn: sqlite3.Connection) -> T:
        try:
            return run(conn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    return wrapper
