"""Prometheus metrics shared by the services. Label values are bounded sets, never ids."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
