"""Request/reply for the gateway: commands go through Kafka, replies come straight back.

FastStream's `broker.request()` only works with its test client, so the gateway does what
it would do by hand: it publishes a command with its correlation id and `reply_to`, the
address of this instance's reply listener, and resolves a waiting future when the reply
with that id arrives there (tams_runtime.replies explains why replies skip the broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, RequestTimedOutError
from opentelemetry.trace import SpanKind

from tams_runtime.epochs import CommandTopics, TopicCreationFailed, create_topics
from tams_runtime.logs import CORRELATION_ID
from tams_runtime.metrics import COMMAND_ROUND_TRIP_SECONDS
from tams_runtime.partitioner import KeyPartitioner
from tams_runtime.replies import ReplyListener, reply_address
from tams_runtime.settings import KafkaSettings, ReplySettings
from tams_runtime.tracing import inject_trace_context, recording, tracer
from tams_schema.envelopes import CommandEnvelope, FollowUp, Reply, new_id

log = logging.getLogger(__name__)


class CommandTimeout(Exception):
    """No reply arrived before the deadline (the command may still be applied)."""


class BusUnavailable(Exception):
    """The broker could not take the command."""


class CommandTooLarge(Exception):
    """The command is larger than a Kafka message may be: sending it again cannot help."""


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the internal and public topics if missing (idempotent).

    Run at every start: tansu's memory engine forgets topics on restart, and nothing the
    stack has acknowledged depends on what was in them. With command epochs on, the command
    topics' epochs are made as they come (tams_runtime.epochs) and only the events topic here.
    """
    topics = settings.topics
    wanted = {topics.events: settings.events_partitions}
    if settings.command_epoch_s == 0:
        wanted.update({name: settings.command_partitions for name in topics.command_topics()})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        await admin.start()
        await create_topics(admin, wanted)
    except TopicCreationFailed as exc:
        raise BusUnavailable(str(exc)) from exc
    finally:
        await admin.close()


def advertised_host(settings: ReplySettings) -> str:
    """The host services reach this gateway's reply listener at (see ReplySettings)."""
    if settings.advertise_host:
        return settings.advertise_host
    if settings.host in ("0.0.0.0", "::", ""):
        return socket.gethostbyname(socket.gethostname())
    return settings.host


async def broker_answers(producer: AIOKafkaProducer, timeout: float = 2.0) -> bool:
    """A real round trip (a metadata request), not the client's cached metadata."""
    try:
        # asyncio.timeout, not wait_for: cancelled, this ends at once (LagRecorder.run).
        async with asyncio.timeout(timeout):
            await producer.client.fetch_all_metadata()
    except Exception:
        return False
    return True


