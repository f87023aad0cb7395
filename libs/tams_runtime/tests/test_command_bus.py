"""Request/reply and exactly-once effect over the real broker, with a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from tams_runtime.applier import CommandApplier
from tams_runtime.bus import CommandBus, CommandTimeout, ensure_topics
from tams_runtime.consumer import CommandConsumer
from tams_runtime.metrics import COMMAND_ROUND_TRIP_SECONDS
from tams_runtime.replies import reply_address
from tams_runtime.settings import KafkaSettings, ReplySettings
from tams_schema.envelopes import CommandEnvelope, FollowUp, Outcome, TamsEvent
from tams_stack.broker import start_broker
from tams_stack.stack import Stack
from tams_store import StoreUnavailable
from tams_store.sqlite import SqliteStore

from .waiting import until


def unique_settings(infra: Stack) -> KafkaSettings:
    """Settings with a fresh topic prefix, so tests never see each other's messages."""
    return KafkaSettings(
        bootstrap_servers=infra.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        command_partitions=2,
        events_partitions=2,
    )


class Counter:
    """A command handler that counts how often each command was really applied."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    def __call__(self, tx: Any, command: CommandEnvelope) -> Outcome:
        self.applied.append(command.command_id)
        info = tx.get_service_info()
        info["count"] = info.get("count", 0) + 1
        tx.set_service_info(info)
        event = TamsEvent(key=command.key, event_type="flows/updated", event={"n": info["count"]})
        return Outcome(status=200, body={"count": info["count"]}, events=[event])


async def start_consumer(
    settings: KafkaSettings, store: SqliteStore, counter: Counter
) -> CommandConsumer:
    applier = CommandApplier(
        store, {"count": counter}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    consumer = CommandConsumer(
        settings, settings.topics.catalog_commands, group_id="test-catalog", handler=applier
    )
    await consumer.start()
    return consumer


async def read_records(settings: KafkaSettings, topic: str, expected: int) -> list[Any]:
    """The first `expected` records of `topic`, read from the start outside any group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(15):
            while len(found) < expected:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    found += records
    finally:
        await consumer.stop()
    return found


async def read_events(settings: KafkaSettings, expected: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for record in await read_records(settings, settings.topics.events, expected):
        headers = {k: v.decode() for k, v in record.headers}
        events.append({"headers": headers, "value": json.loads(record.value)})
    return events


async def test_request_reply_round_trip(tams_infra: Stack, store: SqliteStore) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    bus = CommandBus(settings)
    await bus.start()
    try:
        replies = [
            await bus.request(settings.topics.catalog_commands, "count", "flow-1", {})
            for _ in range(3)
        ]
        assert [r.body for r in replies] == [{"count": 1}, {"count": 2}, {"count": 3}]
        assert all(r.status == 200 for r in replies)
        events = await read_events(settings, 3)
        assert [e["value"]["event"]["n"] for e in events] == [1, 2, 3]
        assert all(e["headers"]["schema_version"] == "1" for e in events)
        assert len({e["headers"]["event_id"] for e in events}) == 3
    finally:
        await bus.stop()
        await consumer.stop()


async def test_an_unknown_command_is_refused_with_a_tams_error(
    tams_infra: Stack, store: SqliteStore
) -> None:
    """A command no handler knows (a newer gateway during a rolling upgrade): a 400 whose
    body is a TAMS error object, with no `traceback` (error.json allows no null there)."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    consumer = await start_consumer(settings, store, Counter())
    bus = CommandBus(settings)
    await bus.start()
    try:
        reply = await bus.request(settings.topics.catalog_commands, "no-such", "flow-1", {})
    finally:
        await bus.stop()
        await consumer.stop()
    assert reply.status == 400
    assert set(reply.body) == {"type", "summary", "time"}
    assert reply.body["type"] == "UnknownCommand" and "no-such" in reply.body["summary"]


async def test_redelivered_command_is_applied_once_with_the_same_answer(
    tams_infra: Stack, store: SqliteStore
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    bus = CommandBus(settings)
    await bus.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        command = CommandEnvelope(name="count", key="flow-1", reply_to=bus.reply_address)
        # The same command twice, as Kafka redelivers it after a crash.
        for _ in range(2):
            await producer.send_and_wait(
                settings.topics.catalog_commands,
                command.model_dump_json().encode(),
                key=b"flow-1",
            )
        events = await read_events(settings, 2)
        assert counter.applied == [command.command_id]
        # Same event (same id) re-published: a deduplicating consumer sees it once.
        assert len({e["headers"]["event_id"] for e in events}) == 1
        info = await store.read(lambda tx: tx.get_service_info())
        assert info["count"] == 1
    finally:
        await producer.stop()
        await bus.stop()
        await consumer.stop()


async def test_a_command_from_a_newer_release_is_applied(
    tams_infra: Stack, store: SqliteStore
) -> None:
    """A newer gateway's command with an envelope field this release does not know (a
    rolling upgrade): applied, not skipped as malformed."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        command = CommandEnvelope(name="count", key="flow-1")
        newer = {**json.loads(command.model_dump_json()), "priority": "high"}
        await producer.send_and_wait(
            settings.topics.catalog_commands, json.dumps(newer).encode(), key=b"flow-1"
        )
        [event] = await read_events(settings, 1)
        assert event["value"]["event"]["n"] == 1
        assert counter.applied == [command.command_id]
    finally:
        await producer.stop()
        await consumer.stop()


