"""Webhooks service wiring: webhook registrations and delivery of TAMS events.

Consumes `tams.webhooks.commands` (registrations) and, with the webhooks issue, the public
events topic for delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from tams_runtime.service import run, serve_command_service
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import WriteTx

SERVICE = "webhooks"

HANDLERS: dict[str, Callable[[WriteTx, CommandEnvelope], Outcome]] = {}


async def main() -> None:
    await serve_command_service(
        SERVICE, lambda kafka: kafka.topics.webhooks_commands, lambda _store: HANDLERS
    )


def entrypoint() -> None:
    run(SERVICE, main)
