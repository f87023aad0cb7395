"""Webhook registrations and their delivery queues in SQLite.

Registrations are JSON documents next to the columns the listing sorts on (`url`, `id`), with
tags in their own table like flows and sources. A queue is rows of (webhook, seq, event):
positions are handed out consecutively per webhook by the webhooks service, so the next
deliveries are an index range scan on the primary key. The event payload is stored once,
however many webhooks it goes to; `remaining` counts the queues still holding it, and the row
stays (without its payload) after the last delivery so a redelivered event id is recognised.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

from tams_schema.auth import Principal
from tams_store.documents import tag_rows
from tams_store.port import (
    Delivery,
    Doc,
    Page,
    QueuedEvent,
    WebhookQuery,
    WebhookRecord,
    WebhookStatus,
)
from tams_store.sqlite import cursor
from tams_store.sqlite.catalog import SortSpec, tag_clauses

_COLUMNS = "id, url, status, generation, doc, error, api_key_value, owner, signing_secret"
URL_SORT = SortSpec(("webhooks.url", "webhooks.id"), (str, str), descending=False)


def _record(row: sqlite3.Row) -> WebhookRecord:
    return WebhookRecord(
        id=row["id"],
        doc=json.loads(row["doc"]),
        status=row["status"],
        error=json.loads(row["error"]) if row["error"] else None,
        api_key_value=row["api_key_value"],
        generation=row["generation"],
        owner=Principal.model_validate_json(row["owner"]) if row["owner"] else None,
        signing_secret=row["signing_secret"],
    )


def get_webhook(conn: sqlite3.Connection, webhook_id: str) -> WebhookRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
    return None if row is None else _record(row)


def all_webhooks(conn: sqlite3.Connection) -> list[WebhookRecord]:
    return [_record(row) for row in conn.execute(f"SELECT {_COLUMNS} FROM webhooks ORDER BY id")]


def list_webhooks(conn: sqlite3.Connection, query: WebhookQuery) -> Page:
    where, params = tag_clauses(query.tags, "webhooks", "webhook_id", "webhook_tags")
    if query.page is not None:
        where.append(URL_SORT.after(query.reverse_order))
        params.extend(URL_SORT.decode(query.page))
    sql = (
        f"SELECT {_COLUMNS}, {URL_SORT.select()} FROM webhooks"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {URL_SORT.order_by(query.reverse_order)} LIMIT ?"
    )
    rows = conn.execute(sql, [*params, query.limit + 1]).fetchall()
    next_key = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_key = cursor.encode([rows[-1]["k0"], rows[-1]["k1"]])
    return Page(items=[_record(r).view() for r in rows], limit=query.limit, next_key=next_key)


def put_webhook(conn: sqlite3.Connection, record: WebhookRecord) -> None:
    conn.execute(
        f"INSERT INTO webhooks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET url = excluded.url, status = excluded.status, "
        "generation = excluded.generation, doc = excluded.doc, error = excluded.error, "
        "api_key_value = excluded.api_key_value, owner = excluded.owner, "
        "signing_secret = excluded.signing_secret",
        (
            record.id,
            record.url,
            record.status,
            record.generation,
            json.dumps(record.doc),
            json.dumps(record.error) if record.error is not None else None,
            record.api_key_value,
            record.owner.model_dump_json() if record.owner is not None else None,
            record.signing_secret,
        ),
    )
    conn.execute("DELETE FROM webhook_tags WHERE webhook_id = ?", (record.id,))
    conn.executemany(
        "INSERT INTO webhook_tags (webhook_id, name, value) VALUES (?, ?, ?)",
        tag_rows(record.id, record.doc.get("tags") or {}),
    )


def delete_webhook(conn: sqlite3.Connection, webhook_id: str) -> None:
    drop_deliveries(conn, webhook_id)
    conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))


def set_webhook_status(
    conn: sqlite3.Connection,
    webhook_id: str,
    status: WebhookStatus,
    error: Doc | None,
    generation: int,
) -> bool:
    changed = conn.execute(
        "UPDATE webhooks SET status = ?, error = ? WHERE id = ? AND generation = ?",
        (status, json.dumps(error) if error is not None else None, webhook_id, generation),
    )
    return changed.rowcount > 0


# --- delivery queues ---------------------------------------------------------------------


def queue_event(conn: sqlite3.Connection, event: QueuedEvent, queued_ns: int) -> bool:
    inserted = conn.execute(
        "INSERT INTO webhook_events (event_id, payload, remaining, queued_ns) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (event.event_id, json.dumps(event.payload), len(event.positions), queued_ns),
    )
    if inserted.rowcount == 0:
        return False
    conn.executemany(
        "INSERT INTO webhook_deliveries (webhook_id, seq, event_id) VALUES (?, ?, ?)",
        [(webhook_id, seq, event.event_id) for webhook_id, seq in event.positions.items()],
    )
    return True


def pending_deliveries(
    conn: sqlite3.Connection, webhook_id: str, from_seq: int, until_seq: int, limit: int
) -> list[Delivery]:
    rows = conn.execute(
        "SELECT d.seq AS seq, d.event_id AS event_id, e.payload AS payload "
        "FROM webhook_deliveries d JOIN webhook_events e ON e.event_id = d.event_id "
        "WHERE d.webhook_id = ? AND d.seq >= ? AND d.seq < ? ORDER BY d.seq LIMIT ?",
        (webhook_id, from_seq, until_seq, limit),
    )
    return [
        Delivery(webhook_id, row["seq"], row["event_id"], json.loads(row["payload"]))
        for row in rows
    ]


def delivery_queues(
    conn: sqlite3.Connection, webhook_id: str | None = None
) -> dict[str, tuple[int, int]]:
    where = "" if webhook_id is None else "WHERE webhook_id = ? "
    rows = conn.execute(
        "SELECT webhook_id, min(seq) AS first, max(seq) AS last FROM webhook_deliveries "
        f"{where}GROUP BY webhook_id",
        () if webhook_id is None else (webhook_id,),
    )
    return {row["webhook_id"]: (row["first"], row["last"]) for row in rows}


def _release(conn: sqlite3.Connection, event_ids: Counter[str]) -> None:
    """These events left this many queues: count down, and drop payloads nobody needs."""
    conn.executemany(
        "UPDATE webhook_events SET remaining = remaining - ?, "
        "payload = CASE WHEN remaining - ? <= 0 THEN NULL ELSE payload END WHERE event_id = ?",
        [(n, n, event_id) for event_id, n in event_ids.items()],
    )


# Rows per DELETE statement (3 parameters each, well under SQLite's parameter limit).
_FINISH_CHUNK = 300


def finish_deliveries(conn: sqlite3.Connection, deliveries: list[Delivery]) -> None:
    released: Counter[str] = Counter()
    for offset in range(0, len(deliveries), _FINISH_CHUNK):
        chunk = deliveries[offset : offset + _FINISH_CHUNK]
        rows = ",".join("(?, ?, ?)" for _ in chunk)
        # Only rows still queued come back, so nothing is released twice.
        gone = conn.execute(
            "DELETE FROM webhook_deliveries WHERE (webhook_id, seq, event_id) IN "
            f"(VALUES {rows}) RETURNING event_id",
            [v for d in chunk for v in (d.webhook_id, d.seq, d.event_id)],
        ).fetchall()
        released.update(row[0] for row in gone)
    _release(conn, released)


def drop_deliveries(conn: sqlite3.Connection, webhook_id: str) -> int:
    rows: list[Any] = conn.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ? RETURNING event_id", (webhook_id,)
    ).fetchall()
    _release(conn, Counter(row[0] for row in rows))
    return len(rows)


def prune_queued_events(conn: sqlite3.Connection, queued_before_ns: int) -> int:
    pruned = conn.execute(
        "DELETE FROM webhook_events WHERE remaining <= 0 AND queued_ns < ?", (queued_before_ns,)
    )
    return pruned.rowcount
