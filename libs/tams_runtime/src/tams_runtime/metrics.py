"""Prometheus metrics shared by the services. Label values are bounded sets, never ids."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

COMMAND_STAGE_SECONDS = Histogram(
    "tams_command_stage_seconds",
    "Time a command batch spends in each stage of the consumer (apply, publish, commit)",
    ["topic", "stage"],
    buckets=LATENCY_BUCKETS,
)
COMMAND_BATCH_SIZE = Histogram(
    "tams_command_batch_size",
    "Commands applied per batch (one store transaction)",
    ["topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMANDS_APPLIED = Counter(
    "tams_commands_applied_total", "Commands applied, by outcome status class", ["topic", "status"]
)
COMMAND_RETRIES = Counter(
    "tams_command_batch_retries_total", "Command batches retried after a failure", ["topic"]
)
COMMAND_ROUND_TRIP_SECONDS = Histogram(
    "tams_command_round_trip_seconds",
    "Gateway: from publishing a command to receiving its reply",
    ["command"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUEST_SECONDS = Histogram(
    "tams_http_request_seconds",
    "HTTP requests by route template, method and status class",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
COMMAND_QUEUE_SECONDS = Histogram(
    "tams_command_queue_seconds",
    "Service: from the gateway issuing a command to the service starting to apply it",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "tams_consumer_lag_messages",
    "Messages in a partition not yet handed to this consumer (high watermark - position)",
    ["group", "topic", "partition"],
)
STORE_SECONDS = Histogram(
    "tams_store_transaction_seconds",
    "Metadata store transactions (queueing for the connection included)",
    ["operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)
S3_SECONDS = Histogram(
    "tams_s3_request_seconds",
    "S3 requests by operation and outcome (ok, client_error, server_error, unreachable)",
    ["operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)
SEGMENTS_REGISTERED = Counter(
    "tams_segments_registered_total", "Segments registered (committed), by the segments service"
)
OBJECT_BYTES_REGISTERED = Counter(
    "tams_object_bytes_registered_total",
    "Bytes of objects registered for the first time (their S3 size at registration)",
)
# Fed by the webhooks service. `outcome`: delivered (2xx), rejected (4xx: not retried),
# failed (5xx, timeout or connection error: retried), dropped (given up after the last retry).
WEBHOOK_DELIVERIES = Counter(
    "tams_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "tams_webhook_delivery_seconds",
    "Webhook delivery attempts: time to the receiver's answer (or the failure), by outcome",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_OUTCOMES = ("delivered", "rejected", "failed", "dropped")


class LagRecorder:
    """Keeps `tams_consumer_lag_messages` for one consumer: await `update(consumer)` after
    each fetch. It reads the high watermarks the consumer's fetches brought back and its
    positions (no broker request), and drops the series of partitions it no longer owns."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._owned: set[tuple[str, int]] = set()

    async def update(self, consumer: Any) -> None:
        now: set[tuple[str, int]] = set()
        for tp in consumer.assignment():
            # Known once a fetch for the partition came back, and a fetch needs a position,
            # so `position` answers at once here.
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except Exception:  # revoked meanwhile (IllegalStateError)
                continue
            now.add((tp.topic, tp.partition))
            CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(
                max(highwater - position, 0)
            )
        for topic, partition in self._owned - now:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.group, topic, str(partition))
        self._owned = now
