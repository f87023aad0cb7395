"""Request/reply over Kafka for the gateway.

FastStream's `broker.request()` only works with its test client, so the gateway does what
it would do by hand: each gateway instance owns a reply topic (one partition, consumed
without a group so it starts at once), publishes a command with its correlation id and
`reply_to`, and resolves a waiting future when the reply with that id arrives.

The reply topic rolls over to a fresh one every `reply_topic_rotate_after` replies, and the
old one is deleted once no request still waits for a reply on it. Replies
are worthless once answered, and a partition that never stops growing costs the local broker
dearly: tansu lists every stored batch of a partition on each fetch that returns data, so a
reply's delivery time grows with the number of replies before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.trace import SpanKind

from tams_runtime.logs import CORRELATION_ID
from tams_runtime.metrics import COMMAND_ROUND_TRIP_SECONDS
from tams_runtime.settings import KafkaSettings
from tams_runtime.tracing import inject_trace_context, kafka_trace_headers, tracer
from tams_schema.envelopes import CommandEnvelope, FollowUp, Reply, new_id

log = logging.getLogger(__name__)


# Kafka's error code when a concurrent creator made the topic first: fine.
TOPIC_ALREADY_EXISTS = 36


class CommandTimeout(Exception):
    """No reply arrived before the deadline (the command may still be applied)."""


class BusUnavailable(Exception):
    """The broker could not take the command."""


async def ensure_topics(settings: KafkaSettings, extra: dict[str, int] | None = None) -> None:
    """Create the internal and public topics if missing (idempotent).

    Run at every start: tansu's memory engine forgets topics on restart, and nothing the
    stack has acknowledged depends on what was in them.
    """
    topics = settings.topics
    wanted = {name: settings.command_partitions for name in topics.command_topics()}
    wanted[topics.events] = settings.events_partitions
    wanted.update(extra or {})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, p, 1) for n, p in wanted.items() if n not in existing]
        if missing:
            response = await admin.create_topics(missing)
            # aiokafka reports failures in the response instead of raising. A topic left
            # uncreated would be auto-created by the broker on first use, with the broker's
            # default partition count, so a failure here must not pass silently.
            failed = [
                f"{topic[0]} (error {topic[1]})"
                for topic in response.topic_errors
                if topic[1] not in (0, TOPIC_ALREADY_EXISTS)
            ]
            if failed:
                raise BusUnavailable(f"could not create Kafka topics: {', '.join(failed)}")
    finally:
        await admin.close()


async def broker_answers(producer: AIOKafkaProducer, timeout: float = 2.0) -> bool:
    """A real round trip (a metadata request), not the client's cached metadata."""
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
    except Exception:
        return False
    return True


