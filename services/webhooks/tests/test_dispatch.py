"""Delivery workers on a real SQLite store, with the real HTTP sender and a real receiver on
loopback: the races between a worker taking its queue, the router queueing events, and its
senders, made to order by holding the store's reads and writes at chosen points."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest_asyncio
from aiohttp import web
from prometheus_client import REGISTRY

from tams_runtime.egress import EgressPolicy
from tams_runtime.event_consumer import ReceivedEvent
from tams_runtime.media import UrlBuilder
from tams_runtime.secret_box import SecretBox
from tams_runtime.settings import S3Settings, WebhookSettings
from tams_runtime.storage import StorageBackends
from tams_schema.envelopes import CommandEnvelope, EventContext, TamsEvent
from tams_store.port import Delivery, QueuedEvent, ReadTx, WriteTx
from tams_store.sqlite import SqliteStore
from tams_webhooks.dispatch import Dispatcher
from tams_webhooks.payloads import Payloads
from tams_webhooks.registrations import HANDLERS
from tams_webhooks.router import EventRouter
from tams_webhooks.sender import Sender

T = TypeVar("T")
DEADLINE_S = 10.0


class Store(SqliteStore):
    """A real SQLite store whose queue reads and writes a test can hold at chosen points:
    the interleavings of the reader and writer threads with the loop, made to order."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, writes_on_loop=False)
        # Held after a queue read's SQL ran, before its result reaches the worker.
        self.hold_read_result: asyncio.Event | None = None
        self.read_result_held = asyncio.Event()
        # Held before a queue read's SQL runs (on the reader thread).
        self.hold_read_sql: threading.Event | None = None
        self.read_sql_held = asyncio.Event()
        # Held after the next write committed, before its caller goes on (one write only).
        self.hold_next_write: asyncio.Event | None = None
        self.write_held = asyncio.Event()
        # Reads of a delivery queue (`pending_deliveries`) so far.
        self.queue_reads = 0

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        loop = asyncio.get_running_loop()
        gate = self.hold_read_sql

        def held(tx: ReadTx) -> T:
            real = tx.pending_deliveries

            def pending(webhook_id: str, from_seq: int, until_seq: int, limit: int) -> Any:
                self.queue_reads += 1
                if gate is not None:
                    loop.call_soon_threadsafe(self.read_sql_held.set)
                    gate.wait(DEADLINE_S)
                return real(webhook_id, from_seq, until_seq, limit)

            tx.pending_deliveries = pending  # type: ignore[method-assign]
            return work(tx)

        result = await super().read(held)
        # Only `pending_deliveries` answers a list among the dispatcher's reads.
        if self.hold_read_result is not None and isinstance(result, list):
            self.read_result_held.set()
            await self.hold_read_result.wait()
        return result

    async def write(self, work: Callable[[WriteTx], T]) -> T:
        gate, self.hold_next_write = self.hold_next_write, None
        result = await super().write(work)
        if gate is not None:
            self.write_held.set()
            await gate.wait()
        return result


