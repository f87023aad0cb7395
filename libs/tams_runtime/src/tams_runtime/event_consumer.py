"""Following the public events topic in a consumer group: handle a batch, then commit.

The handler gets every event of one fetch (all partitions) and must make its effect durable
before it returns; only then are the offsets committed (in batches, every
`commit_interval_s`). A crash in between redelivers those events, so a handler deduplicates
on `event_id`, which is also what protects it from events that a command service re-published
after its own crash. A handler that raises (store trouble) gets the same batch again after a
backoff: events are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tams_runtime.metrics import LagRecorder
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import EventContext, TamsEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedEvent:
    """A TAMS event as read from the topic: `payload` is the published JSON value exactly
    (the webhook body), `event` the same with its id and routing context, `trace_context`
    the W3C trace headers of the change that caused it (empty when it was not traced)."""

    event: TamsEvent
    payload: dict[str, Any]
    trace_context: dict[str, str] = field(default_factory=dict)


EventHandler = Callable[[Sequence[ReceivedEvent]], Awaitable[None]]


def parse_record(
    key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
) -> ReceivedEvent:
    """Raises ValueError for a record that is not a TAMS event of this server."""
    names = {name: raw.decode() for name, raw in headers}
    payload = json.loads(value)
    if not isinstance(payload, dict) or "event_id" not in names:
        raise ValueError("not a TAMS event (no event_id header, or not a JSON object)")
    event = TamsEvent(
        event_id=names["event_id"],
        key=key.decode() if key else "",
        event_type=payload["event_type"],
        event_timestamp=payload["event_timestamp"],
        event=payload["event"],
        context=EventContext.from_headers(names),
    )
    trace_context = {k: v for k, v in names.items() if k in ("traceparent", "tracestate")}
    return ReceivedEvent(event=event, payload=payload, trace_context=trace_context)


class EventConsumer:
    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        handler: EventHandler,
        *,
        retry_backoff_s: float = 0.5,
        commit_interval_s: float = 0.05,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.events
        self.group_id = group_id
        self.handler = handler
        self.retry_backoff_s = retry_backoff_s
        self.commit_interval_s = commit_interval_s
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag = LagRecorder(group_id)
        self._lag_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            # A new group starts at the oldest retained event: events published while the
            # service was first being deployed are not lost.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            max_poll_records=self.settings.max_poll_records,
            client_id=f"{self.group_id}-events",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"events:{self.group_id}")
        self._lag_task = asyncio.create_task(
            self._lag.run(self._consumer), name=f"lag:{self.group_id}"
        )

    async def stop(self) -> None:
        for task in (self._lag_task, self._task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._consumer:
            await self._consumer.stop()

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def healthy(self) -> bool:
        return self.running()

    async def _run(self) -> None:
        assert self._consumer is not None
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        last_commit = time.monotonic()
        while True:
            wait_ms = int(self.commit_interval_s * 1000) if pending else 1000
            batches = await self._consumer.getmany(timeout_ms=wait_ms)
            if batches:
                await self._handle(batches)
                for partition, records in batches.items():
                    pending[partition] = OffsetAndMetadata(records[-1].offset + 1, "")
            due = time.monotonic() - last_commit >= self.commit_interval_s
            if pending and (due or not batches):
                await self._consumer.commit(pending)
                pending = {}
                last_commit = time.monotonic()

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        events: list[ReceivedEvent] = []
        for records in batches.values():
            for record in records:
                try:
                    events.append(parse_record(record.key, record.value, record.headers))
                except (ValueError, KeyError, TypeError):
                    log.error(
                        "skipping a record that is not a TAMS event",
                        extra={"topic": self.topic, "offset": record.offset},
                    )
        if not events:
            return
        while True:
            try:
                await self.handler(events)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event batch failed; retrying", extra={"topic": self.topic})
                await asyncio.sleep(self.retry_backoff_s)
