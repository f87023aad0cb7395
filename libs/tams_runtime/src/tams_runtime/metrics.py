"""Prometheus metrics shared by the services. Label values are bounded sets, never ids."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from tams_runtime.epochs import topic_family

log = logging.getLogger(__name__)

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
# `topic`: where the message was to go (an epoch topic counts under its command topic).
MESSAGES_TOO_LARGE = Counter(
    "tams_messages_too_large_total",
    "Events and follow-up commands not sent, the producer or the broker refusing them as too "
    "large for a Kafka message, after their change was committed",
    ["topic"],
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
    "Messages in a partition the group has not committed yet (end offset - committed offset)",
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
# Fed by the segments service's worker. `kind`: delete (an object's bytes on one backend),
# sweep (the same, again once no put_url can upload), copy (a controlled copy to another
# backend); `outcome`: done, failed (tried again when its lease ends), dropped (a copy given
# up after its last attempt).
MEDIA_JOBS = Counter(
    "tams_media_jobs_total",
    "Byte deletions and copies on S3, by kind and outcome",
    ["kind", "outcome"],
)
SEGMENTS_REGISTERED = Counter(
    "tams_segments_registered_total", "Segments registered (committed), by the segments service"
)
OBJECT_BYTES_REGISTERED = Counter(
    "tams_object_bytes_registered_total",
    "Bytes of objects registered for the first time (their S3 size at registration)",
)
# Fed by the webhooks service. `outcome`: delivered (2xx), failed (any other answer, a
# timeout or a connection error: retried), rejected (no retry can help: a refused
# destination, an undecryptable key, a header that is not ISO-8859-1; not retried),
# dropped (given up after the last retry).
WEBHOOK_DELIVERIES = Counter(
    "tams_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "tams_webhook_delivery_seconds",
    "Webhook delivery attempts: time to the receiver's answer (or the failure), by outcome",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)


class LagRecorder:
    """Keeps `tams_consumer_lag_messages` for one consumer group member: for each partition
    it owns, the end offset minus the group's committed offset (from the start of the log
    when nothing is committed yet). It asks the broker every `interval_s` from a task of its
    own, so the figure keeps growing while the consumer is stuck (say, retrying a batch),
    and drops the series of partitions this member no longer owns."""

    def __init__(self, group: str, interval_s: float = 5.0) -> None:
        self.group = group
        self.interval_s = interval_s
        self._owned: set[tuple[str, int]] = set()

    async def update(self, consumer: Any) -> None:
        partitions = sorted(consumer.assignment())
        lags: dict[tuple[str, int], int] = {}
        if partitions:
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                done = await consumer.committed(tp)
                if done is None:
                    done = (await consumer.beginning_offsets([tp]))[tp]
                # An epoch topic counts under its command topic: the label set stays bounded.
                key = (topic_family(tp.topic), tp.partition)
                lags[key] = lags.get(key, 0) + max(ends[tp] - done, 0)
        for (topic, partition), lag in lags.items():
            CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)
        for topic, partition in self._owned - set(lags):
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.group, topic, str(partition))
        self._owned = set(lags)

    async def run(self, consumer: Any) -> None:
        """Update every `interval_s` until cancelled (run it as a task beside the consumer)."""
        while True:
            try:
                # Not `asyncio.wait_for`: on Python 3.11 it runs `update` as a task of its own
                # and, cancelled, waits for it; aiokafka's own wait_for inside can swallow
                # that cancellation, and the consumer's stop then waited for ever.
                async with asyncio.timeout(self.interval_s):
                    await self.update(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("could not measure consumer lag", exc_info=True)
            await asyncio.sleep(self.interval_s)
