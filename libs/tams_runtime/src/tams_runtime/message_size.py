"""How large a Kafka message a service may send: the smaller of the producer's limit and what
the broker reports, for itself (`message.max.bytes`) and for the topics the service sends to
(`max.message.bytes`), read when its command consumer starts, and again when the broker
refuses a message as too large all the same (`LimitReader`).

The applier refuses a command whose events or follow-up commands would not fit (400, nothing
written), and the producer refuses, before sending, a message above it. A broker or topic
set below the producer's 1 MiB would otherwise refuse, broker-side, a message the applier let
through, after its change was committed and answered. The consumer drops such a message all
the same, with an error and a count (`consumer.EventPublisher`), instead of sending it again
for ever; this makes that the rare case of a limit lowered while the service runs, and
such a refusal has the limits read again, so from then on the applier refuses up front.

What the broker does not report leaves the producer's limit in force. tansu 0.6 reports no
`message.max.bytes` for itself and, for a topic, only the configs it was created with; it
enforces neither (docs/decisions.md, "Sources and flows").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

log = logging.getLogger(__name__)

# The producers' `max_request_size` (aiokafka's default; the broker's default
# `message.max.bytes` is 12 bytes more): the most bytes one message may hold.
MAX_MESSAGE_BYTES = 1024 * 1024
# Room the applier leaves for a record's framing, its fixed headers and the trace headers
# added when it is sent: a client's `tracestate` is carried on, and OpenTelemetry takes one
# of up to 8,192 characters.
MESSAGE_OVERHEAD_BYTES = 16 * 1024
# aiokafka's `max_batch_size`. Several records share a batch only up to it, and a broker
# limits a whole batch: kept under the limit, a batch is refused only for its one record.
BATCH_BYTES = 16 * 1024


@dataclass
class MessageLimit:
    """The most bytes one message may hold: shared by a service's applier, which checks
    outcomes against it, and its command consumer, which sets it at start."""

    bytes: int = MAX_MESSAGE_BYTES

    @property
    def content_bytes(self) -> int:
        """What an event's key, payload and own headers (or a follow-up command) may take."""
        return self.bytes - MESSAGE_OVERHEAD_BYTES


async def broker_limits(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    """The message size limits the broker reports: `broker <id>` → its `message.max.bytes`,
    a topic → its `max.message.bytes`. What it does not report is left out (a topic that does
    not exist, a broker that leaves defaults out)."""
    cluster = await admin.describe_cluster()
    resources = [
        ConfigResource(ConfigResourceType.BROKER, str(broker["node_id"]))
        for broker in cluster["brokers"]
    ]
    resources += [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    # Every config of each resource, not just the one wanted: tansu 0.6 cannot read a
    # request that names configs (it closes the connection).
    found: dict[str, int] = {}
    for response in await admin.describe_configs(resources):
        for error_code, _, resource_type, name, entries, *_ in response.resources:
            if error_code:
                continue
            broker = resource_type == ConfigResourceType.BROKER
            wanted = "message.max.bytes" if broker else "max.message.bytes"
            for entry in entries:
                if entry[0] == wanted and entry[1]:
                    found[f"broker {name}" if broker else name] = int(entry[1])
    return found


async def read_message_limit(
    bootstrap_servers: str,
    topics: Sequence[str],
    producer_bytes: int = MAX_MESSAGE_BYTES,
    *,
    refusal_leaves_producers: bool = True,
) -> int:
    """The smaller of `producer_bytes` and the broker's limits for itself and `topics`,
    logged. A broker that cannot be reached fails this as it would the producer's start; one
    that will not say (an ACL, an older broker) leaves `producer_bytes`, or fails it too
    without `refusal_leaves_producers`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        try:
            found = await broker_limits(admin, topics)
        except Exception as exc:
            if not refusal_leaves_producers:
                raise
            log.warning(
                "the broker did not report its message size limits; using the producer's",
                extra={"max_message_bytes": producer_bytes, "error": repr(exc)},
            )
            return producer_bytes
    finally:
        await admin.close()
    limit = min([producer_bytes, *found.values()])
    log.info(
        "Kafka message size limit",
        extra={
            "max_message_bytes": limit,
            "producer_bytes": producer_bytes,
            # Empty: the broker reported none (tansu), and the producer's limit stands.
            "broker_limits": found,
        },
    )
    return limit


class LimitReader:
    """Reads the limits into `limit`: at start, and again when the broker refuses a message
    the limit let through (it was lowered since), so that the next ones are refused up front
    (400, nothing written) instead of dropped after their change is committed. At most one
    read again every `interval_s` (a broker that refuses without saying why would otherwise
    be asked on every refusal); and, while the limit read again stays below the producer's,
    again every `interval_s`, so that a limit raised back is seen without a restart (nothing
    the broker refuses would have it read then: the applier refuses first)."""

    def __init__(
        self,
        limit: MessageLimit,
        bootstrap_servers: str,
        topics: Sequence[str],
        *,
        producer_bytes: int = MAX_MESSAGE_BYTES,
        interval_s: float = 30.0,
    ) -> None:
        self.limit = limit
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics)
        self.producer_bytes = producer_bytes
        self.interval_s = interval_s
        self._last_read = -interval_s
        self._reading: asyncio.Task[None] | None = None
        self._stopped = False

    async def read(self) -> int:
        """Read the limits now (at start: an unreachable broker fails it)."""
        self.limit.bytes = await read_message_limit(
            self.bootstrap_servers, self.topics, self.producer_bytes
        )
        return self.limit.bytes

    def refused(self) -> None:
        """The broker refused a message as too large: read the limits again, in the
        background. Not while a read again still runs (a broker slow to answer may take
        longer than `interval_s`: one left behind would outlive `stop`), nor once stopped
        (the producer's last sends are refused after the reader stops)."""
        now = time.monotonic()
        if self._stopped or now - self._last_read < self.interval_s:
            return
        if self._reading is not None and not self._reading.done():
            return
        self._last_read = now
        self._reading = asyncio.get_running_loop().create_task(self._read_again())

    async def _read_again(self) -> None:
        while True:
            before = self.limit.bytes
            try:
                # A broker that will not say now keeps the limit it said before.
                after = await read_message_limit(
                    self.bootstrap_servers,
                    self.topics,
                    self.producer_bytes,
                    refusal_leaves_producers=False,
                )
            except Exception as exc:
                log.warning(
                    "could not read the Kafka message size limits again; keeping them",
                    extra={"max_message_bytes": before, "error": repr(exc)},
                )
            else:
                self.limit.bytes = after
                if after != before:
                    log.warning(
                        "the Kafka message size limit changed",
                        extra={"max_message_bytes": after, "before": before},
                    )
            if self.limit.bytes >= self.producer_bytes:
                return
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        self._stopped = True
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
