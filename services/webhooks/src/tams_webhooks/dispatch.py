"""Delivery: one worker per enabled webhook, draining that webhook's queue in order.

The queue itself lives in the store (the outbox, written by `router.EventRouter` before the
Kafka offset is committed), so nothing queued is lost when the process dies. In memory each
webhook has a `WebhookQueue`: the next position to hand out, and the deliveries queued
recently (the hot path: a worker takes them from memory and never waits on a store read or a
polling interval; it reads the store only after a restart, or when it has fallen behind).

A worker takes its webhook's queue in order and delivers the events of one flow (or one
source) one at a time, in that order, and the events of different flows at the same time, up
to `max_in_flight_per_webhook`: one webhook watching every flow of a busy plant is not held
to one receiver round trip per event. Taken and unfinished events are kept in a lane per
flow or source; at most `window` of them, so a flow whose receiver keeps failing holds up
the others only once the window is full of its events. Until a delivery to the receiver
succeeds, and again from a failed attempt to the next success, events go one at a time: a
receiver that hangs holds one slot of the sender's shared pool, not one per flow.

A failure is retried with exponential backoff and full jitter; after `max_attempts` the
webhook goes to `error`, with an `error` object saying why, and its queue is emptied
(re-enabling starts with new events: the receiver must resynchronise from the API anyway,
since events that happened while the webhook was in error were never queued for it). So does
a webhook whose receiver answers, but more slowly than events come, once more than
`max_backlog_events` wait for it. A slow or dead receiver only holds up its own webhook.
Finished deliveries are removed from the store in batches; a crash before that removal
redelivers them (at-least-once; receivers deduplicate on the `Tams-Event-Id` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from typing import TypeVar

from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from tams_runtime.authz import AccessPolicy
from tams_runtime.metrics import LATENCY_BUCKETS, WEBHOOK_DELIVERIES, WEBHOOK_DELIVERY_SECONDS
from tams_runtime.secret_box import SecretBox, SecretUnavailable
from tams_runtime.settings import WebhookSettings
from tams_runtime.tracing import extract_trace_context, inject_trace_context, tracer
from tams_schema.envelopes import ErrorBody
from tams_store import Store, WriteTx
from tams_store.port import Delivery, WebhookRecord
from tams_webhooks.matching import Reader, Subscription, SubscriptionIndex
from tams_webhooks.payloads import EventBody, Payloads, options_key
from tams_webhooks.sender import Attempt, Sender
from tams_webhooks.signing import signature_headers, signing_key

log = logging.getLogger(__name__)
T = TypeVar("T")

ENABLED = ("created", "started")
# Within one generation (between two PUTs) only workers change a status, and only forward.
PROGRESS = {"created": 0, "disabled": 0, "started": 1, "error": 2}
# Recently queued deliveries kept in memory per webhook; beyond this a worker that has fallen
# behind reads them back from the store instead.
HOT_LIMIT = 1000
READ_BATCH = 100
# The room a worker needs to take events: one from memory, half a batch from the store.
ROOM_TO_TAKE = (1, READ_BATCH // 2)

QUEUE_TO_DELIVERY_SECONDS = Histogram(
    "tams_webhook_queue_to_delivery_seconds",
    "From an event entering the queues to its successful delivery (hot path)",
    buckets=LATENCY_BUCKETS,
)
# tams_runtime.metrics: delivered (2xx), rejected (refused by the egress policy, never
# retried), failed (any other failure, retried), dropped (given up after the last attempt).
DELIVERED = WEBHOOK_DELIVERIES.labels("delivered")
ATTEMPT_FAILED = WEBHOOK_DELIVERIES.labels("failed")
ATTEMPT_REJECTED = WEBHOOK_DELIVERIES.labels("rejected")
DELIVERY_DROPPED = WEBHOOK_DELIVERIES.labels("dropped")
WEBHOOKS_BY_STATUS = Gauge("tams_webhooks", "Registered webhooks by status", ["status"])
# Per webhook would be a label per registration (unbounded): the worst one, and the sum, show
# a receiver that keeps up too slowly while answering 2xx (its status stays `started`).
BACKLOG_MAX = Gauge(
    "tams_webhook_backlog_max_events", "Events queued and not yet delivered, most for one webhook"
)
BACKLOG_TOTAL = Gauge(
    "tams_webhook_backlog_events", "Events queued and not yet delivered, over all webhooks"
)
WEBHOOKS_FAILED = Counter(
    "tams_webhooks_failed_total", "Webhooks put into the error state after failed deliveries"
)
# `tams_webhook_deliveries_total{outcome="dropped"}` counts webhooks given up; this, the
# events they will never receive (the one given up on and those queued behind it).
EVENTS_DROPPED = Counter(
    "tams_webhook_events_dropped_total",
    "Events never to be delivered: queued for a webhook when it was put into the error state",
)


def full_jitter(attempt: int, base_s: float, max_s: float) -> float:
    """The wait before retry `attempt` (1 = after the first failure)."""
    return random.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))


def retry_wait(attempt: int, failed: Attempt, settings: WebhookSettings) -> float:
    """The wait before retry `attempt`: the backoff, or longer when the receiver asked for it
    (`Retry-After` on a 429 or 503), up to `retry_max_s`, so a receiver cannot hold its
    queue for longer than the longest wait the operator allows between attempts."""
    wait = full_jitter(attempt, settings.retry_base_s, settings.retry_max_s)
    if failed.retry_after_s is not None:
        wait = max(wait, min(failed.retry_after_s, settings.retry_max_s))
    return wait


@dataclass(frozen=True)
class QueuedItem:
    seq: int
    event: EventBody
    queued_at: float | None = None  # monotonic time it entered the queue (hot path only)


class WebhookQueue:
    """The in-memory side of one webhook's queue."""

    def __init__(self, webhook_id: str, next_seq: int) -> None:
        self.webhook_id = webhook_id
        # The position the next queued event gets (only the router advances it).
        self.next_seq = next_seq
        self.hot: deque[QueuedItem] = deque()
        self.wake = asyncio.Event()
        # Set by a worker that has taken everything queued before: takes an item at once
        # (True), without a wake-up of its taking loop, or leaves it here (False).
        self.taker: Callable[[QueuedItem], bool] | None = None

    def push(self, item: QueuedItem) -> None:
        if self.taker is not None and self.taker(item):
            return
        if len(self.hot) >= HOT_LIMIT:
            self.hot.clear()  # the worker is far behind: it will read these from the store
        self.hot.append(item)
        self.wake.set()

    def take_from(self, cursor: int, limit: int = HOT_LIMIT) -> list[QueuedItem]:
        """Up to `limit` queued items from position `cursor` on, if memory has them without
        a gap."""
        while self.hot and self.hot[0].seq < cursor:
            self.hot.popleft()
        taken: list[QueuedItem] = []
        while self.hot and len(taken) < limit and self.hot[0].seq == cursor + len(taken):
            taken.append(self.hot.popleft())
        return taken


