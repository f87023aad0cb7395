"""Transaction objects of the SQLite adapter: the port's ReadTx and WriteTx."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from tams_schema.envelopes import Outcome

Doc = dict[str, Any]


class SqliteReadTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get_service_info(self) -> Doc:
        row = self.conn.execute("SELECT doc FROM service_info WHERE id = 1").fetchone()
        return dict(json.loads(row["doc"])) if row else {}


class SqliteWriteTx(SqliteReadTx):
    def recorded_outcome(self, command_id: str) -> Outcome | None:
        row = self.conn.execute(
            "SELECT outcome FROM command_outcomes WHERE command_id = ?", (command_id,)
        ).fetchone()
        return Outcome.model_validate_json(row["outcome"]) if row else None

    def record_outcome(self, command_id: str, outcome: Outcome) -> None:
        self.conn.execute(
            "INSERT INTO command_outcomes (command_id, outcome, recorded_ns) VALUES (?, ?, ?)",
            (command_id, outcome.model_dump_json(), time.time_ns()),
        )

    def set_service_info(self, info: Doc) -> None:
        self.conn.execute(
            "INSERT INTO service_info (id, doc) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            (json.dumps(info),),
        )