async def test_crash_after_the_write_before_the_commit_applies_once(
    tams_infra: Stack, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    first = await start_consumer(settings, store, counter)

    crashed = asyncio.Event()

    def crash(*_: object) -> None:
        crashed.set()
        raise asyncio.CancelledError  # the process dies: nothing sent, nothing committed

    monkeypatch.setattr(first, "_answer", crash)  # right after the first fetch's commit
    bus = CommandBus(settings)
    await bus.start()
    try:
        request = asyncio.create_task(
            bus.request(settings.topics.catalog_commands, "count", "flow-1", {}, timeout=20)
        )
        async with asyncio.timeout(15):
            await crashed.wait()
        await first.stop()
        assert counter.applied and len(counter.applied) == 1
        # A new instance of the service takes over the partition and gets the command again.
        second = await start_consumer(settings, store, counter)
        try:
            reply = await request
        finally:
            await second.stop()
        assert reply.status == 200
        assert reply.body == {"count": 1}
        assert len(counter.applied) == 1
        assert (await store.read(lambda tx: tx.get_service_info()))["count"] == 1
    finally:
        await bus.stop()


async def test_sends_the_broker_did_not_take_are_sent_again_in_order(
    tams_infra: Stack, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refuses a batch's sends while the next batch is being applied: the
    consumer sends them again, and every command is still applied once, answered, and its
    event published in order."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    real_send = consumer._send
    refused: list[int] = []

    async def refuse_the_first(*args: Any) -> list[asyncio.Future[Any]]:
        if not refused:
            refused.append(1)
            lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            lost.set_exception(KafkaError("the broker lost the batch"))
            return [lost]
        return await real_send(*args)

    monkeypatch.setattr(consumer, "_send", refuse_the_first)

    async def not_applying() -> bool:
        return not await consumer.applying()

    # The sends are refused for at least RESEND_BACKOFF_S (0.5 s): polled every 50 ms.
    watcher = asyncio.create_task(until(not_applying))
    bus = CommandBus(settings)
    await bus.start()
    try:
        replies = await asyncio.gather(
            *(
                bus.request(settings.topics.catalog_commands, "count", "flow-1", {}, timeout=20)
                for _ in range(20)
            )
        )
        assert refused
        # /ready's `commands` check failed while the sends were refused, and passes again.
        await watcher
        await until(consumer.applying)
        assert sorted(r.body["count"] for r in replies) == list(range(1, 21))
        assert len(counter.applied) == len(set(counter.applied)) == 20
        events = await read_events(settings, 20)
        first_seen: dict[str, int] = {}
        for event in events:
            first_seen.setdefault(event["headers"]["event_id"], event["value"]["event"]["n"])
        # A deduplicating consumer sees every change once, in the order it was applied.
        assert list(first_seen.values()) == list(range(1, 21))
    finally:
        watcher.cancel()
        await bus.stop()
        await consumer.stop()


async def test_no_consumer_means_a_timeout(tams_infra: Stack) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    bus = CommandBus(settings)
    await bus.start()
    timed = COMMAND_ROUND_TRIP_SECONDS.labels("never-answered")
    try:
        with pytest.raises(CommandTimeout):
            await bus.request(
                settings.topics.catalog_commands, "never-answered", "k", {}, timeout=0.5
            )
    finally:
        await bus.stop()
    # The round-trip histogram counts it, at its deadline, for the latency alert to see.
    (count,) = [s.value for s in timed.collect()[0].samples if s.name.endswith("_count")]
    (total,) = [s.value for s in timed.collect()[0].samples if s.name.endswith("_sum")]
    assert count == 1 and total >= 0.5


class Countdown:
    """A chain of commands: `countdown n` applies, then asks for `countdown n-1` as a
    follow-up, down to 0."""

    def __init__(self) -> None:
        self.applied: list[int] = []

    def __call__(self, tx: Any, command: CommandEnvelope) -> Outcome:
        n = command.payload["n"]
        self.applied.append(n)
        info = tx.get_service_info()
        info["count"] = info.get("count", 0) + 1
        tx.set_service_info(info)
        follow_ups = []
        if n > 0:
            next_command = CommandEnvelope(name="countdown", key=command.key, payload={"n": n - 1})
            follow_ups.append(FollowUp(service="catalog", command=next_command))
        return Outcome(status=200, commands=follow_ups)


async def test_follow_up_commands_run_as_a_chain_applied_once(
    tams_infra: Stack, store: SqliteStore
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    countdown = Countdown()
    applier = CommandApplier(
        store, {"countdown": countdown}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    handled: list[str] = []
    all_handled = asyncio.Event()

    async def counting(commands: Any) -> list[Outcome]:
        outcomes = await applier(commands)
        handled.extend(c.command_id for c in commands)
        if len(handled) >= 8:
            all_handled.set()
        return outcomes

    consumer = CommandConsumer(
        settings, settings.topics.catalog_commands, group_id="test-chain", handler=counting
    )
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        first = CommandEnvelope(name="countdown", key="flow-1", payload={"n": 3})
        # Delivered twice, as after a crash: the replay re-publishes the same follow-ups,
        # which are answered from their recorded outcomes all the way down the chain.
        for _ in range(2):
            await producer.send_and_wait(
                settings.topics.catalog_commands, first.model_dump_json().encode(), key=b"flow-1"
            )
        async with asyncio.timeout(15):
            await all_handled.wait()
        assert len(set(handled)) == 4  # every link handled twice ...
        assert countdown.applied == [3, 2, 1, 0]  # ... and applied once
        assert (await store.read(lambda tx: tx.get_service_info()))["count"] == 4
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_gateway_that_went_away_holds_up_no_other(
    tams_infra: Stack, store: SqliteStore
) -> None:
    """Replies to a gateway nobody can reach are dropped; the next commands, from a gateway
    that is there, are applied and answered as usual."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    consumer = await start_consumer(settings, store, counter)
    bus = CommandBus(settings)
    await bus.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        gone = CommandEnvelope(
            name="count", key="flow-1", reply_to=reply_address("127.0.0.1", closed_port())
        )
        await producer.send_and_wait(
            settings.topics.catalog_commands, gone.model_dump_json().encode(), key=b"flow-1"
        )
        reply = await bus.request(settings.topics.catalog_commands, "count", "flow-1", {})
        assert reply.body == {"count": 2}
        assert counter.applied[0] == gone.command_id
    finally:
        await producer.stop()
        await bus.stop()
        await consumer.stop()


async def test_a_gateway_restarted_at_the_same_address_is_answered(
    tams_infra: Stack, store: SqliteStore
) -> None:
    """The service's connection to the old gateway closed with it; the service connects
    again for the new one."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    consumer = await start_consumer(settings, store, Counter())
    address = ReplySettings(port=closed_port())
    try:
        for expected in (1, 2):
            bus = CommandBus(settings, address)
            await bus.start()
            try:
                reply = await bus.request(settings.topics.catalog_commands, "count", "k", {})
                assert reply.body == {"count": expected}
            finally:
                await bus.stop()
    finally:
        await consumer.stop()


def closed_port() -> int:
    """A port nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def requests_in_one_fetch(
    settings: KafkaSettings, bus: CommandBus, count: int
) -> list[asyncio.Task[Any]]:
    """`count` requests, all in the topic before a consumer starts (so one fetch has them)."""
    topic = settings.topics.catalog_commands
    requests = [
        asyncio.create_task(bus.request(topic, "gated", "flow-1", {"n": n}, timeout=20))
        for n in range(count)
    ]
    await read_records(settings, topic, count)
    return requests


async def test_a_fetch_in_several_transactions_answers_each_as_it_commits(
    tams_infra: Stack, tmp_path: Path
) -> None:
    """With two commands per transaction, the first two of a fetch of six are answered
    while the others are still being applied: their gateway is not kept waiting for the
    whole fetch."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    # Writes on the writer thread, so the test's own loop receives replies meanwhile.
    store = SqliteStore(tmp_path / "tams.db", writes_on_loop=False)
    await store.open()
    answered = threading.Event()
    applied: list[int] = []
    answered_before: list[bool] = []

    def gated(tx: Any, command: CommandEnvelope) -> Outcome:
        applied.append(command.payload["n"])
        if len(applied) > 2:  # after the first transaction: wait (on the writer thread)
            answered_before.append(answered.wait(timeout=10))  # for a reply to arrive
        return Outcome(status=200, body={"n": command.payload["n"]})

    applier = CommandApplier(store, {"gated": gated}, is_retryable=lambda e: False)
    bus = CommandBus(settings)
    await bus.start()
    consumer = CommandConsumer(
        settings,
        settings.topics.catalog_commands,
        group_id="test-parts",
        handler=applier,
        commands_per_transaction=2,
    )
    try:
        requests = await requests_in_one_fetch(settings, bus, 6)
        for request in requests:
            request.add_done_callback(lambda _: answered.set())
        await consumer.start()
        replies = await asyncio.gather(*requests)
        assert [r.body for r in replies] == [{"n": n} for n in range(6)]
        assert sorted(applied) == list(range(6))
        assert answered_before == [True, True, True, True]
    finally:
        await consumer.stop()
        await bus.stop()
        await store.close()


async def test_a_crash_between_the_transactions_of_a_fetch_applies_each_command_once(
    tams_infra: Stack, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first transaction of a fetch is committed and answered, then the process dies:
    the next instance gets the whole fetch again, answers the first commands from their
    recorded outcomes and applies the others, each once."""
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    counter = Counter()
    applier = CommandApplier(
        store, {"gated": counter}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )

    def new_instance() -> CommandConsumer:
        return CommandConsumer(
            settings,
            settings.topics.catalog_commands,
            group_id="test-parts-crash",
            handler=applier,
            commands_per_transaction=2,
        )

    first = new_instance()
    real_answer = first._answer
    crashed = asyncio.Event()

    def answer_then_crash(*args: Any) -> None:
        real_answer(*args)
        crashed.set()
        raise asyncio.CancelledError  # the process dies before the fetch's second part

    monkeypatch.setattr(first, "_answer", answer_then_crash)
    bus = CommandBus(settings)
    await bus.start()
    try:
        requests = await requests_in_one_fetch(settings, bus, 4)
        await first.start()
        async with asyncio.timeout(15):
            await crashed.wait()
        await first.stop()
        assert len(counter.applied) == 2
        second = new_instance()
        await second.start()
        try:
            replies = await asyncio.gather(*requests)
        finally:
            await second.stop()
        assert sorted(r.body["count"] for r in replies) == [1, 2, 3, 4]
        assert len(counter.applied) == len(set(counter.applied)) == 4
        assert (await store.read(lambda tx: tx.get_service_info()))["count"] == 4
    finally:
        await bus.stop()


async def test_a_broker_that_stops_answering_gets_a_timeout_within_the_reply_deadline(
    tmp_path: Path,
) -> None:
    """A hung broker (SIGSTOP: connections open, no answers) may or may not have taken the
    command: the gateway says so (CommandTimeout, a 504) at its reply deadline, not after
    aiokafka's 40 s request timeout."""
    broker = start_broker(tmp_path)
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap, reply_timeout_s=1.0)
    bus = CommandBus(settings, ReplySettings(host="127.0.0.1", port=0))
    try:
        await bus.start()
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            # A CommandTimeout at the 1 s deadline; before, a BusUnavailable after 40 s.
            with pytest.raises(CommandTimeout, match="did not confirm"):
                await bus.request(settings.topics.catalog_commands, "count", "k", {})
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
    finally:
        await bus.stop()
        broker.stop()
