"""The webhooks part of the store port: registrations and delivery queues, for every adapter."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tams_schema.auth import Principal
from tams_store import Store, TagFilter
from tams_store.port import Delivery, QueuedEvent, WebhookQuery, WebhookRecord

from .docs import new_id


def webhook(url: str, **doc: Any) -> WebhookRecord:
    return WebhookRecord(
        id=new_id(),
        doc={"url": url, "events": ["flows/created"], **doc},
        status="created",
        api_key_value="sealed-secret",
    )


def event(positions: dict[str, int], event_id: str | None = None) -> QueuedEvent:
    return QueuedEvent(
        event_id=event_id or new_id(),
        payload={"event_type": "flows/deleted", "event": {"flow_id": new_id()}},
        positions=positions,
    )


async def listed_urls(store: Store, query: WebhookQuery) -> list[str]:
    found: list[str] = []
    page: str | None = None
    while True:
        current = WebhookQuery(**{**query.__dict__, "page": page})
        result = await store.read(lambda tx, q=current: tx.list_webhooks(q))
        assert len(result.items) <= query.limit
        found += [w["url"] for w in result.items]
        if result.next_key is None:
            return found
        page = result.next_key


async def test_webhook_round_trip_never_shows_the_key(store: Store) -> None:
    record = webhook("https://a.example/hook", api_key_name="X-Key", tags={"team": "news"})
    await store.write(lambda tx: tx.put_webhook(record))
    got = await store.read(lambda tx: tx.get_webhook(record.id))
    assert got == record
    assert got.view() == {
        "id": record.id,
        "url": "https://a.example/hook",
        "events": ["flows/created"],
        "api_key_name": "X-Key",
        "tags": {"team": "news"},
        "status": "created",
    }
    assert await store.read(lambda tx: tx.get_webhook(new_id())) is None
    assert [w.id for w in await store.read(lambda tx: tx.all_webhooks())] == [record.id]


async def test_a_webhook_keeps_its_owner(store: Store) -> None:
    """Deliveries are filtered by what the owner may read: an owner the store dropped would
    make a restricted user's webhook receive every event."""
    owner = Principal(name="news-desk", scopes=("read",), groups=("news",))
    record = replace(webhook("https://a.example/hook"), owner=owner)
    anonymous = webhook("https://b.example/hook")
    await store.write(lambda tx: (tx.put_webhook(record), tx.put_webhook(anonymous)))
    got = await store.read(lambda tx: tx.get_webhook(record.id))
    assert got is not None and got.owner == owner
    owners = {w.id: w.owner for w in await store.read(lambda tx: tx.all_webhooks())}
    assert owners == {record.id: owner, anonymous.id: None}
    # A replacement by someone else records them, not the first owner.
    other = Principal(name="sport-desk", scopes=("read", "write"), groups=("sport",))
    await store.write(lambda tx: tx.put_webhook(replace(record, owner=other, generation=2)))
    got = await store.read(lambda tx: tx.get_webhook(record.id))
    assert got is not None and got.owner == other


async def test_listing_sorts_by_url_filters_by_tag_and_pages(store: Store) -> None:
    records = [
        webhook("https://c.example/", tags={"team": ["news", "sport"]}),
        webhook("https://a.example/", tags={"team": "news"}),
        webhook("https://b.example/"),
        webhook("https://a.example/"),  # several webhooks may share a URL
    ]
    await store.write(lambda tx: [tx.put_webhook(r) for r in records])
    urls = await listed_urls(store, WebhookQuery(limit=1))
    assert urls == [
        "https://a.example/",
        "https://a.example/",
        "https://b.example/",
        "https://c.example/",
    ]
    assert await listed_urls(store, WebhookQuery(reverse_order=True, limit=3)) == urls[::-1]
    news = WebhookQuery(tags=TagFilter(values={"team": ["news"]}))
    assert await listed_urls(store, news) == ["https://a.example/", "https://c.example/"]
    untagged = WebhookQuery(tags=TagFilter(exists={"team": False}))
    assert await listed_urls(store, untagged) == ["https://a.example/", "https://b.example/"]
    first = await store.read(lambda tx: tx.list_webhooks(WebhookQuery(limit=2)))
    assert all("api_key_value" not in item for item in first.items)