class CommandBus:
    """Publishes commands and awaits their replies on this instance's reply topic."""

    def __init__(self, settings: KafkaSettings, instance_id: str | None = None) -> None:
        self.settings = settings
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._generation = 0
        self.reply_topic = self._reply_topic_name()
        self._replies_on_topic = 0
        # Reply topics replaced by a fresh one, deleted once no request awaits a reply there.
        self._retiring: set[str] = set()
        self._in_flight: Counter[str] = Counter()
        # correlation id → (command id, waiting future): a reply must match both, so a late
        # reply to a timed-out command never answers a newer request with the same id.
        self._pending: dict[str, tuple[str, asyncio.Future[Reply]]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    def _reply_topic_name(self) -> str:
        return self.settings.topics.replies(f"{self.instance_id}-{self._generation}")

    async def start(self) -> None:
        await ensure_topics(self.settings, {self.reply_topic: 1})
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            client_id=f"gateway-{self.instance_id}",
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            client_id=f"gateway-{self.instance_id}-replies",
        )
        await self._consumer.start()
        partition = TopicPartition(self.reply_topic, 0)
        self._consumer.assign([partition])
        await self._consumer.seek_to_end(partition)
        self._reader = asyncio.create_task(self._read_replies(), name="reply-reader")

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BusUnavailable("gateway is stopping"))
        if self._consumer:
            await self._consumer.stop()
        if self._producer:
            await self._producer.stop()
        if self._consumer:
            # Reply topics belong to this instance only; leave no clutter behind.
            await self._delete_topics([self.reply_topic, *self._retiring])

    async def _delete_topics(self, names: list[str]) -> None:
        with contextlib.suppress(Exception):
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
            await admin.start()
            try:
                await admin.delete_topics(names)
            finally:
                await admin.close()

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            for partition, records in batches.items():
                if partition.topic == self.reply_topic:
                    self._replies_on_topic += len(records)
                for record in records:
                    try:
                        reply = Reply.model_validate_json(record.value)
                    except ValueError:
                        log.warning("dropping malformed reply", extra={"offset": record.offset})
                        continue
                    waiting = self._pending.get(reply.correlation_id)
                    if waiting is None or waiting[0] != reply.command_id:
                        continue
                    del self._pending[reply.correlation_id]
                    if not waiting[1].done():
                        waiting[1].set_result(reply)
            # Topic changes happen here, between fetches, in the task that owns the consumer.
            if self._replies_on_topic >= self.settings.reply_topic_rotate_after:
                await self._rotate_reply_topic()
            await self._retire_drained_topics()

    async def _rotate_reply_topic(self) -> None:
        assert self._consumer is not None
        self._generation += 1
        fresh = self._reply_topic_name()
        await ensure_topics(self.settings, {fresh: 1})
        await self._reassign([*self._consumer.assignment(), TopicPartition(fresh, 0)])
        # Commands sent from now on are answered on the fresh topic; replies to earlier ones
        # can arrive on the old topic until their deadline.
        self._retiring.add(self.reply_topic)
        self.reply_topic = fresh
        self._replies_on_topic = 0
        log.info("reply topic rotated", extra={"topic": fresh})

    async def _retire_drained_topics(self) -> None:
        assert self._consumer is not None
        drained = [topic for topic in self._retiring if not self._in_flight[topic]]
        if not drained:
            return
        self._retiring.difference_update(drained)
        await self._reassign([p for p in self._consumer.assignment() if p.topic not in drained])
        await self._delete_topics(drained)

    async def _reassign(self, partitions: list[TopicPartition]) -> None:
        """Assign these partitions, keeping the read position of those already assigned
        (`assign` forgets positions) and reading new ones from their beginning."""
        assert self._consumer is not None
        kept = set(self._consumer.assignment())
        positions = {tp: await self._consumer.position(tp) for tp in partitions if tp in kept}
        self._consumer.assign(partitions)
        for tp in partitions:
            if tp in positions:
                self._consumer.seek(tp, positions[tp])
            else:
                # Async: it also brings a new topic into the consumer's metadata.
                await self._consumer.seek_to_beginning(tp)

    async def request(
        self,
        topic: str,
        name: str,
        key: str,
        payload: dict[str, Any],
        *,
        principal: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one command and wait for its reply.

        The command takes the request's correlation id (so the request's log lines and the
        service's share it) and the trace context of a producer span, in the envelope and
        as Kafka headers."""
        assert self._producer is not None, "CommandBus.start() was not awaited"
        correlation_id = CORRELATION_ID.get()
        if correlation_id is None or correlation_id in self._pending:
            correlation_id = new_id()
        command_id = new_id()
        started = time.perf_counter()
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (command_id, fut)
        reply_topic = self.reply_topic
        self._in_flight[reply_topic] += 1
        try:
            with tracer().start_as_current_span(
                f"{topic} publish",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": topic,
                    "tams.command": name,
                    "tams.correlation_id": correlation_id,
                },
            ):
                command = CommandEnvelope(
                    command_id=command_id,
                    name=name,
                    key=key,
                    payload=payload,
                    reply_to=reply_topic,
                    principal=principal,
                    correlation_id=correlation_id,
                    trace_context=inject_trace_context(),
                )
                try:
                    await self._producer.send_and_wait(
                        topic,
                        command.model_dump_json().encode(),
                        key=key.encode(),
                        headers=[("command", name.encode()), *kafka_trace_headers()],
                    )
                except Exception as exc:  # aiokafka raises many KafkaError kinds
                    raise BusUnavailable(f"could not publish command {name}: {exc}") from exc
            try:
                reply = await asyncio.wait_for(fut, timeout or self.settings.reply_timeout_s)
            except TimeoutError as exc:
                raise CommandTimeout(f"no reply to {name} within the deadline") from exc
            COMMAND_ROUND_TRIP_SECONDS.labels(name).observe(time.perf_counter() - started)
            return reply
        finally:
            if self._pending.get(correlation_id, (None,))[0] == command_id:
                del self._pending[correlation_id]
            self._in_flight[reply_topic] -= 1

    async def healthy(self) -> bool:
        """True while the reply reader runs and a broker answers a metadata request now."""
        if self._producer is None or self._reader is None or self._reader.done():
            return False
        return await broker_answers(self._producer)


class CommandPublisher:
    """Publishes commands that nobody waits on (a service restarting its own stalled work),
    to the command topic of the service each is addressed to."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            client_id=self.client_id,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, follow_ups: Sequence[FollowUp]) -> None:
        """Send the commands and wait until the broker has them all."""
        assert self._producer is not None, "CommandPublisher.start() was not awaited"
        sends = []
        for follow_up in follow_ups:
            command = follow_up.command
            sends.append(
                await self._producer.send(
                    self.settings.topics.commands_of(follow_up.service),
                    command.model_dump_json().encode(),
                    key=command.key.encode(),
                    headers=[("command", command.name.encode())],
                )
            )
        if sends:
            await asyncio.gather(*sends)
