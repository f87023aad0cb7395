"""Catalog service wiring: sources, flows, profiles and service info.

Consumes `tams.catalog.commands` (keyed by flow or source id), applies each command to the
store through the port, answers the gateway, and hands its TAMS events to the segments
service to publish (`events.relay`).
"""

from __future__ import annotations

from tams_catalog.handlers import handlers
from tams_runtime.service import run, serve_command_service
from tams_runtime.settings import MediaSettings, SoftDeleteSettings

SERVICE = "catalog"


async def main() -> None:
    media = MediaSettings()
    soft_delete = SoftDeleteSettings()
    await serve_command_service(
        SERVICE,
        lambda kafka: kafka.topics.catalog_commands,
        lambda _store: handlers(media, soft_delete),
    )


def entrypoint() -> None:
    run(SERVICE, main)
