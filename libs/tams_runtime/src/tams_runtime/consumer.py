"""The service side of the command bus: apply, publish, answer, then commit.

Each fetch (from every partition this consumer owns) is applied in one store transaction, in
partition order, so the commands of one flow keep their order. Each command's outcome is
recorded under its command id in that same transaction. Then the outcomes' events and the
replies are sent, and once the broker has them all, the offsets become due for commit
(committed in batches, every `commit_interval_s`). A crash anywhere before the commit
redelivers the commands; the handler finds their recorded outcomes and the consumer re-sends
the same events (same event ids), follow-up commands (same command ids) and replies, so every
command is applied once and answered with the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tams_runtime.metrics import (
    COMMAND_BATCH_SIZE,
    COMMAND_RETRIES,
    COMMAND_STAGE_SECONDS,
    COMMANDS_APPLIED,
)
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import EVENT_SCHEMA_VERSION, CommandEnvelope, Outcome, TamsEvent

log = logging.getLogger(__name__)

CommandHandler = Callable[[Sequence[CommandEnvelope]], Awaitable[list[Outcome]]]


class EventPublisher:
    """Publishes TAMS events to the public events topic, keyed by flow (or source) id."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def publish(self, events: Sequence[TamsEvent]) -> None:
        sends = await self.send(events)
        if sends:
            await asyncio.gather(*sends)

    async def send(self, events: Sequence[TamsEvent]) -> list[asyncio.Future[Any]]:
        """Queue the events; the returned futures complete when the broker has them."""
        sends: list[asyncio.Future[Any]] = []
        for event in events:
            headers = [
                ("event_id", event.event_id.encode()),
                ("event_type", event.event_type.encode()),
                ("schema_version", str(EVENT_SCHEMA_VERSION).encode()),
                *event.context.headers(),
            ]
            sends.append(
                await self.producer.send(
                    self.topic,
                    _json_bytes(event.payload()),
                    key=event.key.encode(),
                    headers=headers,
                )
            )
        return sends


def _json_bytes(value: object) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


class CommandConsumer:
    """Consumes one command topic in a consumer group and drives a handler."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        handler: CommandHandler,
        *,
        retry_backoff_s: float = 0.5,
        commit_interval_s: float = 0.05,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        self.retry_backoff_s = retry_backoff_s
        self.commit_interval_s = commit_interval_s
        self.producer: AIOKafkaProducer | None = None
        self.events: EventPublisher | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.applied = 0

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            client_id=f"{self.group_id}-producer",
        )
        await self.producer.start()
        self.events = EventPublisher(self.producer, self.settings.topics.events)
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            max_poll_records=self.settings.max_poll_records,
            client_id=f"{self.group_id}-consumer",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"commands:{self.topic}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()
        if self.producer:
            await self.producer.stop()

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def healthy(self) -> bool:
        if not self.running() or self.producer is None:
            return False
        try:
            await asyncio.wait_for(self.producer.partitions_for(self.topic), 2)
        except Exception:
            return False
        return True

    async def _run(self) -> None:
        assert self._consumer is not None
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        last_commit = time.monotonic()
        while True:
            # While offsets wait to be committed, poll briefly so they are committed soon.
            wait_ms = int(self.commit_interval_s * 1000) if pending else 1000
            batches = await self._consumer.getmany(timeout_ms=wait_ms)
            if batches:
                await self._process(batches)
                for partition, records in batches.items():
                    pending[partition] = OffsetAndMetadata(records[-1].offset + 1, "")
            due = time.monotonic() - last_commit >= self.commit_interval_s
            if pending and (due or not batches):
                started = time.perf_counter()
                await self._consumer.commit(pending)
                COMMAND_STAGE_SECONDS.labels(self.topic, "commit").observe(
                    time.perf_counter() - started
                )
                pending = {}
                last_commit = time.monotonic()

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Apply every fetched command, all partitions in one transaction, then publish.

        Each flow's commands live in one partition and keep their order here. Offsets are
        committed afterwards (batched): a crash before that redelivers commands whose
        outcomes are recorded, so they are answered again, not applied again.
        """
        commands: list[CommandEnvelope] = []
        for records in batches.values():
            for record in records:
                try:
                    commands.append(CommandEnvelope.model_validate_json(record.value))
                except ValueError:
                    log.error(
                        "skipping malformed command",
                        extra={"topic": self.topic, "offset": record.offset},
                    )
        if not commands:
            return
        while True:
            try:
                started = time.perf_counter()
                outcomes = await self.handler(commands)
                applied = time.perf_counter()
                COMMAND_STAGE_SECONDS.labels(self.topic, "apply").observe(applied - started)
                await self._publish(commands, outcomes)
                COMMAND_STAGE_SECONDS.labels(self.topic, "publish").observe(
                    time.perf_counter() - applied
                )
                for outcome in outcomes:
                    COMMANDS_APPLIED.labels(self.topic, f"{outcome.status // 100}xx").inc()
                COMMAND_BATCH_SIZE.labels(self.topic).observe(len(commands))
                self.applied += len(commands)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # Store or broker trouble: nothing was acknowledged, so try the same batch
                # again; recorded outcomes make the retry apply each command at most once.
                log.exception("command batch failed; retrying", extra={"topic": self.topic})
                COMMAND_RETRIES.labels(self.topic).inc()
                await asyncio.sleep(self.retry_backoff_s)

    async def _publish(self, commands: Sequence[CommandEnvelope], outcomes: list[Outcome]) -> None:
        """Send the events, the follow-up commands and the replies, and wait until the broker
        has them all (only then are the offsets committed)."""
        assert self.producer is not None and self.events is not None
        sends = await self.events.send([e for outcome in outcomes for e in outcome.events])
        follow_ups = [f for outcome in outcomes for f in outcome.commands]
        if follow_ups and sends:
            # A follow-up can make another service publish events under the same key (the
            # catalog's flows/deleted after the last segments_deleted): ours must be in the
            # topic first, or per-key order breaks.
            await asyncio.gather(*sends)
            sends = []
        topics = self.settings.topics
        for follow_up in follow_ups:
            sends.append(
                await self.producer.send(
                    topics.commands_of(follow_up.service),
                    follow_up.command.model_dump_json().encode(),
                    key=follow_up.command.key.encode(),
                    headers=[("command", follow_up.command.name.encode())],
                )
            )
        for command, outcome in zip(commands, outcomes, strict=True):
            if command.reply_to:
                reply = outcome.reply_for(command)
                sends.append(
                    await self.producer.send(
                        command.reply_to,
                        reply.model_dump_json().encode(),
                        key=command.key.encode(),
                    )
                )
        if sends:
            await asyncio.gather(*sends)
