"""Segments service wiring: storage allocation, segments, objects, deletion requests.

Consumes `tams.segments.commands` (keyed by flow id). The command handlers arrive with the
media issue; until then the service runs its consumer and probes so the stack is complete.
"""

from __future__ import annotations

from collections.abc import Callable

from tams_runtime.service import run, serve_command_service
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import WriteTx

SERVICE = "segments"

HANDLERS: dict[str, Callable[[WriteTx, CommandEnvelope], Outcome]] = {}


async def main() -> None:
    await serve_command_service(SERVICE, lambda kafka: kafka.topics.segments_commands, HANDLERS)


def entrypoint() -> None:
    run(SERVICE, main)
