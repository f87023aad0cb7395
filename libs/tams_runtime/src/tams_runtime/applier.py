"""Applies commands to a store exactly once, recording each outcome with the change.

A service supplies one function per command name, `apply(tx, command) -> Outcome`, that
validates and writes inside the given transaction. The applier runs a whole batch in one
transaction; a command already applied (a redelivery after a crash) is answered from its
recorded outcome instead of being applied again.

A handler may also have `prepare(commands)` (awaited before the transaction, for I/O such as
an S3 HEAD) and `committed(command, outcome)` (called once the transaction that applied the
command has committed, never for a replayed outcome: the place to count what was done).
A handler whose `prepare` skipped work it turns out to need (a cached answer gone stale)
raises `PrepareAgain` inside the transaction: nothing is written, and the batch is prepared
and applied again.

An outcome whose events or follow-up commands would not fit a Kafka message (a change that
makes a document, with what its events carry besides, too large) is refused whole: the
transaction is rolled back, the batch's other commands are applied again one by one, and
the command is answered 400 with nothing written. Published, such an event would only be
dropped (`consumer.EventPublisher`): subscribers would miss a change that was made. The limit
is the service's `MessageLimit`: the producer's, or less where the broker or a topic says so
(tams_runtime.message_size).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pydantic_core import to_json

from tams_runtime.message_size import MessageLimit
from tams_runtime.tracing import command_scope
from tams_schema.envelopes import CommandEnvelope, ErrorBody, Outcome

log = logging.getLogger(__name__)


class OutcomeLog(Protocol):
    def recorded_outcome(self, command_id: str) -> Outcome | None: ...

    def record_outcome(self, command_id: str, outcome: Outcome) -> None: ...


class PrepareAgain(Exception):
    """Roll the batch back and run `prepare` again: what it skipped is needed after all.
    The handler must not skip the same thing twice, so this ends."""


class CommandRefused(Exception):
    """Raised inside the transaction: roll back what the command wrote, and answer it with
    `outcome` (recorded like any other)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.body)
        self.outcome = outcome


def unpublishable(outcome: Outcome, limit: MessageLimit | None = None) -> str | None:
    """Why an outcome's events or follow-up commands cannot be sent (one would not fit a
    Kafka message of `limit`, the producer's by default), or None when they can."""
    content_bytes = (limit or MessageLimit()).content_bytes
    for event in outcome.events:
        size = len(event.key.encode()) + len(to_json(event.payload()))
        size += sum(len(name) + len(value) for name, value in event.context.headers())
        if size > content_bytes:
            return f"its {event.event_type} event would be {size} bytes"
    for follow_up in outcome.commands:
        command = follow_up.command
        # Bytes, as sent (`.encode()`): a character of a document's text may take up to 4.
        size = len(command.key.encode()) + len(command.model_dump_json().encode())
        if size > content_bytes:
            # The catalog's events travel in `events.relay` commands (events.relay_events).
            return f"its {command.name} command would be {size} bytes"
    return None


