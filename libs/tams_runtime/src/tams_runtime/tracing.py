"""Trace context across Kafka: W3C `traceparent` carried in the command envelope."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate


def inject_trace_context() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_trace_context(carrier: dict[str, str]) -> otel_context.Context:
    return propagate.extract(carrier)
