"""From the events topic into the webhooks' queues: match, queue durably, wake the workers.

For each fetched batch of events: find the enabled webhooks that want each event, and write
the event with one queue position per matching webhook into the store, all in one
transaction; the event consumer commits the Kafka offsets only after that. An event id seen
before (a redelivery, or an event a command service re-published) is not queued again. Then
the queued deliveries are handed to the workers in memory, which wakes them at once.

Events that no webhook wants are not written at all. Nor are deliveries for a webhook whose
owner changed after the match: the transaction checks each matched webhook's owner, since a
replacement by another owner may have been applied between the match and the write.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter

from tams_runtime.event_consumer import ReceivedEvent
from tams_schema.auth import Principal
from tams_store import WriteTx
from tams_store.port import ObjectRecord, QueuedEvent
from tams_webhooks.dispatch import Dispatcher, QueuedItem
from tams_webhooks.payloads import EventBody

EVENTS_QUEUED = Counter(
    "tams_webhook_events_queued_total", "TAMS events queued for at least one webhook"
)
DELIVERIES_QUEUED = Counter("tams_webhook_deliveries_queued_total", "Deliveries queued")

Plan = list[tuple[ReceivedEvent, list[str]]]
# The owner of each matched webhook when it was matched.
Owners = dict[str, Principal | None]
Queued = list[tuple[EventBody, dict[str, int]]]


class EventRouter:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def wanted_types(self) -> frozenset[str]:
        """Event types some enabled webhook wants: the event consumer skips the others
        without parsing them (with no webhooks, every event: none would be delivered)."""
        wanted: frozenset[str] = frozenset()
        for subscription in self.dispatcher.subscriptions.values():
            wanted |= subscription.events
        return wanted

    async def __call__(self, events: Sequence[ReceivedEvent]) -> None:
        d = self.dispatcher
        plan: Plan = []
        for received in events:
            wanted = [i for i, sub in d.subscriptions.items() if sub.wants(received.event)]
            if wanted:
                plan.append((received, wanted))
        if not plan:
            return
        tails = {}
        owners: Owners = {}
        for _, wanted in plan:
            for webhook_id in wanted:
                queue = d.queues.get(webhook_id)
                tails[webhook_id] = queue.next_seq if queue is not None else 0
                owners[webhook_id] = d.records[webhook_id].owner
        queued_ns = time.time_ns()
        next_seqs, queued = await d.store.write(
            lambda tx: queue_deliveries(tx, plan, tails, owners, queued_ns)
        )
        now = time.monotonic()
        for webhook_id, next_seq in next_seqs.items():
            queue = d.queues.get(webhook_id)
            if queue is not None:
                queue.next_seq = max(queue.next_seq, next_seq)
        for body, positions in queued:
            EVENTS_QUEUED.inc()
            DELIVERIES_QUEUED.inc(len(positions))
            for webhook_id, seq in positions.items():
                queue = d.queues.get(webhook_id)
                if queue is not None:
                    queue.push(QueuedItem(seq, body, now))


def queue_deliveries(
    tx: WriteTx, plan: Plan, tails: dict[str, int], owners: Owners, queued_ns: int
) -> tuple[dict[str, int], Queued]:
    """Runs in the store transaction: positions are handed out only to events queued now, so
    each webhook's positions stay consecutive."""
    stale: set[str] = set()
    for webhook_id, owner in owners.items():
        current = tx.get_webhook(webhook_id)
        if current is None or current.owner != owner:
            stale.add(webhook_id)
    next_seqs = dict(tails)
    queued: Queued = []
    for received, matched in plan:
        wanted = [webhook_id for webhook_id in matched if webhook_id not in stale]
        if not wanted:
            continue
        event_id = received.event.event_id
        positions = {webhook_id: next_seqs[webhook_id] for webhook_id in wanted}
        if not tx.queue_event(QueuedEvent(event_id, received.payload, positions), queued_ns):
            continue
        for webhook_id in wanted:
            next_seqs[webhook_id] += 1
        body = EventBody(event_id, received.payload, received.trace_context)
        ids = body.object_ids()
        if ids:
            # Read once here for all the webhooks; URLs are signed from them at delivery.
            objects: dict[str, ObjectRecord] = tx.get_objects(ids)
            body.objects = objects
        queued.append((body, positions))
    return next_seqs, queued
