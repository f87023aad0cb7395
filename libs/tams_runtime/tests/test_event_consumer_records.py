"""Records on the events topic that are not this server's events are skipped, whatever their
headers hold: one that raised instead ended the consume loop, and with it the service
(tams_runtime.service.fail), which started again at the same record and stopped again until
`tams up` gave up on the whole stack. No broker: the fetch is handed to the loop's step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from tams_runtime.event_consumer import EventConsumer, ReceivedEvent
from tams_runtime.settings import KafkaSettings


@dataclass
class Record:
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    offset: int = 0


class Wanting:
    """A handler that wants one event type, as the webhooks router does."""

    def __init__(self) -> None:
        self.received: list[ReceivedEvent] = []

    def wanted_types(self) -> set[str]:
        return {"flows/created"}

    async def __call__(self, events: Sequence[ReceivedEvent]) -> None:
        self.received += events


async def test_records_with_null_or_undecodable_headers_are_skipped() -> None:
    handler = Wanting()
    consumer = EventConsumer(KafkaSettings(), "test", handler)
    value = b'{"event_type": "flows/created", "event_timestamp": "x", "event": {}}'
    fetch = {
        TopicPartition("events", 0): [
            Record(b"k", value, [("event_type", None)]),
            Record(b"k", value, [("event_type", b"\xff")]),
            Record(b"k", value, [("event_type", b"flows/created"), ("event_id", None)]),
        ]
    }
    await consumer._handle(fetch)  # raised AttributeError (None.decode()) before
    assert handler.received == []