class CompletionLog:
    """Removes finished deliveries from the store, many per transaction: at most every
    `interval_s` (a crash loses at most that much progress, which is then redelivered)."""

    def __init__(self, store: Store, interval_s: float = 0.05) -> None:
        self.store = store
        self.interval_s = interval_s
        self.items: list[Delivery] = []
        self.ready = asyncio.Event()

    def add(self, delivery: Delivery) -> None:
        self.items.append(delivery)
        self.ready.set()

    async def run(self) -> None:
        while True:
            await self.ready.wait()
            await asyncio.sleep(self.interval_s)  # let a fan-out's completions gather
            await self.flush()

    async def flush(self) -> None:
        self.ready.clear()
        batch, self.items = self.items, []
        if not batch:
            return
        try:
            await self.store.write(lambda tx: tx.finish_deliveries(batch))
        except Exception:
            log.exception("could not record finished deliveries; retrying")
            self.items = batch + self.items
            self.ready.set()
            await asyncio.sleep(0.5)


class Worker:
    """Delivers one webhook's queue until stopped or the webhook fails: in order per flow or
    source, different ones at the same time (the module's docstring)."""

    def __init__(self, dispatcher: Dispatcher, record: WebhookRecord, queue: WebhookQueue) -> None:
        self.dispatcher = dispatcher
        self.generation = record.generation
        self.queue = queue
        self.record = record
        self.in_flight = dispatcher.settings.max_in_flight_per_webhook
        # One at a time: every event in one lane, so in queue order exactly.
        self.in_queue_order = self.in_flight == 1
        self.window = max(READ_BATCH, 8 * self.in_flight)
        # The position of the next event to take from the queue (None: not serving yet).
        self.next_to_take: int | None = None
        # The queue's end when the worker (re)started: the store's positions before it may
        # have been delivered out of order already (gaps), so they are not counted as waiting
        # against `max_backlog_events` until read.
        self.read_back_until = 0
        # Taken and not finished, by order key: each lane's first event is being delivered
        # or waits in `ready` for a sender.
        self.lanes: dict[str, deque[QueuedItem]] = {}
        self.ready: asyncio.Queue[str] = asyncio.Queue()
        self.taken = 0
        # Senders (at most `in_flight`, made as needed, kept while the worker serves): each
        # delivers a ready lane's first event, then puts the lane back if it has more.
        self.senders: set[asyncio.Task[None]] = set()
        self.idle_senders = 0
        self._senders: asyncio.TaskGroup | None = None
        # Set once the webhook is in error (by one lane; the others stop).
        self.failed = False
        self._failing = asyncio.Lock()
        # Whether the last attempt succeeded: if not, deliveries go one at a time.
        self.answering = False
        self._probation = asyncio.Lock()
        # In a context of its own: not the one of whatever made the worker (a registration's
        # command), whose correlation and trace ids would otherwise mark every delivery log.
        self.task = asyncio.create_task(
            self._run(), name=f"webhook:{record.id}", context=contextvars.Context()
        )

    @property
    def record(self) -> WebhookRecord:
        return self._record

    @record.setter
    def record(self, record: WebhookRecord) -> None:
        """Take a (changed) registration: what every delivery needs is worked out once here."""
        self._record = record
        reader = Reader.of(self.dispatcher.policy, record.owner)
        # The backends whose URLs the owner may see (ADR 0055); None: all.
        self.readable_storage_ids = (
            reader.readable_backends(self.dispatcher.payloads.urls.backends) if reader else None
        )
        self.options = (*options_key(record.doc), self.readable_storage_ids)
        self.headers = {"Content-Type": "application/json"}
        self.key_problem: str | None = None
        self.signing_key: bytes | None = None
        name = record.doc.get("api_key_name")
        try:
            if name and record.api_key_value is not None:
                self.headers[name] = self.dispatcher.secrets.open(record.api_key_value)
            if record.signing_secret is not None:
                self.signing_key = signing_key(self.dispatcher.secrets.open(record.signing_secret))
        except SecretUnavailable as exc:
            self.key_problem = str(exc)

    @property
    def webhook_id(self) -> str:
        return self._record.id

    def stop(self) -> asyncio.Task[None]:
        self.task.cancel()
        return self.task

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._serve()
                    return  # the webhook is in error now
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook worker failed; restarting it", extra=self._ids())
                    await asyncio.sleep(1)
        finally:
            self.dispatcher.worker_ended(self)

    def _ids(self) -> dict[str, str]:
        return {"webhook_id": self.webhook_id}

    @property
    def backlog(self) -> int:
        """Events queued for this webhook and not delivered yet."""
        if self.next_to_take is None:
            return 0
        return max(self.queue.next_seq - self.next_to_take, 0) + self.taken

    def _behind(self) -> int:
        """Events that wait for certain (the limit's measure): the backlog, less the positions
        left from before a (re)start not read yet, which may be gaps."""
        assert self.next_to_take is not None
        unread = max(self.queue.next_seq - max(self.next_to_take, self.read_back_until), 0)
        return unread + self.taken

    async def _serve(self) -> None:
        d = self.dispatcher
        await self._mark_started()
        # Snapshot the next position before reading the store: anything queued after the read
        # got a position at or after it.
        position = self.queue.next_seq
        webhook_id = self.webhook_id
        bounds = await d.patiently(
            lambda: d.store.read(lambda tx: tx.delivery_queues(webhook_id).get(webhook_id))
        )
        self.read_back_until = position
        if bounds is not None:
            position = bounds[0]
        self.next_to_take, self.lanes, self.taken, self.failed = position, {}, 0, False
        self.ready = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as senders:
                self._senders = senders
                self.queue.taker = self._take_pushed
                while not self.failed:
                    self.queue.wake.clear()  # set again by a new event or a finished one
                    if self._behind() > d.settings.max_backlog_events:
                        await self._fail_behind()
                        continue
                    batch = await self._take(self.window - self.taken)
                    if not batch:
                        await self.queue.wake.wait()
                        continue
                    for item in batch:
                        self._place(item)
                # In error: what is still being delivered was dropped from the queue.
                for sender in self.senders:
                    sender.cancel()
        finally:
            self.stop_taking()
            self.next_to_take = None
            self.senders.clear()
            self.idle_senders = 0

    def stop_taking(self) -> None:
        """Leave events pushed from now on in the queue's memory, for the next worker."""
        if self.queue.taker == self._take_pushed:
            self.queue.taker = None

    def _take_pushed(self, item: QueuedItem) -> bool:
        """The hot path: an event just queued, taken at once if it is the next to take and
        there is room (otherwise the taking loop takes it, and checks the backlog)."""
        if (
            self.next_to_take is None
            or item.seq != self.next_to_take
            or self.taken >= self.window
            or self.failed
            or self._behind() >= self.dispatcher.settings.max_backlog_events
        ):
            return False
        self.next_to_take += 1
        self._place(item)
        return True

    def _place(self, item: QueuedItem) -> None:
        """Put a taken event in its lane; a new lane is ready for a sender."""
        self.taken += 1
        key = "" if self.in_queue_order else item.event.order_key
        lane = self.lanes.get(key)
        if lane is not None:
            lane.append(item)  # sent after those before it
            return
        self.lanes[key] = deque([item])
        self.ready.put_nowait(key)
        if self.ready.qsize() > self.idle_senders and len(self.senders) < self.in_flight:
            assert self._senders is not None
            self.senders.add(self._senders.create_task(self._send_lanes()))

    async def _take(self, room: int) -> list[QueuedItem]:
        """Up to `room` events from the queue's next position on, from memory, or (after a
        restart, or fallen behind) from the store; moves the next position past them."""
        assert self.next_to_take is not None
        position = self.next_to_take
        batch = self.queue.take_from(position, room) if room > 0 else []
        if batch:
            self.next_to_take = batch[-1].seq + 1
            return batch
        # From the store only with room for a good part of a read, not a few events a time.
        if room < ROOM_TO_TAKE[1] or position >= self.queue.next_seq:
            return []
        # Up to the end of the queue as it is now (committed): what the router queues while
        # the read runs goes to memory, unread and untaken, and is taken from there; a read
        # reaching past it would skip it, or take it twice.
        end = self.queue.next_seq
        batch = await self._read_from(position, end, min(room, READ_BATCH))
        # Read up to the last one found; found none, the range is done (what is not in it
        # was delivered, out of order).
        self.next_to_take = batch[-1].seq + 1 if batch else end
        return batch

    async def _send_lanes(self) -> None:
        """A sender: deliver the first event of each ready lane in turn, a lane with more
        going back behind the others (so busy flows take turns), until the webhook fails."""
        d = self.dispatcher
        while not self.failed:
            self.idle_senders += 1
            try:
                key = await self.ready.get()
            finally:
                self.idle_senders -= 1
            lane = self.lanes[key]
            item = lane[0]
            if not await self._deliver_in_turn(item):
                return
            lane.popleft()
            if lane:
                self.ready.put_nowait(key)
            else:
                del self.lanes[key]
            event = item.event
            d.completions.add(Delivery(self.webhook_id, item.seq, event.event_id, event.payload))
            if item.queued_at is not None:
                QUEUE_TO_DELIVERY_SECONDS.observe(time.monotonic() - item.queued_at)
            self.taken -= 1
            if self.window - self.taken in ROOM_TO_TAKE:
                self.queue.wake.set()  # the taking loop may be waiting for this much room

    async def _deliver_in_turn(self, item: QueuedItem) -> bool:
        """`_deliver`, one at a time while the receiver is not known to answer: until a
        delivery to it succeeds, and again from a failed attempt to the next success. A
        receiver that hangs then holds one send slot of the shared pool, not one per flow."""
        if not self.answering:
            async with self._probation:
                if not self.answering:
                    return await self._deliver(item)
        return await self._deliver(item)

    async def _give_up(self, record: WebhookRecord, error_type: str, reason: str) -> bool:
        """Put the webhook in `error`, once however many lanes ask: True for the one that
        did. False for the others, and if it was replaced since `record` was read (its new
        worker carries on); `failed` tells these apart."""
        async with self._failing:
            if self.failed or not await self.dispatcher.fail(record, error_type, reason):
                return False
            self.failed = True
            self.queue.wake.set()
            return True

    async def _fail_behind(self) -> None:
        limit = self.dispatcher.settings.max_backlog_events
        reason = (
            f"{self._behind()} events were waiting for the receiver, more than the {limit} "
            "allowed: it answers more slowly than events come"
        )
        if not await self._give_up(self.record, "BacklogExceeded", reason) and not self.failed:
            await self.queue.wake.wait()

    async def _mark_started(self) -> None:
        record = self.record
        if record.status != "created":
            return
        d = self.dispatcher
        changed = await d.patiently(
            lambda: d.store.write(
                lambda tx: tx.set_webhook_status(
                    record.id, "started", None, generation=record.generation
                )
            )
        )
        if changed:
            d.status_changed(replace(record, status="started", error=None))

    async def _read_from(self, position: int, end: int, limit: int) -> list[QueuedItem]:
        d, webhook_id = self.dispatcher, self.webhook_id
        deliveries = await d.patiently(
            lambda: d.store.read(lambda tx: tx.pending_deliveries(webhook_id, position, end, limit))
        )
        return [QueuedItem(x.seq, EventBody(x.event_id, x.payload)) for x in deliveries]

    async def _deliver(self, item: QueuedItem) -> bool:
        """Deliver with retries; False if the webhook was put in error instead."""
        d = self.dispatcher
        attempt = 0
        while True:
            attempt += 1
            record = self.record  # the latest configuration (a PUT may change it meanwhile)
            started = time.perf_counter()
            result = await self._attempt(record, item.event, attempt)
            if result.superseded:
                # Replaced while it waited for a send slot (a new URL, key or secret): not
                # sent, so not an attempt; made again with the new configuration.
                attempt -= 1
                continue
            self.answering = result.ok
            outcome = "delivered" if result.ok else "rejected" if result.permanent else "failed"
            WEBHOOK_DELIVERY_SECONDS.labels(outcome).observe(time.perf_counter() - started)
            if result.ok:
                DELIVERED.inc()
                return True
            (ATTEMPT_REJECTED if result.permanent else ATTEMPT_FAILED).inc()
            if result.permanent or attempt >= d.settings.max_attempts:
                event = item.event
                reason = (
                    f"gave up delivering event {event.event_id} ({event.event_type}) after "
                    f"{attempt} attempt(s): {result.summary}"
                )
                if await self._give_up(record, "DeliveryFailed", reason):
                    DELIVERY_DROPPED.inc()  # once per webhook given up, however many lanes
                if self.failed:
                    return False
                attempt = 0  # the registration was replaced meanwhile: start over with it
                continue
            await asyncio.sleep(retry_wait(attempt, result, d.settings))

    async def _attempt(self, record: WebhookRecord, event: EventBody, attempt: int) -> Attempt:
        d = self.dispatcher
        if self.key_problem is not None:
            return Attempt(False, self.key_problem, permanent=True)
        headers = {
            **self.headers,
            "Tams-Event-Id": event.event_id,
            "Tams-Delivery-Attempt": str(attempt),
        }
        if event.objects is None and event.object_ids():
            ids = event.object_ids()
            event.objects = await d.patiently(lambda: d.store.read(lambda tx: tx.get_objects(ids)))
        body = d.payloads.body(record.doc, self.options, event, self.readable_storage_ids)
        if self.signing_key is not None:
            headers.update(signature_headers(self.signing_key, event.event_id, body))
        # One span per attempt, in the trace of the change that caused the event; the
        # receiver gets `traceparent` so its own work can join the trace.
        with tracer().start_as_current_span(
            "webhook deliver",
            context=extract_trace_context(event.trace_context),
            kind=SpanKind.CLIENT,
            attributes={
                "tams.webhook_id": record.id,
                "tams.event_type": event.event_type,
                "tams.delivery_attempt": attempt,
            },
        ) as span:
            # Checked once a slot is free: a PUT answered while this attempt waited for one
            # (all in use) must not see its old URL, key or secret used after its 201.
            result = await d.sender.post(
                record.url,
                body,
                {**inject_trace_context(), **headers},
                retry=attempt > 1,
                current=lambda: self.record is record,
            )
            if result.superseded:
                return result
            if not result.ok:
                span.set_status(StatusCode.ERROR, result.summary)
                # Under the attempt's span: the log line carries the trace of the change.
                log.warning(
                    "webhook delivery attempt failed",
                    extra={
                        "webhook_id": record.id,
                        "event_type": event.event_type,
                        "attempt": attempt,
                        "reason": result.summary,
                    },
                )
            return result


