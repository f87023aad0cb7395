"""Segments service wiring: storage allocation, segments, objects, deletion requests.

Consumes `tams.segments.commands` (keyed by flow id). The command handlers arrive with the
media issue; until then the service runs its consumer and probes so the stack is complete.
"""

from __future__ import annotations

from collections.abc import Callable

from tams_runtime.applier import CommandApplier
from tams_runtime.components import StoreComponent
from tams_runtime.consumer import CommandConsumer
from tams_runtime.service import run, serve
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import StoreUnavailable, WriteTx, open_store_from_env

SERVICE = "segments"

HANDLERS: dict[str, Callable[[WriteTx, CommandEnvelope], Outcome]] = {}


async def main() -> None:
    kafka = KafkaSettings()
    store = open_store_from_env()
    applier = CommandApplier(
        store, HANDLERS, is_retryable=lambda exc: isinstance(exc, StoreUnavailable)
    )
    consumer = CommandConsumer(
        kafka, kafka.topics.segments_commands, group_id="tams-segments", handler=applier
    )
    await serve(
        SERVICE,
        [StoreComponent(store), consumer],
        {"store": store.ping, "broker": consumer.healthy},
    )


def entrypoint() -> None:
    run(SERVICE, main)
