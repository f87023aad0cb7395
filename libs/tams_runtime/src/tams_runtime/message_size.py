"""How large a Kafka message a service may send: the smaller of the producer's limit and what
the broker reports, for itself (`message.max.bytes`) and for the topics the service sends to
(`max.message.bytes`), read once when its command consumer starts.

The applier refuses a command whose events or follow-up commands would not fit (400, nothing
written), and the producer refuses, before sending, a message above it. A broker or topic
set below the producer's 1 MiB would otherwise refuse, broker-side, a message the applier let
through, after its change was committed and answered. The consumer drops such a message all
the same, with an error and a count (`consumer.EventPublisher`), instead of sending it again
for ever; this makes that the rare case of a limit lowered while the service runs.

What the broker does not report leaves the producer's limit in force. tansu 0.6 reports no
`message.max.bytes` for itself and, for a topic, only the configs it was created with; it
enforces neither (docs/decisions.md, "Sources and flows").
"""

from __future__ import annotations

import logging
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
    bootstrap_servers: str, topics: Sequence[str], producer_bytes: int = MAX_MESSAGE_BYTES
) -> int:
    """The smaller of `producer_bytes` and the broker's limits for itself and `topics`,
    logged. A broker that cannot be reached fails this as it would the producer's start; one
    that will not say (an ACL, an older broker) leaves `producer_bytes`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        try:
            found = await broker_limits(admin, topics)
        except Exception as exc:
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
