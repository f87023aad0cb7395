"""Webhook registrations and their delivery queues on VAST.

Registrations are JSON documents next to the columns the listing sorts on (`url`, `id`),
with tags one row per value as for flows; the listing sorts key columns here (VAST has no
ORDER BY) and then reads the page's documents. `generation` is the version a reader takes
when racing inserts left two rows of one id.

A queue is rows of (webhook, seq, event) in a table sorted on (webhook_id, seq). Positions
are handed out consecutively per webhook by the webhooks service, so the next deliveries
are the range [from_seq, from_seq + limit): one pruned select, whatever the queue's length;
where deliveries finished out of order left gaps, bounded selects (`ordered.first_rows`)
find the next ones, however far apart.
The payload is stored once per event, however many webhooks it goes to, cut into cells of
`PART_CHARS` (the first in `webhook_events`, any further ones in `webhook_event_parts`);
`remaining` counts the queues still holding the event, and the row stays without its
payload after the last delivery so a redelivered event id is recognised until pruned. A
queue's first and last positions are found with bounded selects (`ordered.first_rows`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import pyarrow as pa
from ibis import _

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
from tams_store.vast.catalog import OwnerFilter, apply_tag_filter
from tams_store.vast.listing import Ordering, newest_per_id, page_of
from tams_store.vast.ordered import first_distinct, first_rows
from tams_store.vast.tables import Predicate, Row, Tables, all_of, take, text_parts

_COLUMNS = [
    "id",
    "url",
    "status",
    "generation",
    "doc",
    "error",
    "api_key_value",
    "owner",
    "signing_secret",
]

URL_ORDER = Ordering(
    columns=("url", "id"),
    key=lambda row: (row["url"], row["id"]),
    descending=False,
    types=(str, str),
    bound_column="url",
)


def _record(row: Row) -> WebhookRecord:
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


def _newest(rows: list[Row]) -> list[Row]:
    return newest_per_id(rows, "generation")


def get_webhook(tables: Tables, webhook_id: str) -> WebhookRecord | None:
    rows = _newest(tables["webhooks"].rows(_COLUMNS, _.id == webhook_id))
    return _record(rows[0]) if rows else None


def all_webhooks(tables: Tables) -> list[WebhookRecord]:
    """Every registration (the webhooks service's working set: a few per deployment)."""
    rows = _newest(tables["webhooks"].rows(_COLUMNS, None, scan=True))
    return [_record(r) for r in sorted(rows, key=lambda r: r["id"])]


def list_webhooks(tables: Tables, query: WebhookQuery) -> Page:
    """Sorted by `url` then id, A→Z unless `reverse_order`; keyset pages."""
    owners = OwnerFilter()
    apply_tag_filter(tables, "webhook_tags", "webhook_id", query.tags, owners)
    if owners.impossible:
        return Page(items=[], limit=query.limit)
    after = URL_ORDER.decode(query.page) if query.page is not None else None
    where = all_of(
        owners.pushdown(),
        None if after is None else URL_ORDER.bound(after, query.reverse_order),
    )
    rows = [
        r
        for r in _newest(tables["webhooks"].rows(["id", "url", "generation"], where, scan=True))
        if owners.admits(r["id"])
    ]
    chosen, next_key = page_of(rows, URL_ORDER, query.reverse_order, query.page, query.limit)
    found = _newest(tables["webhooks"].rows_in(_COLUMNS, "id", [r["id"] for r in chosen]))
    by_id = {r["id"]: r for r in found}
    items = [_record(by_id[r["id"]]).view() for r in chosen if r["id"] in by_id]
    return Page(items=items, limit=query.limit, next_key=next_key)


def put_webhook(tables: Tables, record: WebhookRecord) -> None:
    tables["webhooks"].upsert(
        "id",
        {
            "id": record.id,
            "url": record.url,
            "status": record.status,
            "generation": record.generation,
            "doc": json.dumps(record.doc),
            "error": json.dumps(record.error) if record.error is not None else None,
            "api_key_value": record.api_key_value,
            "owner": record.owner.model_dump_json() if record.owner is not None else None,
            "signing_secret": record.signing_secret,
        },
        insert_only={},
    )
    tags = tables["webhook_tags"]
    tags.delete_where(_.webhook_id == record.id)
    tags.insert(
        [
            {"webhook_id": owner, "name": name, "value": value}
            for owner, name, value in tag_rows(record.id, record.doc.get("tags") or {})
        ]
    )


def delete_webhook(tables: Tables, webhook_id: str) -> None:
    drop_deliveries(tables, webhook_id)
    tables["webhook_tags"].delete_where(_.webhook_id == webhook_id)
    tables["webhooks"].delete_where(_.id == webhook_id)


def set_webhook_status(
    tables: Tables, webhook_id: str, status: WebhookStatus, error: Doc | None, generation: int
) -> bool:
    """Set status and error only if the registration is still at `generation`."""
    webhooks = tables["webhooks"]
    found = webhooks.select(
        ["id"], (_.id == webhook_id) & (_.generation == generation), row_ids=True
    )
    if found.num_rows == 0:
        return False
    webhooks.update(
        found, {"status": status, "error": json.dumps(error) if error is not None else None}
    )
    return True


# --- delivery queues -------------------------------------------------------------------------


def queue_event(tables: Tables, event: QueuedEvent, queued_ns: int) -> bool:
    """Queue the event unless its id was queued before (False). An event already queued at
    exactly these positions was queued by this very work, in an attempt whose commit landed
    although it seemed to fail: that is answered True, as the attempt was, so the caller
    moves its positions on (a real redelivery always comes with later positions)."""
    events = tables["webhook_events"]
    if events.select(["event_id"], _.event_id == event.event_id, limit_rows=1).num_rows:
        return _queued_at(tables, event)
    parts = text_parts(json.dumps(event.payload))
    events.insert(
        [
            {
                "event_id": event.event_id,
                "payload": parts[0],
                "parts": len(parts),
                "remaining": len(event.positions),
                "queued_ns": queued_ns,
            }
        ]
    )
    tables["webhook_event_parts"].insert(
        [
            {"event_id": event.event_id, "part": number, "payload": text}
            for number, text in enumerate(parts)
            if number > 0
        ]
    )
    tables["webhook_deliveries"].insert(
        [
            {"webhook_id": webhook_id, "seq": seq, "event_id": event.event_id}
            for webhook_id, seq in event.positions.items()
        ]
    )
    return True


def _queued_at(tables: Tables, event: QueuedEvent) -> bool:
    """Whether every position of `event` holds this very event."""
    if not event.positions:
        return False
    found = tables["webhook_deliveries"].rows_in(
        ["webhook_id", "seq", "event_id"],
        "webhook_id",
        list(event.positions),
        _.seq.isin(sorted(set(event.positions.values()))),
    )
    held = {(r["webhook_id"], r["seq"]) for r in found if r["event_id"] == event.event_id}
    return held == set(event.positions.items())


def _payloads(tables: Tables, event_ids: Sequence[str]) -> dict[str, Doc]:
    rows = tables["webhook_events"].rows_in(["event_id", "payload", "parts"], "event_id", event_ids)
    texts = {r["event_id"]: [r["payload"] or ""] for r in rows}
    longer = [r["event_id"] for r in rows if (r["parts"] or 1) > 1]
    if longer:
        rest = tables["webhook_event_parts"].rows_in(
            ["event_id", "part", "payload"], "event_id", longer
        )
        for row in sorted(rest, key=lambda r: (r["event_id"], r["part"])):
            texts[row["event_id"]].append(row["payload"])
    return {event_id: json.loads("".join(parts)) for event_id, parts in texts.items()}


def pending_deliveries(
    tables: Tables, webhook_id: str, from_seq: int, until_seq: int, limit: int
) -> list[Delivery]:
    deliveries = tables["webhook_deliveries"]

    def within(end: int) -> Predicate:
        return (_.webhook_id == webhook_id) & (_.seq >= from_seq) & (_.seq < end)

    # Without gaps the next `limit` positions hold them: one pruned select.
    rows = deliveries.rows(["seq", "event_id"], within(min(until_seq, from_seq + limit)))
    if len({r["seq"] for r in rows}) < limit and from_seq + limit < until_seq:
        # Gaps (deliveries finished out of order): the first `limit` further on.
        found = first_rows(deliveries, ["event_id"], within(until_seq), "seq", limit)
        rows = found.select(["seq", "event_id"]).to_pylist()
    # A position written twice (a retried insert) is one delivery.
    rows = sorted({r["seq"]: r for r in rows}.values(), key=lambda r: r["seq"])[:limit]
    payloads = _payloads(tables, [r["event_id"] for r in rows])
    return [
        Delivery(webhook_id, r["seq"], r["event_id"], payloads[r["event_id"]])
        for r in rows
        if r["event_id"] in payloads
    ]


def delivery_queues(tables: Tables, webhook_id: str | None = None) -> dict[str, tuple[int, int]]:
    """The first and last queued position of every webhook with queued deliveries."""
    deliveries = tables["webhook_deliveries"]
    if webhook_id is None:
        owners = first_distinct(deliveries, "webhook_id", None, None)
    else:
        owners = [webhook_id]
    queues: dict[str, tuple[int, int]] = {}
    for owner in owners:
        ends = [
            first_rows(deliveries, [], _.webhook_id == owner, "seq", 1, descending=descending)
            for descending in (False, True)
        ]
        if ends[0].num_rows and ends[1].num_rows:
            queues[owner] = (ends[0]["seq"][0].as_py(), ends[1]["seq"][0].as_py())
    return queues


def _release(tables: Tables, released: Counter[str]) -> None:
    """These events left this many queues: count down, and drop payloads nobody needs."""
    if not released:
        return
    events = tables["webhook_events"]
    columns = ["event_id", "remaining", "parts"]
    found = events.select_in(columns, "event_id", list(released), row_ids=True)
    rows = found.select(columns).to_pylist()
    left = [(r["remaining"] or 0) - released[r["event_id"]] for r in rows]
    still = [i for i, n in enumerate(left) if n > 0]
    done = [i for i, n in enumerate(left) if n <= 0]
    events.update_each(take(found, still), [{"remaining": left[i]} for i in still])
    events.update_each(take(found, done), [{"remaining": left[i], "payload": None} for i in done])
    extra = [rows[i]["event_id"] for i in done if (rows[i]["parts"] or 1) > 1]
    if extra:
        parts = tables["webhook_event_parts"]
        parts.delete(parts.select_in(["event_id"], "event_id", extra, row_ids=True))


def finish_deliveries(tables: Tables, deliveries: Sequence[Delivery]) -> None:
    """Remove these deliveries from their queues; ones already gone are ignored."""
    table = tables["webhook_deliveries"]
    wanted: dict[str, set[tuple[int, str]]] = {}
    for d in deliveries:
        wanted.setdefault(d.webhook_id, set()).add((d.seq, d.event_id))
    released: Counter[str] = Counter()
    for webhook_id, items in wanted.items():
        columns = ["seq", "event_id"]
        found = table.select_in(
            columns, "seq", [seq for seq, _e in items], _.webhook_id == webhook_id, row_ids=True
        )
        rows = found.select(columns).to_pylist()
        # Only rows still queued are found, so nothing is released twice.
        hits = [i for i, r in enumerate(rows) if (r["seq"], r["event_id"]) in items]
        table.delete(take(found, hits))
        released.update(rows[i]["event_id"] for i in hits)
    _release(tables, released)


def drop_deliveries(tables: Tables, webhook_id: str) -> int:
    """Empty one webhook's queue; returns how many deliveries were dropped."""
    table = tables["webhook_deliveries"]
    found = table.select(["event_id"], _.webhook_id == webhook_id, row_ids=True)
    table.delete(found)
    _release(tables, Counter(found["event_id"].to_pylist()))
    return int(found.num_rows)


def prune_queued_events(tables: Tables, queued_before_ns: int) -> int:
    """Forget events queued before this time that no queue holds any more."""
    events = tables["webhook_events"]
    found: pa.Table = events.select(
        ["event_id"],
        (_.remaining <= 0) & (_.queued_ns < queued_before_ns),
        row_ids=True,
        scan=True,
    )
    events.delete(found)
    return len(set(found["event_id"].to_pylist()))