class CommandApplier:
    """The `CommandHandler` of a service: dispatches by command name."""

    def __init__(
        self,
        store: Any,
        handlers: Mapping[str, Callable[[Any, CommandEnvelope], Outcome]],
        *,
        is_retryable: Callable[[BaseException], bool],
        limit: MessageLimit | None = None,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.is_retryable = is_retryable
        # Shared with the command consumer, which lowers it at start to what the broker takes.
        self.limit = limit or MessageLimit()

    def _apply_one(
        self,
        tx: OutcomeLog,
        command: CommandEnvelope,
        fresh: list[tuple[CommandEnvelope, Outcome]],
    ) -> Outcome:
        with command_scope(command.command_id, command.correlation_id):
            handler = self.handlers.get(command.name)
            if handler is not None and _changes_nothing(handler):
                # (events.Relay): applying it again is harmless, so nothing is recorded.
                outcome = handler(tx, command)
                fresh.append((command, outcome))
                return outcome
            prior = tx.recorded_outcome(command.command_id)
            if prior is not None:
                return prior
            if handler is None:
                summary = f"unknown command {command.name!r}"
                outcome = Outcome.error(400, "UnknownCommand", summary)
            else:
                outcome = handler(tx, command)
                problem = unpublishable(outcome, self.limit)
                if problem is not None:
                    summary = (
                        f"{command.name} was refused and nothing was changed: {problem}, more "
                        f"than a Kafka message holds (at most {self.limit.bytes} bytes with "
                        "its headers); make the documents, tags, collections or auth_classes "
                        "it touches smaller, or send less at once"
                    )
                    raise CommandRefused(Outcome.error(400, "BadRequest", summary))
            tx.record_outcome(command.command_id, outcome)
            fresh.append((command, outcome))
            return outcome

    async def _write(self, commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        """Apply in one transaction, then tell the handlers what it committed."""
        fresh: list[tuple[CommandEnvelope, Outcome]] = []

        def work(tx: Any) -> list[Outcome]:
            fresh.clear()  # an adapter may run the work again after a conflict
            return [self._apply_one(tx, c, fresh) for c in commands]

        if all(_changes_nothing(self.handlers.get(c.name)) for c in commands):
            # Only relays (a catalog busy with flows): no transaction to open.
            return work(None)
        outcomes: list[Outcome] = await self.store.write(work)
        for command, outcome in fresh:
            committed = getattr(self.handlers.get(command.name), "committed", None)
            if committed is not None:
                committed(command, outcome)
        return outcomes

    async def _prepare(self, commands: Sequence[CommandEnvelope]) -> None:
        # Handlers that need I/O outside the store (an S3 HEAD, say) do it first, so the
        # transaction never waits on the network.
        for name in {c.name for c in commands}:
            prepare = getattr(self.handlers.get(name), "prepare", None)
            if prepare is not None:
                await prepare([c for c in commands if c.name == name])

    async def _prepare_and_write(self, commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        while True:
            await self._prepare(commands)
            try:
                return await self._write(commands)
            except PrepareAgain:
                continue

    async def __call__(self, commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        try:
            return await self._prepare_and_write(commands)
        except CommandRefused:
            # Rolled back with the refused command: the others are applied again.
            pass
        except Exception as exc:
            if self.is_retryable(exc):
                raise
            log.warning("batch failed; applying its commands one by one", exc_info=True)
        outcomes = []
        for command in commands:
            try:
                outcomes += await self._prepare_and_write([command])
            except CommandRefused as exc:
                with command_scope(command.command_id, command.correlation_id):
                    log.info(
                        "command refused: its events would not fit a Kafka message",
                        extra={"command": command.name},
                    )
                await self.store.write(
                    lambda tx, c=command, o=exc.outcome: tx.record_outcome(c.command_id, o)
                )
                outcomes.append(exc.outcome)
            except Exception as exc:
                if self.is_retryable(exc):
                    raise
                # A bug, not a store outage: answer 500 and record it, so the partition is
                # not blocked by a command that can never be applied.
                with command_scope(command.command_id, command.correlation_id):
                    log.exception("command failed", extra={"command": command.name})
                failure = Outcome(
                    status=500,
                    body=ErrorBody(
                        type="InternalError",
                        summary=f"{command.name} failed: {type(exc).__name__}",
                        traceback=traceback.format_exception_only(exc),
                    ).as_json(),
                )
                await self.store.write(
                    lambda tx, c=command, f=failure: tx.record_outcome(c.command_id, f)
                )
                outcomes.append(failure)
        return outcomes


def _changes_nothing(handler: object) -> bool:
    """Whether a handler neither reads nor writes the store, and so needs no recorded
    outcome (`records_outcome = False`, events.Relay)."""
    return handler is not None and not getattr(handler, "records_outcome", True)
