"""The service side of the command bus: apply, answer, publish, then commit.

Each fetch (from every partition this consumer owns) is applied in partition order, so the
commands of one flow keep their order: in one store transaction, or in transactions of at most
`commands_per_transaction` commands. Each command's outcome is recorded under its command id
in the transaction that applies it. As each transaction commits, its replies go straight to
the waiting gateways (tams_runtime.replies), so a gateway answers the first commands of a
large fetch while the rest are applied. Then the outcomes' events and follow-up commands are
sent, and once the broker has them all, the offsets become due for commit (committed in
batches, every `commit_interval_s`). A reply therefore means the change is in the store; its
events may reach the topic a few milliseconds later. The next fetch is applied while the broker
acknowledges this one's sends; its own sends follow once those are in (`GroupConsumer`). A
crash anywhere before the commit redelivers the commands; the handler finds their recorded
outcomes and the consumer re-sends the same replies, events (same event ids) and follow-up
commands (same command ids), so every command is applied once and answered with the same result.

An event or follow-up command refused as too large for a Kafka message, by the producer or by
the broker, is dropped with an error log and `tams_messages_too_large_total`, not sent again:
it would be refused again, and the partition would be held for ever. Its change is committed
and answered, so subscribers miss that event. The applier refuses up front what would not fit
the limit read at start (tams_runtime.message_size); this is for a limit lowered since, and a
refusal by the broker has the limit read again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic_core import to_json

from tams_runtime.bus import broker_answers, ensure_topics
from tams_runtime.epochs import CommandTopics, EpochAssignment, topic_family
from tams_runtime.group_consumer import GroupConsumer, Publish, Rest
from tams_runtime.logs import correlated
from tams_runtime.message_size import BATCH_BYTES, LimitReader, MessageLimit
from tams_runtime.metrics import (
    COMMAND_BATCH_SIZE,
    COMMAND_QUEUE_SECONDS,
    COMMAND_RETRIES,
    COMMAND_STAGE_SECONDS,
    COMMANDS_APPLIED,
    MESSAGES_TOO_LARGE,
)
from tams_runtime.partitioner import KeyPartitioner
from tams_runtime.replies import ReplySender
from tams_runtime.settings import KafkaSettings
from tams_runtime.tracing import (
    commands_in_flight,
    context_from_kafka_headers,
    extract_trace_context,
    kafka_trace_headers,
    recording,
    tracer,
    unrecorded_span,
)
from tams_schema.envelopes import EVENT_SCHEMA_VERSION, CommandEnvelope, Outcome, TamsEvent

log = logging.getLogger(__name__)
# What no retry can help: the producer's or the broker's refusal of a message too large
# (MESSAGE_TOO_LARGE), or of a batch larger than the topic's segments (RECORD_LIST_TOO_LARGE).
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)

T = TypeVar("T")

CommandHandler = Callable[[Sequence[CommandEnvelope]], Awaitable[list[Outcome]]]


class EventPublisher:
    """Publishes TAMS events to the public events topic, keyed by flow (or source) id."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        on_broker_refusal: Callable[[], None] | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        # Called when the broker refuses an event as too large (not the producer's check).
        self.on_broker_refusal = on_broker_refusal

    async def publish(self, events: Sequence[TamsEvent]) -> None:
        sends = await self.send(events)
        if sends:
            await asyncio.gather(*sends)

    async def send(
        self,
        events: Sequence[TamsEvent],
        extra_headers: Sequence[tuple[str, bytes]] = (),
        *,
        command_id: str | None = None,
    ) -> list[asyncio.Future[Any]]:
        """Queue the events; the returned futures complete when the broker has them, or has
        refused one as too large (dropped, see `too_large`).

        `extra_headers` go on every event (the trace context of the command that caused
        them, `command_id`; the current one by default)."""
        sends: list[asyncio.Future[Any]] = []
        trace_headers = list(extra_headers) or kafka_trace_headers()
        for event in events:
            headers = [
                ("event_id", event.event_id.encode()),
                ("event_type", event.event_type.encode()),
                ("schema_version", str(EVENT_SCHEMA_VERSION).encode()),
                *event.context.headers(),
                *trace_headers,
            ]
            # Sending it again cannot help, and retrying would hold every later change of the
            # partition: dropped, loudly. (The applier refuses what would not fit; this is
            # the last line.)
            dropped = functools.partial(self._too_large, event, command_id)
            try:
                sent = await self.producer.send(
                    self.topic,
                    _json_bytes(event.payload()),
                    key=event.key.encode(),
                    headers=headers,
                )
            except TOO_LARGE as exc:
                dropped(exc)
            else:
                sends.append(_unless_too_large(sent, dropped, self.on_broker_refusal))
        return sends

    def _too_large(self, event: TamsEvent, command_id: str | None, error: KafkaError) -> None:
        too_large(
            "event too large for a Kafka message; not published",
            self.topic,
            {"command_id": command_id, "event_id": event.event_id, "event_type": event.event_type},
            error,
        )


