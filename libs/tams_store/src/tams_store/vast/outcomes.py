"""Command outcomes (exactly-once effect) and service info on VAST.

An outcome is stored in parts of at most `tables.PART_CHARS` characters: a bulk registration's
reply and events can reach hundreds of kilobytes, and VAST limits a request to 5 MiB and
sends wide rows column by column; small cells keep every insert a plain one.
"""

from __future__ import annotations

import json
import time

from ibis import _

from tams_schema.envelopes import Outcome
from tams_store.port import Doc
from tams_store.vast.ordered import first_rows
from tams_store.vast.tables import Tables, text_parts


def recorded_outcome(tables: Tables, command_id: str) -> Outcome | None:
    rows = tables["command_outcomes"].rows(
        ["part", "outcome", "recorded_ns"], _.command_id == command_id
    )
    if not rows:
        return None
    # Two consumers applying one redelivered command at once may both record an outcome
    # (when their transactions change no common row, both commit): the parts of one
    # recording share its time, and the first recording is read back whole. A duplicate
    # part of one recording is the same text.
    first = min(r["recorded_ns"] for r in rows)
    parts = {r["part"]: r["outcome"] for r in rows if r["recorded_ns"] == first}
    return Outcome.model_validate_json("".join(parts[i] for i in sorted(parts)))


def record_outcome(tables: Tables, command_id: str, outcome: Outcome) -> None:
    text = outcome.model_dump_json()
    now = time.time_ns()
    tables["command_outcomes"].insert(
        [
            {
                "command_id": command_id,
                "part": number,
                "outcome": part,
                "recorded_ns": now,
            }
            for number, part in enumerate(text_parts(text))
        ]
    )


def forget_outcomes(tables: Tables, recorded_before_ns: int, limit: int) -> int:
    """Forget up to `limit` outcomes recorded before the cutoff, oldest first (as the port
    says: `limit_rows` alone would take any of them), every part of each."""
    table = tables["command_outcomes"]
    found = first_rows(
        table, ["command_id"], _.recorded_ns < recorded_before_ns, "recorded_ns", limit
    )
    ids = sorted(set(found["command_id"].to_pylist()))
    if ids:
        table.delete(table.select_in(["command_id"], "command_id", ids, row_ids=True))
    return len(ids)


def get_service_info(tables: Tables) -> Doc:
    rows = tables["service_info"].rows(["doc"], _.id == 1)
    return dict(json.loads(rows[0]["doc"])) if rows else {}


def set_service_info(tables: Tables, info: Doc) -> None:
    tables["service_info"].upsert("id", {"id": 1, "doc": json.dumps(info)}, insert_only={})
