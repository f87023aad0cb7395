"""Versioned, additive schema migrations for the SQLite store.

`PRAGMA user_version` records how many steps were applied. Steps only ever add tables,
columns and indexes; a released step is never edited, a change is a new step.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[list[str]] = [
    # 1: command outcomes (idempotency) and service info.
    [
        """CREATE TABLE command_outcomes (
            command_id TEXT PRIMARY KEY,
            outcome TEXT NOT NULL,
            recorded_ns INTEGER NOT NULL
        )""",
        """CREATE TABLE service_info (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            doc TEXT NOT NULL
        )""",
    ],
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending steps, each in its own transaction; returns the resulting version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current >= number:
                conn.execute("COMMIT")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