def too_large(message: str, topic: str, extra: dict[str, str | None], error: KafkaError) -> None:
    """Report a message dropped as too large, by the producer's check or by the broker."""
    log.error(message, extra={**extra, "topic": topic, "error": str(error)})
    MESSAGES_TOO_LARGE.labels(topic_family(topic)).inc()


def _unless_too_large(
    sent: asyncio.Future[Any],
    dropped: Callable[[KafkaError], None],
    refused: Callable[[], None] | None = None,
) -> asyncio.Future[Any]:
    """`sent`, except that the broker refusing the message as too large (MESSAGE_TOO_LARGE,
    which aiokafka does not retry) completes it, with None, once `dropped` has reported it
    (and `refused` has been told)."""
    settled: asyncio.Future[Any] = sent.get_loop().create_future()

    def done(sent: asyncio.Future[Any]) -> None:
        if settled.done():
            return
        if sent.cancelled():
            settled.cancel()
            return
        error = sent.exception()
        if isinstance(error, TOO_LARGE):
            dropped(error)
            if refused is not None:
                refused()
            settled.set_result(None)
        elif error is not None:
            settled.set_exception(error)
        else:
            settled.set_result(sent.result())

    sent.add_done_callback(done)
    return settled


def _json_bytes(value: object) -> bytes:
    # pydantic-core's serialiser: compact JSON, several times faster than `json.dumps` on a
    # bulk registration's event.
    return to_json(value)


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
        commit_interval_s: float = 0.05,
        lag_interval_s: float = 5.0,
        commands_per_transaction: int = 0,
        limit: MessageLimit | None = None,
    ) -> None:
        self.settings = settings
        # The applier's too (`CommandApplier(limit=...)`): set at start to what the broker
        # takes, and again when the broker refuses a message as too large.
        self.limit = limit or MessageLimit()
        # Reads `limit` at start and again after a refusal (tams_runtime.message_size).
        self.limits = LimitReader(
            self.limit,
            settings.bootstrap_servers,
            [settings.topics.events, *settings.topics.command_topics()],
        )
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        # 0: a whole fetch in one transaction.
        self.commands_per_transaction = commands_per_transaction
        self.retry_backoff_s = retry_backoff_s
        # True while a batch is being retried (the store or the broker refuses it).
        self.failing = False
        self.producer: AIOKafkaProducer | None = None
        self.events: EventPublisher | None = None
        # Where this service's follow-up commands go, and (with epochs) which of its own
        # command topic's epochs it reads.
        self._topics = CommandTopics(settings)
        rest = (
            Rest(settings.quiet_after_ms / 1000, settings.quiet_poll_ms / 1000)
            if settings.quiet_after_ms
            else None
        )
        self._loop = GroupConsumer(
            settings,
            topic,
            group_id,
            self._process,
            client_id=f"{group_id}-consumer",
            commit_interval_s=commit_interval_s,
            lag_interval_s=lag_interval_s,
            on_commit=COMMAND_STAGE_SECONDS.labels(topic, "commit").observe,
            epochs=EpochAssignment(self._topics, topic) if self._topics.enabled else None,
            rest=rest,
            # Sends refused because a topic is gone (a restarted local broker forgets them
            # all): make the missing topics again before sending again.
            recover=functools.partial(ensure_topics, settings),
        )
        self.applied = 0
        # The series the alerts watch exist from the start, at 0: `increase()` cannot see a
        # counter's first increment when the series is born with it (a lone failed command).
        self._applied_by_class = {
            status_class: COMMANDS_APPLIED.labels(topic, f"{status_class}xx")
            for status_class in (2, 4, 5)
        }
        self._retries = COMMAND_RETRIES.labels(topic)
        for destination in (settings.topics.events, *settings.topics.command_topics()):
            MESSAGES_TOO_LARGE.labels(destination)
        # While resting, the consumer listens for its gateways' wake-ups on the connections
        # its replies take to them.
        self.replies = (
            ReplySender(listen=topic, on_wake=rest.wake) if rest is not None else ReplySender()
        )

    async def start(self) -> None:
        await self.limits.read()
        # Read again later, the limit may fall, not rise above the producer's own.
        self.limits.producer_bytes = self.limit.bytes
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            partitioner=KeyPartitioner(),
            client_id=f"{self.group_id}-producer",
            # The producer refuses, before sending, what the broker would refuse.
            max_request_size=self.limit.bytes,
            max_batch_size=min(BATCH_BYTES, self.limit.bytes),
        )
        await self.producer.start()
        self._topics.track(self.producer, [self.settings.topics.events])
        self.events = EventPublisher(
            self.producer, self.settings.topics.events, self.limits.refused
        )
        await self._loop.start()

    @property
    def resting(self) -> bool:
        """True while the consumer, idle, fetches nothing until woken (`Rest`)."""
        return self._loop.resting

    async def stop(self) -> None:
        await self._loop.stop()
        await self.limits.stop()
        await self.replies.stop()
        if self.producer:
            await self.producer.stop()
        await self._topics.stop()

    def running(self) -> bool:
        return self._loop.running()

    async def healthy(self) -> bool:
        """True while the consumer loop runs and a broker answers a metadata request now."""
        if not self.running() or self.producer is None:
            return False
        return await broker_answers(self.producer)

    async def applying(self) -> bool:
        """Readiness: not stuck retrying a batch, nor sending its outcomes again. A store
        that answers reads but refuses writes (a full disk, say) passes the store check, and a
        broker that answers metadata requests but refuses writes the broker check; this one
        fails for both."""
        return self.running() and not self.failing and not self._loop.resending

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> Publish | None:
        """Apply every fetched command, all partitions together, answering each transaction's
        commands once it commits; return the step that sends the outcomes.

        Each flow's commands live in one partition and keep their order here. The offsets
        are committed once the broker has every send (batched). A crash before then
        redelivers commands whose outcomes are recorded, so they are answered again, not
        applied again.
        """
        commands: list[CommandEnvelope] = []
        parents: list[Any] = []
        for records in batches.values():
            for record in records:
                try:
                    commands.append(CommandEnvelope.model_validate_json(record.value))
                except ValueError:
                    log.error(
                        "skipping malformed command",
                        extra={"topic": self.topic, "offset": record.offset},
                    )
                    continue
                parents.append(record.headers)
        if not commands:
            return None
        spans = self._start_spans(commands, parents)
        outcomes: list[Outcome] = []
        try:
            # The batch's shared work (its transaction) is traced under the first command;
            # the applier makes each command's own span current while applying it.
            with (
                commands_in_flight({c.command_id: s for c, s in zip(commands, spans, strict=True)}),
                trace.use_span(spans[0], end_on_exit=False),
                correlated(commands[0].correlation_id if len(commands) == 1 else None),
            ):
                for part in self._transactions(commands):
                    applied = await self._apply_until_done(part)
                    outcomes += applied
                    self._answer(part, applied)
        finally:
            for index, span in enumerate(spans):
                if index < len(outcomes):
                    status = outcomes[index].status
                    span.set_attribute("tams.status", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                span.end()
        if log.isEnabledFor(logging.DEBUG):
            self._log_applied(commands, outcomes, spans)
        return functools.partial(self._publish, commands, outcomes, spans)

    def _transactions(self, commands: list[CommandEnvelope]) -> list[list[CommandEnvelope]]:
        """The fetch's commands, in order, split into the runs each transaction applies."""
        size = self.commands_per_transaction or len(commands)
        return [commands[start : start + size] for start in range(0, len(commands), size)]

    def _answer(self, commands: Sequence[CommandEnvelope], outcomes: Sequence[Outcome]) -> None:
        """Reply to the gateways waiting on these commands: their changes are in the store."""
        self.replies.send(
            (command.reply_to, outcome.reply_for(command).model_dump_json().encode())
            for command, outcome in zip(commands, outcomes, strict=True)
            if command.reply_to
        )

    async def _apply_until_done(self, commands: list[CommandEnvelope]) -> list[Outcome]:
        # After store trouble nothing was written, so the same batch is applied again;
        # recorded outcomes make each command applied at most once.
        return await self._until_done(lambda: self._apply(commands), "applying a batch failed")

    async def _apply(self, commands: list[CommandEnvelope]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes = await self.handler(commands)
        COMMAND_STAGE_SECONDS.labels(self.topic, "apply").observe(time.perf_counter() - started)
        for outcome in outcomes:
            status_class = outcome.status // 100
            applied = self._applied_by_class.get(status_class)
            if applied is None:
                applied = COMMANDS_APPLIED.labels(self.topic, f"{status_class}xx")
            applied.inc()
        COMMAND_BATCH_SIZE.labels(self.topic).observe(len(commands))
        self.applied += len(commands)
        return outcomes

    async def _publish(
        self,
        commands: Sequence[CommandEnvelope],
        outcomes: list[Outcome],
        spans: Sequence[trace.Span],
    ) -> asyncio.Future[Any]:
        """Queue the batch's sends; the future completes when the broker has them all."""

        async def queue() -> asyncio.Future[Any]:
            started = time.perf_counter()
            sent = asyncio.gather(*await self._send(commands, outcomes, spans))
            sent.add_done_callback(self._publish_timer(started))
            return sent

        # After the producer refused a send (its buffer full, say), the batch is sent again:
        # some messages may repeat, with the same ids and in the same order.
        return await self._until_done(queue, "sending a batch failed")

    async def _until_done(self, attempt: Callable[[], Awaitable[T]], failure: str) -> T:
        """Runs `attempt` until it succeeds, waiting `retry_backoff_s` after each failure."""
        while True:
            try:
                result = await attempt()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failing = True
                log.exception(f"{failure}; retrying", extra={"topic": self.topic})
                self._retries.inc()
                await asyncio.sleep(self.retry_backoff_s)
            else:
                self.failing = False
                return result

    def _start_spans(
        self, commands: Sequence[CommandEnvelope], headers: Sequence[Any]
    ) -> list[trace.Span]:
        """A consumer span per command, the child of the gateway span that sent it."""
        now = time.time()
        spans = []
        for command, record_headers in zip(commands, headers, strict=True):
            COMMAND_QUEUE_SECONDS.labels(self.topic).observe(
                max(now - command.issued_at.timestamp(), 0)
            )
            parent = (
                extract_trace_context(command.trace_context)
                if command.trace_context
                else context_from_kafka_headers(record_headers)
            )
            if not recording():
                # Nothing records spans here: the sender's context serves as the command's
                # (its trace id in the logs and in the events), with no span of its own.
                spans.append(unrecorded_span(parent))
                continue
            spans.append(
                tracer().start_span(
                    f"{self.topic} process",
                    context=parent,
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": self.topic,
                        "messaging.consumer.group.name": self.group_id,
                        "tams.command": command.name,
                        "tams.correlation_id": command.correlation_id,
                        "tams.batch_size": len(commands),
                    },
                )
            )
        return spans

    def _publish_timer(self, started: float) -> Callable[[asyncio.Future[Any]], None]:
        """Observes how long the broker took to have a batch's sends."""
        stage = COMMAND_STAGE_SECONDS.labels(self.topic, "publish")
        return lambda _: stage.observe(time.perf_counter() - started)

    def _log_applied(
        self,
        commands: Sequence[CommandEnvelope],
        outcomes: Sequence[Outcome],
        spans: Sequence[trace.Span],
    ) -> None:
        for command, outcome, span in zip(commands, outcomes, spans, strict=True):
            with trace.use_span(span, end_on_exit=False), correlated(command.correlation_id):
                log.debug(
                    "command applied",
                    extra={"command": command.name, "status": outcome.status},
                )

    async def _send(
        self,
        commands: Sequence[CommandEnvelope],
        outcomes: list[Outcome],
        spans: Sequence[trace.Span],
    ) -> list[asyncio.Future[Any]]:
        """Queue the events and the follow-up commands; the returned futures complete when
        the broker has each. Events and follow-ups carry the trace context of
        the command that caused them."""
        assert self.producer is not None and self.events is not None
        sends: list[asyncio.Future[Any]] = []
        for cause, outcome, span in zip(commands, outcomes, spans, strict=True):
            if outcome.events:
                trace_headers = kafka_trace_headers(trace.set_span_in_context(span))
                sends += await self.events.send(
                    outcome.events, trace_headers, command_id=cause.command_id
                )
        follow_ups = [
            (cause, follow_up, span)
            for cause, outcome, span in zip(commands, outcomes, spans, strict=True)
            for follow_up in outcome.commands
        ]
        if follow_ups and sends:
            # A follow-up can make another service publish events under the same key (the
            # catalog's flows/deleted after the last segments_deleted): ours must be in the
            # topic first, or per-key order breaks.
            await asyncio.gather(*sends)
            sends = []
        topics = self.settings.topics
        for cause, follow_up, span in follow_ups:
            command = follow_up.command
            topic = await self._topics.topic(topics.commands_of(follow_up.service))
            # As for events (EventPublisher.send): never block the partition on it.
            dropped = functools.partial(
                too_large,
                "follow-up command too large for a Kafka message; not sent",
                topic,
                {
                    "command_id": cause.command_id,
                    "follow_up": command.name,
                    "follow_up_id": command.command_id,
                },
            )
            try:
                sent = await self.producer.send(
                    topic,
                    command.model_dump_json().encode(),
                    key=command.key.encode(),
                    headers=[
                        ("command", command.name.encode()),
                        *kafka_trace_headers(trace.set_span_in_context(span)),
                    ],
                )
            except TOO_LARGE as exc:
                dropped(exc)
            else:
                sends.append(_unless_too_large(sent, dropped, self.limits.refused))
        return sends
