"""Catalog service wiring: sources, flows, profiles and service info.

Consumes `tams.catalog.commands` (keyed by flow or source id), applies each command to the
store through the port, publishes the TAMS events, and answers the gateway.
"""

from __future__ import annotations

from tams_catalog.handlers import HANDLERS
from tams_runtime.applier import CommandApplier
from tams_runtime.components import StoreComponent
from tams_runtime.consumer import CommandConsumer
from tams_runtime.service import run, serve
from tams_runtime.settings import KafkaSettings
from tams_store import StoreUnavailable, open_store_from_env

SERVICE = "catalog"


async def main() -> None:
    kafka = KafkaSettings()
    store = open_store_from_env()
    applier = CommandApplier(
        store, HANDLERS, is_retryable=lambda exc: isinstance(exc, StoreUnavailable)
    )
    consumer = CommandConsumer(
        kafka, kafka.topics.catalog_commands, group_id="tams-catalog", handler=applier
    )
    await serve(
        SERVICE,
        [StoreComponent(store), consumer],
        {"store": store.ping, "broker": consumer.healthy},
    )


def entrypoint() -> None:
    run(SERVICE, main)
