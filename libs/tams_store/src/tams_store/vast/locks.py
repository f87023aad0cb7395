"""Key locks on VAST: materialised conflicts for decisions on the absence of an id.

VAST has no unique keys and two inserts never conflict, so two transactions that each read
that an id is free and insert it both commit (two rows of one id). Snapshot isolation only
refuses the second of two transactions that change one row, so a transaction that decides
on an id's absence also updates the `key_locks` row of the id's slot: two deciding on one id
change one row, one of them is refused and retried, and the retry sees the other's insert.
Different ids share a slot now and then: that costs a retry, never a wrong answer.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from tams_store.vast.tables import Tables

SLOTS = 65536


def slot_of(namespace: str, key: str) -> int:
    return zlib.crc32(f"{namespace}\0{key}".encode()) % SLOTS


def lock_keys(tables: Tables, namespace: str, keys: Iterable[str]) -> None:
    """Change the lock rows of these keys in this transaction."""
    slots = sorted({slot_of(namespace, key) for key in keys})
    if not slots:
        return
    table = tables["key_locks"]
    found = table.select_in(["slot", "taken"], "slot", slots, row_ids=True)
    rows = found.select(["taken"]).to_pylist()
    table.update_each(found, [{"taken": (r["taken"] or 0) + 1} for r in rows])
    missing = sorted(set(slots) - set(found["slot"].to_pylist()))
    # A slot the fill has not written (never, after the migration): created now, so the
    # next decision on its keys conflicts; a duplicate row is changed with the other.
    table.insert([{"slot": slot, "taken": 0} for slot in missing])


def fill_key_locks(tables: Tables) -> None:
    """The `Fill` of the step that adds `key_locks`: one row per slot."""
    table = tables["key_locks"]
    present = {r["slot"] for r in table.rows(["slot"], scan=True)}
    table.insert([{"slot": s, "taken": 0} for s in range(SLOTS) if s not in present])