class CommandBus:
    """Publishes commands and awaits their replies on this instance's reply listener."""

    def __init__(self, settings: KafkaSettings, replies: ReplySettings | None = None) -> None:
        self.settings = settings
        self.replies = replies or ReplySettings()
        self.reply_address = ""
        # correlation id → (command id, waiting future): a reply must match both, so a late
        # reply to a timed-out command never answers a newer request with the same id.
        self._pending: dict[str, tuple[str, asyncio.Future[Reply]]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._topics = CommandTopics(settings)
        self._listener = ReplyListener(self.replies.host, self.replies.port, self._resolve)

    async def start(self) -> None:
        await ensure_topics(self.settings)
        port = await self._listener.start()
        self.reply_address = reply_address(advertised_host(self.replies), port)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            partitioner=KeyPartitioner(),
            client_id=f"gateway-{uuid.uuid4().hex[:12]}",
            # Not aiokafka's 40 s: nobody waits longer than the reply timeout for the answer.
            request_timeout_ms=int(self.settings.reply_timeout_s * 1000),
        )
        await self._producer.start()
        self._topics.track(self._producer)
        log.info("listening for replies", extra={"address": self.reply_address})

    async def stop(self) -> None:
        await self._listener.stop()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BusUnavailable("gateway is stopping"))
        if self._producer:
            await self._producer.stop()
        await self._topics.stop()

    def _resolve(self, line: bytes) -> None:
        try:
            reply = Reply.model_validate_json(line)
        except ValueError:
            log.warning("dropping a malformed reply", extra={"bytes": len(line)})
            return
        waiting = self._pending.get(reply.correlation_id)
        if waiting is None or waiting[0] != reply.command_id:
            return
        del self._pending[reply.correlation_id]
        if not waiting[1].done():
            waiting[1].set_result(reply)

    async def request(
        self,
        topic: str,
        name: str,
        key: str,
        payload: dict[str, Any],
        *,
        principal: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send one command and wait for its reply.

        The command takes the request's correlation id (so the request's log lines and the
        service's share it) and the trace context of a producer span, in the envelope and
        as Kafka headers."""
        assert self._producer is not None, "CommandBus.start() was not awaited"
        correlation_id = CORRELATION_ID.get()
        if correlation_id is None or correlation_id in self._pending:
            correlation_id = new_id()
        command_id = new_id()
        started = time.perf_counter()
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (command_id, fut)
        published = False
        try:
            # One deadline for the publish and the reply: a broker that takes the command but
            # does not confirm it in time may still have it, so that is a timeout too.
            async with asyncio.timeout(timeout or self.settings.reply_timeout_s):
                with self._producer_span(topic, name, correlation_id):
                    trace_context = inject_trace_context()
                    command = CommandEnvelope(
                        command_id=command_id,
                        name=name,
                        key=key,
                        payload=payload,
                        reply_to=self.reply_address,
                        principal=principal,
                        correlation_id=correlation_id,
                        trace_context=trace_context,
                    )
                    try:
                        await self._producer.send_and_wait(
                            await self._topics.topic(topic),
                            command.model_dump_json().encode(),
                            key=key.encode(),
                            headers=[
                                ("command", name.encode()),
                                *((k, v.encode()) for k, v in trace_context.items()),
                            ],
                        )
                    except (KafkaTimeoutError, RequestTimedOutError) as exc:
                        raise CommandTimeout(
                            f"the broker did not confirm {name} in time: {exc}"
                        ) from exc
                    except MessageSizeTooLargeError as exc:
                        raise CommandTooLarge(
                            f"the request is too large to send as one {name} command "
                            "(a Kafka message, at most 1 MiB by default); send less at once"
                        ) from exc
                    except Exception as exc:  # aiokafka raises many KafkaError kinds
                        raise BusUnavailable(f"could not publish command {name}: {exc}") from exc
                published = True
                # The broker has it: a consumer resting until told so fetches it now.
                self._listener.wake(topic)
                reply = await fut
            COMMAND_ROUND_TRIP_SECONDS.labels(name).observe(time.perf_counter() - started)
            return reply
        except TimeoutError as exc:
            # Counted too: a latency alert must see the commands that got no answer at all.
            COMMAND_ROUND_TRIP_SECONDS.labels(name).observe(time.perf_counter() - started)
            if published:
                raise CommandTimeout(f"no reply to {name} within the deadline") from exc
            raise CommandTimeout(f"the broker did not confirm {name} within the deadline") from exc
        finally:
            if self._pending.get(correlation_id, (None,))[0] == command_id:
                del self._pending[correlation_id]

    @staticmethod
    def _producer_span(
        topic: str, name: str, correlation_id: str
    ) -> contextlib.AbstractContextManager[object]:
        """A producer span under the request's span. Where nothing records spans
        (`recording()`), none: the command carries the request span's own context."""
        if not recording():
            return contextlib.nullcontext()
        return tracer().start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "publish",
                "messaging.destination.name": topic,
                "tams.command": name,
                "tams.correlation_id": correlation_id,
            },
        )

    async def healthy(self) -> bool:
        """True while the reply listener serves and a broker answers a metadata request now."""
        if self._producer is None or not self._listener.serving():
            return False
        return await broker_answers(self._producer)


class CommandPublisher:
    """Publishes commands that nobody waits on (a service restarting its own stalled work),
    to the command topic of the service each is addressed to."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._topics = CommandTopics(settings)

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            linger_ms=0,
            partitioner=KeyPartitioner(),
            client_id=self.client_id,
        )
        await self._producer.start()
        self._topics.track(self._producer)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._topics.stop()

    async def publish(self, follow_ups: Sequence[FollowUp]) -> None:
        """Send the commands and wait until the broker has them all."""
        assert self._producer is not None, "CommandPublisher.start() was not awaited"
        sends = []
        for follow_up in follow_ups:
            command = follow_up.command
            sends.append(
                await self._producer.send(
                    await self._topics.topic(self.settings.topics.commands_of(follow_up.service)),
                    command.model_dump_json().encode(),
                    key=command.key.encode(),
                    headers=[("command", command.name.encode())],
                )
            )
        if sends:
            await asyncio.gather(*sends)
