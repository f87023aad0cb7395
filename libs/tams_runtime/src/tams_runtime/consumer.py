"""The service side of the command bus: apply, publish, answer, then commit.

For each batch fetched from one partition the consumer hands the commands, in order, to the
service's handler, which applies them to the store (recording each outcome under its command
id in the same transaction). Then it publishes the outcome's events, then the replies, and only
then commits the offsets. A crash anywhere before the commit redelivers the batch; the handler
finds the recorded outcomes and the consumer re-publishes the same events (same event ids) and
replies, so every command is applied once and answered with the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

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
        sends = []
        for event in events:
            headers = [
                ("event_id", event.event_id.encode()),
                ("event_type", event.event_type.encode()),
                ("schema_version", str(EVENT_SCHEMA_VERSION).encode()),
            ]
            sends.append(
                await self.producer.send(
                    self.topic,
                    _json_bytes(event.payload()),
                    key=event.key.encode(),
                    headers=headers,
                )
            )
        if sends:
            await asyncio.gather(*sends)


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
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        self.retry_backoff_s = retry_backoff_s
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
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for partition, records in batches.items():
                await self._process(partition, records)

    async def _process(self, partition: TopicPartition, records: list[object]) -> None:
        assert self._consumer is not None
        commands: list[CommandEnvelope] = []
        for record in records:
            try:
                commands.append(CommandEnvelope.model_validate_json(record.value))  # type: ignore[attr-defined]
            except ValueError:
                log.error(
                    "skipping malformed command",
                    extra={"topic": self.topic, "offset": record.offset},  # type: ignore[attr-defined]
                )
        next_offset = records[-1].offset + 1  # type: ignore[attr-defined]
        while True:
            try:
                if commands:
                    outcomes = await self.handler(commands)
                    await self._publish(commands, outcomes)
                await self._consumer.commit({partition: OffsetAndMetadata(next_offset, "")})
                self.applied += len(commands)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # Store or broker trouble: nothing was acknowledged, so try the same batch
                # again; recorded outcomes make the retry apply each command at most once.
                log.exception("command batch failed; retrying", extra={"topic": self.topic})
                await asyncio.sleep(self.retry_backoff_s)

    async def _publish(self, commands: Sequence[CommandEnvelope], outcomes: list[Outcome]) -> None:
        assert self.producer is not None and self.events is not None
        # Events first, so that a client that has seen the reply can find the event.
        await self.events.publish([e for outcome in outcomes for e in outcome.events])
        sends = []
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
