"""From the events topic into the webhooks' queues: match, queue durably, wake the workers.

For each fetched batch of events: find the enabled webhooks that want each event, and write
the event with one queue position per matching webhook into the store, all in one
transaction; the event consumer commits the Kafka offsets only after that. An event id seen
before (a redelivery, or an event a command service re-published) is not queued again. Then
the queued deliveries are handed to the workers in memory, which wakes them at once.

Events that no webhook wants are not written at all. Matching and queueing hold the
dispatcher's `match_lock`, as applying registration commands does (app.py): a webhook
replaced by another owner must not be handed events matched for the previous one, which its
replacement dropped from the queue (registrations.replace_webhook).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter

from tams_runtime.event_consumer import ReceivedEvent
from tams_store import WriteTx
from tams_store.port import ObjectRecord, QueuedEvent
from tams_webhooks.dispatch import Dispatcher, QueuedItem
from tams_webhooks.payloads import EventBody

EVENTS_QUEUED = Counter(
    "tams_webhook_events_queued_total", "TAMS events queued for at least one webhook"
)
DELIVERIES_QUEUED = Counter("tams_webhook_deliveries_queued_total", "Deliveries queued")

Plan = list[tuple[ReceivedEvent, list[str]]]
Queued = list[tuple[EventBody, dict[str, int]]]


class EventRouter:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def wanted_types(self) -> frozenset[str]:
        """Event types some enabled webhook wants: the event consumer skips the others
        without parsing them (with no webhooks, every event: none would be delivered)."""
        return self.dispatcher.subscriptions.wanted_types()

    async def __call__(self, events: Sequence[ReceivedEvent]) -> None:
        async with self.dispatcher.match_lock:
            await self._route(events)

    async def _route(self, events: Sequence[ReceivedEvent]) -> None:
        d = self.dispatcher
        plan: Plan = []
        for received in events:
            candidates = d.subscriptions.candidates(received.event)
            wanted = [i for i, sub in candidates if sub.wants(received.event)]
            if wanted:
                plan.append((received, wanted))
        if not plan:
            return
        tails = {}
        for _, wanted in plan:
            for webhook_id in wanted:
                queue = d.queues.get(webhook_id)
                tails[webhook_id] = queue.next_seq if queue is not None else 0
        queued_ns = time.time_ns()
        next_seqs, queued = await d.store.write(lambda tx: _queue(tx, plan, tails, queued_ns))
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


def _queue(
    tx: WriteTx, plan: Plan, tails: dict[str, int], queued_ns: int
) -> tuple[dict[str, int], Queued]:
    """Runs in the store transaction: positions are handed out only to events queued now, so
    each webhook's positions stay consecutive."""
    next_seqs = dict(tails)
    queued: Queued = []
    for received, wanted in plan:
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