async def test_replacing_a_webhook_replaces_its_tags(store: Store) -> None:
    record = webhook("https://a.example/", tags={"team": "news"})
    await store.write(lambda tx: tx.put_webhook(record))
    replaced = WebhookRecord(
        id=record.id, doc={"url": "https://z.example/", "events": []}, status="disabled"
    )
    await store.write(lambda tx: tx.put_webhook(replaced))
    assert await store.read(lambda tx: tx.get_webhook(record.id)) == replaced
    news = WebhookQuery(tags=TagFilter(values={"team": ["news"]}))
    assert await listed_urls(store, news) == []


async def test_status_changes_only_for_the_expected_generation(store: Store) -> None:
    record = webhook("https://a.example/")
    await store.write(lambda tx: tx.put_webhook(record))
    error = {"type": "DeliveryFailed", "summary": "gave up", "time": "2026-01-01T00:00:00Z"}
    assert not await store.write(
        lambda tx: tx.set_webhook_status(record.id, "error", error, generation=7)
    )
    assert await store.write(
        lambda tx: tx.set_webhook_status(record.id, "error", error, generation=1)
    )
    got = await store.read(lambda tx: tx.get_webhook(record.id))
    assert got is not None and got.status == "error" and got.error == error
    assert got.view()["error"] == error
    assert await store.write(
        lambda tx: tx.set_webhook_status(record.id, "started", None, generation=1)
    )
    got = await store.read(lambda tx: tx.get_webhook(record.id))
    assert got is not None and got.error is None and "error" not in got.view()
    assert not await store.write(
        lambda tx: tx.set_webhook_status(new_id(), "started", None, generation=1)
    )


async def test_queue_order_batches_and_deduplication(store: Store) -> None:
    a, b = new_id(), new_id()
    events = [event({a: i, b: i}) for i in range(5)]
    assert await store.write(lambda tx: [tx.queue_event(e, 100) for e in events]) == [True] * 5
    # A redelivered event (same id) is not queued again, even for other webhooks.
    again = event({a: 5, b: 5}, event_id=events[0].event_id)
    assert not await store.write(lambda tx: tx.queue_event(again, 101))
    first = await store.read(lambda tx: tx.pending_deliveries(a, 0, 10, 3))
    assert [d.seq for d in first] == [0, 1, 2]
    assert [d.event_id for d in first] == [e.event_id for e in events[:3]]
    assert first[0].payload == events[0].payload and first[0].webhook_id == a
    rest = await store.read(lambda tx: tx.pending_deliveries(a, 3, 10, 10))
    assert [d.seq for d in rest] == [3, 4]
    assert await store.read(lambda tx: tx.pending_deliveries(new_id(), 0, 10, 10)) == []
    assert await store.read(lambda tx: tx.delivery_queues()) == {a: (0, 4), b: (0, 4)}
    assert await store.read(lambda tx: tx.delivery_queues(b)) == {b: (0, 4)}
    assert await store.read(lambda tx: tx.delivery_queues(new_id())) == {}