class Dispatcher:
    """The delivery side of the service: registrations in memory, workers, completions."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        payloads: Payloads,
        secrets: SecretBox,
        settings: WebhookSettings,
        policy: AccessPolicy | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or AccessPolicy.off()
        self.sender = sender
        self.payloads = payloads
        self.secrets = secrets
        self.settings = settings
        self.records: dict[str, WebhookRecord] = {}
        # The webhooks that get new events (enabled ones), for the router.
        self.subscriptions = SubscriptionIndex()
        self.queues: dict[str, WebhookQueue] = {}
        self.workers: dict[str, Worker] = {}
        self.completions = CompletionLog(store)
        # Held while events are matched and queued (router.EventRouter), and while
        # registrations change and are read back: no event is matched against a registration
        # that has been replaced in the store but not yet here.
        self.match_lock = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._stopping: set[asyncio.Task[None]] = set()
        # Worked out when scraped, from the workers' positions: nothing on the hot path.
        BACKLOG_MAX.set_function(lambda: max((w.backlog for w in self.workers.values()), default=0))
        BACKLOG_TOTAL.set_function(lambda: sum(w.backlog for w in self.workers.values()))

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        bounds, records = await self.store.read(
            lambda tx: (tx.delivery_queues(), tx.all_webhooks())
        )
        for webhook_id, (_first, last) in bounds.items():
            self.queues[webhook_id] = WebhookQueue(webhook_id, last + 1)
        self.apply(records)
        self._background = [
            asyncio.create_task(self.completions.run(), name="webhook-completions"),
            asyncio.create_task(self._prune_forever(), name="webhook-event-pruning"),
        ]

    async def stop(self) -> None:
        tasks = [w.stop() for w in self.workers.values()] + list(self._stopping)
        for task in self._background:
            task.cancel()
        for task in [*tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.completions.flush()

    async def refresh(self, webhook_ids: Collection[str]) -> None:
        """Re-read these registrations (after registration commands changed them): only
        those, so a registration costs the same with three webhooks or three thousand."""
        ids = sorted(webhook_ids)
        found = await self.store.read(lambda tx: {i: tx.get_webhook(i) for i in ids})
        for webhook_id, record in found.items():
            if record is None:
                self._forget(webhook_id)
            else:
                self._apply_one(record)
        self._count_statuses()

    def apply(self, records: list[WebhookRecord]) -> None:
        """Make workers and subscriptions match these registrations, all there are."""
        current = {r.id: r for r in records}
        for webhook_id in set(self.records) - set(current):
            self._forget(webhook_id)
        for record in records:
            self._apply_one(record)
        self._count_statuses()

    def _apply_one(self, record: WebhookRecord) -> None:
        """Make the webhook's worker and subscription match its registration."""
        known = self.records.get(record.id)
        if (
            known is not None
            and known.generation == record.generation
            and PROGRESS[known.status] > PROGRESS[record.status]
        ):
            # Read before a worker's own status change was written: ours is newer.
            record = known
        self.records[record.id] = record
        queue = self.queues.setdefault(record.id, WebhookQueue(record.id, 0))
        worker = self.workers.get(record.id)
        if record.status not in ENABLED:
            self.subscriptions.pop(record.id, None)
            if worker is not None:
                self._stop_worker(worker)
            queue.hot.clear()
            return
        self.subscriptions[record.id] = Subscription.of(
            record.doc, Reader.of(self.policy, record.owner)
        )
        if worker is not None and worker.record.owner != record.owner:
            # Replaced by another owner: the replacement emptied the stored queue, and
            # what memory holds (or is being delivered) was matched for the old owner.
            self._stop_worker(worker)
            worker = None
            queue.hot.clear()
        elif (
            worker is not None
            and record.status == "created"
            and (worker.generation != record.generation)
        ):
            # Re-enabled (or replaced before it started): begin afresh.
            self._stop_worker(worker)
            worker = None
        if worker is None:
            self.workers[record.id] = Worker(self, record, queue)
        else:
            worker.record = record

    def _count_statuses(self) -> None:
        counts = dict.fromkeys(PROGRESS, 0)
        for record in self.records.values():
            counts[record.status] += 1
        for status, count in counts.items():
            WEBHOOKS_BY_STATUS.labels(status).set(count)

    def _forget(self, webhook_id: str) -> None:
        self.records.pop(webhook_id, None)
        self.subscriptions.pop(webhook_id, None)
        self.queues.pop(webhook_id, None)
        worker = self.workers.get(webhook_id)
        if worker is not None:
            self._stop_worker(worker)

    def _stop_worker(self, worker: Worker) -> None:
        if self.workers.get(worker.webhook_id) is worker:
            del self.workers[worker.webhook_id]
        worker.stop_taking()  # nothing more for a worker being cancelled
        task = worker.stop()
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def worker_ended(self, worker: Worker) -> None:
        if self.workers.get(worker.webhook_id) is worker:
            del self.workers[worker.webhook_id]

    # --- used by workers ---------------------------------------------------------------

    async def patiently(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run store work, waiting out store trouble (a worker must not lose its place)."""
        while True:
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("store trouble during delivery; retrying")
                await asyncio.sleep(0.5)

    def status_changed(self, record: WebhookRecord) -> None:
        if self.records.get(record.id, record).generation == record.generation:
            self.records[record.id] = record
            worker = self.workers.get(record.id)
            if worker is not None and worker.generation == record.generation:
                worker.record = record
            self._count_statuses()

    async def fail(self, record: WebhookRecord, error_type: str, reason: str) -> bool:
        """Put the webhook in `error` (`reason`: why, for its `error` object) and empty its
        queue, unless it was replaced since `record` was read; True if it is in error now."""

        def work(tx: WriteTx) -> tuple[int, WebhookRecord | None] | None:
            current = tx.get_webhook(record.id)
            if current is None or current.generation != record.generation:
                return None
            dropped = tx.drop_deliveries(record.id)
            error = ErrorBody(
                type=error_type,
                summary=(
                    f"{reason}. The webhook stopped; {dropped} queued event(s) were dropped. "
                    "Set its status to created to receive new events."
                ),
            ).as_json()
            tx.set_webhook_status(record.id, "error", error, generation=record.generation)
            return dropped, tx.get_webhook(record.id)

        # Under the routing lock: an event routed to the webhook between emptying its queue and
        # forgetting its subscription would be queued for a webhook in error, never delivered
        # and never pruned (a soak test left one such row in 3 of 8 failures).
        async with self.match_lock:
            outcome = await self.patiently(lambda: self.store.write(work))
            if outcome is None:
                return False
            self.subscriptions.pop(record.id, None)
        dropped, failed = outcome
        WEBHOOKS_FAILED.inc()
        EVENTS_DROPPED.inc(dropped)
        log.warning(
            "webhook put in error",
            extra={"webhook_id": record.id, "reason": reason, "dropped": dropped},
        )
        queue = self.queues.get(record.id)
        if queue is not None:
            queue.hot.clear()
        if failed is not None:
            self.records[record.id] = failed
        self._count_statuses()
        return True

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            with contextlib.suppress(Exception):
                await self.prune()

    async def prune(self) -> int:
        """Forget delivered events older than the retention (their ids stop deduplicating)."""
        cutoff = time.time_ns() - self.settings.event_retention_s * 1_000_000_000
        return await self.store.write(lambda tx: tx.prune_queued_events(cutoff))
