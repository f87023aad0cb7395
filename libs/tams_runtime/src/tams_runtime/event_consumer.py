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
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from pydantic_core import from_json

from tams_runtime.group_consumer import GroupConsumer
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


def _header_text(raw: bytes | None) -> str | None:
    """A header's value as text; None for a null or undecodable one. Kafka allows both, and
    a record this loop cannot read must be skipped, not end the loop: its service would stop,
    start again at the same record, and stop again (tams_runtime.service.fail)."""
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _event_type(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    for name, raw in headers:
        if name == "event_type":
            return _header_text(raw)
    return None


def parse_record(
    key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes | None]]
) -> ReceivedEvent:
    """Raises ValueError for a record that is not a TAMS event of this server."""
    names = {name: text for name, raw in headers if (text := _header_text(raw)) is not None}
    payload = from_json(value)
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
        idle_read_interval_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.idle_read_interval_s = idle_read_interval_s
        self.topic = settings.topics.events
        self.group_id = group_id
        self.handler = handler
        self.retry_backoff_s = retry_backoff_s
        # True from a failed attempt at a batch until that batch succeeds: events are not
        # being delivered meanwhile, however healthy the loop and the broker look.
        self.failing = False
        self._loop = GroupConsumer(
            settings,
            self.topic,
            group_id,
            self._handle,
            client_id=f"{group_id}-events",
            commit_interval_s=commit_interval_s,
            pace_s=self._pace if idle_read_interval_s > 0 else None,
        )

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def running(self) -> bool:
        return self._loop.running()

    async def healthy(self) -> bool:
        """Readiness: the loop runs and its handler is not stuck retrying a batch."""
        return self.running() and not self.failing

    def _pace(self) -> float:
        """How long to wait before reading on, once caught up: `idle_read_interval_s` while
        the handler wants no event type at all, else nothing."""
        wanted_types = getattr(self.handler, "wanted_types", None)
        idle = wanted_types is not None and not wanted_types()
        return self.idle_read_interval_s if idle else 0.0

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        # A handler may say which event types it wants right now (`wanted_types()`, None for
        # all): the others are skipped on their `event_type` header, never parsed.
        wanted_types = getattr(self.handler, "wanted_types", None)
        wanted = wanted_types() if wanted_types is not None else None
        events: list[ReceivedEvent] = []
        for records in batches.values():
            for record in records:
                if wanted is not None and _event_type(record.headers) not in wanted:
                    continue
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
                self.failing = False
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failing = True
                log.exception("event batch failed; retrying", extra={"topic": self.topic})
                await asyncio.sleep(self.retry_backoff_s)