async def test_finishing_and_dropping_deliveries(store: Store) -> None:
    a, b = new_id(), new_id()
    events = [event({a: i, b: i}) for i in range(3)]
    await store.write(lambda tx: [tx.queue_event(e, 100) for e in events])
    done = await store.read(lambda tx: tx.pending_deliveries(a, 0, 10, 2))
    await store.write(lambda tx: tx.finish_deliveries(done))
    await store.write(lambda tx: tx.finish_deliveries(done))  # twice: no effect
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 0, 10, 10))] == [2]
    # b still holds every event, so nothing can be forgotten yet.
    assert await store.write(lambda tx: tx.prune_queued_events(1000)) == 0
    assert await store.write(lambda tx: tx.drop_deliveries(b)) == 3
    assert await store.write(lambda tx: tx.drop_deliveries(b)) == 0
    assert await store.read(lambda tx: tx.delivery_queues()) == {a: (2, 2)}
    # The first two events are in no queue now: forgotten once old enough, not before.
    assert await store.write(lambda tx: tx.prune_queued_events(100)) == 0
    assert await store.write(lambda tx: tx.prune_queued_events(101)) == 2
    # A pruned id is new again; the one still queued still deduplicates.
    assert await store.write(lambda tx: tx.queue_event(event({a: 3}, events[0].event_id), 200))
    assert not await store.write(lambda tx: tx.queue_event(event({a: 4}, events[2].event_id), 200))
    pending = await store.read(lambda tx: tx.pending_deliveries(a, 0, 10, 10))
    assert [(d.seq, d.event_id) for d in pending] == [
        (2, events[2].event_id),
        (3, events[0].event_id),
    ]


async def test_deliveries_finished_out_of_order_leave_gaps(store: Store) -> None:
    """A webhook delivers different flows' events at once, so they finish out of order: a
    read passes the gaps, and stops at the end of its range."""
    a = new_id()
    events = [event({a: i}) for i in range(6)]
    await store.write(lambda tx: [tx.queue_event(e, 100) for e in events])
    queued = await store.read(lambda tx: tx.pending_deliveries(a, 0, 6, 6))
    await store.write(lambda tx: tx.finish_deliveries([queued[i] for i in (1, 2, 3)]))
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 0, 6, 1))] == [0]
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 1, 6, 1))] == [4]
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 0, 6, 3))] == [
        0,
        4,
        5,
    ]
    assert await store.read(lambda tx: tx.pending_deliveries(a, 1, 4, 10)) == []
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 0, 5, 10))] == [
        0,
        4,
    ]
    assert await store.read(lambda tx: tx.delivery_queues(a)) == {a: (0, 5)}


async def test_a_few_deliveries_left_far_apart_take_one_read(store: Store) -> None:
    """After a restart, a queue delivered out of order may hold a few events spread over
    thousands of positions: one read finds them, not one read per hundred positions."""
    a = new_id()
    events = [event({a: i}) for i in range(3000)]
    await store.write(lambda tx: [tx.queue_event(e, 100) for e in events])
    queued = await store.read(lambda tx: tx.pending_deliveries(a, 0, 3000, 3000))
    left = {7, 1499, 1500, 2999}
    await store.write(lambda tx: tx.finish_deliveries([d for d in queued if d.seq not in left]))
    found = await store.read(lambda tx: tx.pending_deliveries(a, 0, 3000, 100))
    assert [d.seq for d in found] == sorted(left)
    assert [d.event_id for d in found] == [events[i].event_id for i in sorted(left)]
    assert [d.seq for d in await store.read(lambda tx: tx.pending_deliveries(a, 8, 3000, 2))] == [
        1499,
        1500,
    ]


async def test_deleting_a_webhook_empties_its_queue(store: Store) -> None:
    record = webhook("https://a.example/")
    other = new_id()
    await store.write(lambda tx: tx.put_webhook(record))
    queued = event({record.id: 0, other: 0})
    await store.write(lambda tx: tx.queue_event(queued, 100))
    await store.write(lambda tx: tx.delete_webhook(record.id))
    assert await store.read(lambda tx: tx.get_webhook(record.id)) is None
    assert await store.read(lambda tx: tx.delivery_queues()) == {other: (0, 0)}
    delivery = Delivery(other, 0, queued.event_id, queued.payload)
    await store.write(lambda tx: tx.finish_deliveries([delivery]))
    assert await store.write(lambda tx: tx.prune_queued_events(101)) == 1