class Receiver:
    """A real receiver on loopback: records each delivered `flows/updated` event's flow id
    and label, in order of receipt."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.changed = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        flow = (await request.json())["event"]["flow"]
        async with self.changed:
            self.delivered.append((flow["id"], flow["label"]))
            self.changed.notify_all()
        return web.Response()

    async def wait_until(self, check: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(DEADLINE_S), self.changed:
                await self.changed.wait_for(check)
        except TimeoutError:
            raise AssertionError(f"not seen in time; delivered: {self.delivered}") from None


def updated(flow_id: str, label: str) -> ReceivedEvent:
    event = TamsEvent(
        key=flow_id,
        event_type="flows/updated",
        event={"flow": {"id": flow_id, "label": label}},
        context=EventContext(flow_id=flow_id),
    )
    return ReceivedEvent(event, event.payload())


class Harness:
    """The dispatcher and router of the webhooks service, with its real HTTP sender, on the
    store; a real receiver on loopback."""

    def __init__(self, store: Store, settings: WebhookSettings) -> None:
        self.store = store
        self.receiver = Receiver()
        settings = settings.model_copy(update={"allowed_networks": "127.0.0.0/8"})
        self.sender = Sender(settings, EgressPolicy.from_settings(settings))
        self.dispatcher = Dispatcher(
            store,
            self.sender,
            Payloads(UrlBuilder(StorageBackends([], S3Settings()))),
            SecretBox([]),
            settings,
        )
        self.router = EventRouter(self.dispatcher)
        # Set by each finished delivery (the worker then counts it done, in the same step).
        self.finished = asyncio.Event()
        record = self.dispatcher.completions.add

        def finished(delivery: Delivery) -> None:
            record(delivery)
            self.finished.set()

        self.dispatcher.completions.add = finished  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.receiver.start()
        await self.sender.start()

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.sender.stop()
        await self.receiver.stop()

    async def settled(self, webhook_id: str) -> None:
        """Until everything its worker has taken is delivered."""
        worker = self.dispatcher.workers[webhook_id]
        async with asyncio.timeout(DEADLINE_S):
            while True:
                self.finished.clear()
                if worker.taken == 0:
                    return
                await self.finished.wait()

    async def register(self) -> str:
        webhook_id = str(uuid.uuid4())
        command = CommandEnvelope(
            name="webhooks.create",
            key=webhook_id,
            payload={
                "webhook_id": webhook_id,
                "webhook": {"url": self.receiver.url, "events": ["flows/updated"]},
                "status": "created",
            },
        )
        outcome = await self.store.write(lambda tx: HANDLERS["webhooks.create"](tx, command))
        assert outcome.status == 201
        return webhook_id

    async def queue_in_store(self, webhook_id: str, events: list[ReceivedEvent]) -> None:
        """Queued before the service (re)started: only the store has them."""

        def work(tx: WriteTx) -> None:
            for seq, received in enumerate(events):
                queued = QueuedEvent(received.event.event_id, received.payload, {webhook_id: seq})
                assert tx.queue_event(queued, time.time_ns())

        await self.store.write(work)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    adapter = Store(tmp_path / "tams.db")
    await adapter.open()
    yield adapter
    await adapter.close()


@pytest_asyncio.fixture
async def harness(store: Store) -> AsyncIterator[Harness]:
    setup = Harness(store, WebhookSettings(retry_base_s=0.001, retry_max_s=0.001))
    await setup.start()
    yield setup
    await setup.stop()


async def test_events_queued_while_the_worker_reads_the_store_are_not_skipped(
    harness: Harness,
) -> None:
    """The worker reads the tail of its queue from the store (after a restart); events the
    router queues meanwhile, after the read's snapshot, go to memory. The worker moves past
    what it read, not past what was queued when the read came back: else those events are
    passed over, never delivered until the next restart (and then out of order)."""
    store, receiver = harness.store, harness.receiver
    webhook_id = await harness.register()
    flow = str(uuid.uuid4())
    await harness.queue_in_store(webhook_id, [updated(flow, f"label {n}") for n in range(3)])
    store.hold_read_result = asyncio.Event()
    await harness.dispatcher.start()
    async with asyncio.timeout(DEADLINE_S):
        await store.read_result_held.wait()  # positions 0-2 read, not yet taken
    await harness.router([updated(flow, f"label {n}") for n in range(3, 5)])
    store.hold_read_result.set()

    labels = [f"label {n}" for n in range(5)]
    await receiver.wait_until(lambda: len(receiver.delivered) >= 5)
    assert receiver.delivered == [(flow, label) for label in labels]


async def test_an_event_read_from_the_store_is_not_taken_again_from_memory(
    harness: Harness,
) -> None:
    """The worker's store read sees events the router has committed but not yet handed to
    memory (the writer and reader threads finish in either order): it must not take them
    from memory again. A delivery twice, the flow's later event between, and no crash."""
    store, receiver = harness.store, harness.receiver
    webhook_id = await harness.register()
    flow = str(uuid.uuid4())
    await harness.queue_in_store(webhook_id, [updated(flow, f"label {n}") for n in range(3)])
    store.hold_read_sql = threading.Event()
    await harness.dispatcher.start()
    async with asyncio.timeout(DEADLINE_S):
        await store.read_sql_held.wait()  # the read has not run its query yet
    store.hold_next_write = release_router = asyncio.Event()
    later = [updated(flow, "label 3"), updated(flow, "label 4")]
    routing = asyncio.create_task(harness.router(later))
    async with asyncio.timeout(DEADLINE_S):
        await store.write_held.wait()  # committed, not yet in memory
    store.hold_read_sql.set()  # the read may see positions 0-4
    await receiver.wait_until(lambda: len(receiver.delivered) >= 3)
    release_router.set()
    async with asyncio.timeout(DEADLINE_S):
        await routing  # in memory now: taken again, if it is taken again
    await receiver.wait_until(lambda: len(receiver.delivered) >= 5)
    await harness.settled(webhook_id)
    assert receiver.delivered == [(flow, f"label {n}") for n in range(5)]


