"""OpenTelemetry traces, configured only by the standard `OTEL_*` environment variables.

* `OTEL_SDK_DISABLED=true`: no tracing at all (spans are no-ops, logs carry no trace ids).
* Otherwise every process has an SDK tracer provider, so spans have ids that the JSON logs
  and Kafka headers carry, and exports them over OTLP/HTTP (protobuf) when
  `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; with neither,
  nothing is exported and nothing is recorded (sampler always off, unless
  `OTEL_TRACES_SAMPLER` says otherwise). Then `recording()` is False and the hot paths make
  no spans of their own: a request runs under its caller's span or one with fresh ids
  (`unrecorded_span`), and a command under the span that sent it, so logs and messages still
  carry one trace id per request, at a fraction of the cost.
  The exporter, the batch processor and the sampler read their own variables
  (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_TRACES_SAMPLER`,
  `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`...).

Trace context crosses Kafka as W3C `traceparent` (and `tracestate`): in the command envelope's
`trace_context` and as headers of command and event messages, so any Kafka consumer (a
webhook deliverer, a subscriber) can continue the trace that caused an event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from tams_runtime.logs import correlated

log = logging.getLogger(__name__)

TRACER_NAME = "tams"
# What W3C trace context puts in a carrier.
_TRACE_KEYS = ("traceparent", "tracestate")


# Whether this process's spans can be recorded; False once `configure_tracing` finds that
# nothing exports them and nothing samples them.
_RECORDING = True


def recording() -> bool:
    """False when no span of this process is ever recorded: a span made only to be a parent
    may then be skipped, its parent's context serving instead (same trace, no new ids)."""
    return _RECORDING


def configure_tracing(service: str) -> None:
    """Install this process's tracer provider (call once, at start-up)."""
    global _RECORDING
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        _RECORDING = False
        return
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME (read by Resource.create) wins over the default name.
    name = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"tams-{service}"}
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    sampler = None
    if not endpoint and not os.environ.get("OTEL_TRACES_SAMPLER"):
        # Nothing is exported: record nothing (recording cost ~15% of a service's
        # throughput). Unsampled spans still have ids, so logs carry trace ids and
        # `traceparent` still crosses Kafka.
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        sampler = ALWAYS_OFF
        _RECORDING = False
    provider = TracerProvider(resource=Resource.create(name), sampler=sampler)
    if endpoint:
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning(
                "only OTLP over http/protobuf is supported; exporting with it",
                extra={"requested_protocol": protocol},
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def shutdown_tracing() -> None:
    """Export what is still queued (at process exit)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


# A proxy until `configure_tracing` installs the provider, then delegating to it: made once,
# because `get_tracer` builds a new tracer (and compares instrumentation scopes) every call.
_TRACER = trace.get_tracer(TRACER_NAME)


def tracer() -> trace.Tracer:
    return _TRACER


def unrecorded_span(parent: otel_context.Context) -> trace.Span:
    """Where nothing records spans (`recording()` is False): the caller's span when it sent
    one, else a span with fresh ids and nothing else, for the logs and the messages sent on
    its behalf to carry; at a fraction of the SDK's cost for a span it would not record."""
    caller = trace.get_current_span(parent)
    if caller.get_span_context().is_valid:
        return caller
    return trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
        )
    )


def inject_trace_context(context: otel_context.Context | None = None) -> dict[str, str]:
    """The current (or given) trace context as W3C headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def extract_trace_context(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(carrier)


def kafka_trace_headers(context: otel_context.Context | None = None) -> list[tuple[str, bytes]]:
    """The trace context as Kafka message headers."""
    return [(k, v.encode()) for k, v in inject_trace_context(context).items()]


def context_from_kafka_headers(
    headers: Iterable[tuple[str, bytes]] | None,
) -> otel_context.Context:
    carrier = {k: v.decode() for k, v in headers or () if k in _TRACE_KEYS}
    return propagate.extract(carrier)


# The consumer span of each command being applied, by command id: the applier makes a
# command's span current while it applies it, so the store work, S3 calls and log lines of
# that command belong to its trace even when a batch of commands shares one transaction.
_COMMAND_SPANS: ContextVar[Mapping[str, trace.Span] | None] = ContextVar(
    "command_spans", default=None
)


@contextlib.contextmanager
def commands_in_flight(spans: Mapping[str, trace.Span]) -> Iterator[None]:
    token = _COMMAND_SPANS.set(spans)
    try:
        yield
    finally:
        _COMMAND_SPANS.reset(token)


@contextlib.contextmanager
def command_scope(command_id: str, correlation_id: str) -> Iterator[None]:
    """Inside: the command's span is current and log lines carry its correlation id."""
    span = (_COMMAND_SPANS.get() or {}).get(command_id)
    with correlated(correlation_id):
        if span is None:
            yield
        else:
            with trace.use_span(span, end_on_exit=False):
                yield
