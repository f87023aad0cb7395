"""Runs a synchronous store adapter off the event loop.

Store SDKs (sqlite3, vastdb) are blocking. All writes go through one writer thread (SQLite
runs those that can start at once on the loop, tams_store.sqlite.database), so the
writes of one process are serialised in arrival order and never contend with each other;
reads use a small pool of threads, each with its own connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
Conn = TypeVar("Conn")


class ThreadBoundExecutor(Generic[Conn]):
    """A thread pool whose threads each own one connection made by `connect`."""

    def __init__(self, name: str, workers: int, connect: Callable[[], Conn]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._connections: list[Conn] = []
        self._lock = threading.Lock()

    def _connection(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def run(self, work: Callable[[Conn], T]) -> T:
        loop = asyncio.get_running_loop()
        # The caller's context (trace span, log correlation id) follows the work.
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._pool, lambda: context.run(lambda: work(self._connection()))
        )

    def shutdown(self, close: Callable[[Conn], None]) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                close(conn)
            self._connections.clear()