async def test_a_restart_with_gaps_in_the_queue_is_not_taken_for_a_backlog(store: Store) -> None:
    """A flow's delivery kept retrying while others' went on: the queue left in the store
    spans many positions but holds two events. After a restart those two are what waits,
    not the span: the webhook is not put in error for `max_backlog_events`."""
    harness = Harness(store, WebhookSettings(max_backlog_events=10))
    await harness.start()
    webhook_id = await harness.register()
    stuck, busy = str(uuid.uuid4()), str(uuid.uuid4())
    events = [updated(busy, f"busy {n}") for n in range(40)]
    await harness.queue_in_store(webhook_id, [updated(stuck, "stuck 0"), *events[1:], events[0]])
    queued = await store.read(lambda tx: tx.pending_deliveries(webhook_id, 0, 41, 41))
    await store.write(lambda tx: tx.finish_deliveries(queued[1:-1]))  # delivered, then a crash
    await harness.dispatcher.start()
    try:
        receiver = harness.receiver
        await receiver.wait_until(lambda: len(receiver.delivered) >= 2)
        assert sorted(receiver.delivered) == sorted([(stuck, "stuck 0"), (busy, "busy 0")])
        assert harness.dispatcher.records[webhook_id].status == "started"
    finally:
        await harness.stop()


async def test_a_restart_finds_events_left_far_apart_in_one_read(store: Store) -> None:
    """Deliveries finished out of order, then a crash: three events left over 5,000
    positions. The restarted worker reads them from the store at once, not a hundred
    positions a read."""
    harness = Harness(store, WebhookSettings())
    await harness.start()
    webhook_id = await harness.register()
    flow = str(uuid.uuid4())
    events = [updated(flow, f"label {n}") for n in range(5000)]
    await harness.queue_in_store(webhook_id, events)
    queued = await store.read(lambda tx: tx.pending_deliveries(webhook_id, 0, 5000, 5000))
    left = {0, 2500, 4999}
    await store.write(lambda tx: tx.finish_deliveries([d for d in queued if d.seq not in left]))
    reads_before = store.queue_reads
    await harness.dispatcher.start()
    try:
        receiver = harness.receiver
        await receiver.wait_until(lambda: len(receiver.delivered) >= 3)
        await harness.settled(webhook_id)
        assert receiver.delivered == [(flow, f"label {n}") for n in sorted(left)]
        assert store.queue_reads - reads_before <= 2  # the events, then the range's end
    finally:
        await harness.stop()


class FailingTogether(Receiver):
    """Answers until `failing` is set; then holds requests until `together` have arrived,
    and answers them all 500: a receiver that dies with many deliveries in flight."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self.together = together
        self.failing = False
        self.held = 0
        self.all_in = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.failing:
            return await super()._handle(request)
        self.held += 1
        if self.held >= self.together:
            self.all_in.set()
        await self.all_in.wait()
        return web.Response(status=500)


def dropped() -> float:
    value = REGISTRY.get_sample_value("tams_webhook_deliveries_total", {"outcome": "dropped"})
    return value or 0.0


async def test_a_webhook_given_up_by_many_lanes_at_once_counts_once(store: Store) -> None:
    """The receiver fails with eight flows' deliveries in flight, each on its last attempt:
    the webhook goes to `error` once, and the dropped deliveries metric counts it once."""
    harness = Harness(store, WebhookSettings(max_attempts=1))
    harness.receiver = receiver = FailingTogether(together=8)
    await harness.start()
    try:
        webhook_id = await harness.register()
        await harness.dispatcher.start()
        warm = str(uuid.uuid4())
        await harness.router([updated(warm, "first")])
        await receiver.wait_until(lambda: len(receiver.delivered) == 1)  # known to answer
        await harness.settled(webhook_id)
        receiver.failing = True
        before = dropped()
        await harness.router([updated(str(uuid.uuid4()), "lost") for _ in range(8)])
        worker = harness.dispatcher.workers[webhook_id]
        async with asyncio.timeout(DEADLINE_S):
            await receiver.all_in.wait()
            await worker.task  # ends when the webhook is in error
        assert harness.dispatcher.records[webhook_id].status == "error"
        assert dropped() - before == 1
    finally:
        await harness.stop()
