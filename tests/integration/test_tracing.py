"""One trace from the client through the gateway, Kafka and the catalog to the store.

A real OTLP/HTTP receiver (protobuf, as the services' exporter sends it) runs in the test;
a gateway and a catalog service of their own export to it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tams_stack.stack import Stack

from .helpers import EventReader, video_flow
from .standalone import standalone

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf exports on /v1/traces and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        Span(
                            service=attributes.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def find(self, service: str, name: str, trace_id: str) -> Span | None:
        return next(
            (
                s
                for s in self.spans
                if s.service == service and s.name == name and s.trace_id == trace_id
            ),
            None,
        )


async def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not seen before the deadline"
        await asyncio.sleep(0.05)


async def test_a_write_is_one_trace_across_kafka(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    receiver = OtlpReceiver()
    await receiver.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "TAMS_LOG_LEVEL": "DEBUG",
    }
    try:
        async with standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack:
            prefix = stack.env["TAMS_KAFKA_TOPIC_PREFIX"]
            flow = video_flow()
            bootstrap = stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]
            async with (
                EventReader(bootstrap, f"{prefix}.events") as events,
                aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as client,
            ):
                headers = {
                    "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                    "X-Correlation-Id": "client-request-42",
                }
                async with client.put(f"/flows/{flow['id']}", json=flow, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    assert resp.headers["X-Correlation-Id"] == "client-request-42"
                created = await events.until(
                    lambda evs: any(e["event_type"] == "flows/created" for e in evs)
                )

            topic = f"{prefix}.catalog.commands"
            names = [
                ("tams-gateway", "PUT /flows/{flow_id}"),
                ("tams-gateway", f"{topic} publish"),
                ("tams-catalog", f"{topic} process"),
                ("tams-catalog", "store.write"),
            ]
            await wait_for(lambda: all(receiver.find(s, n, CLIENT_TRACE) for s, n in names))
            server, producer, consumer, store = (
                receiver.find(s, n, CLIENT_TRACE) for s, n in names
            )
            assert server and producer and consumer and store
            # The client's span → the gateway's server span → its Kafka producer span → the
            # catalog's consumer span → the catalog's store transaction.
            assert server.parent_id == CLIENT_SPAN
            assert producer.parent_id == server.span_id
            assert consumer.parent_id == producer.span_id
            assert store.parent_id == consumer.span_id

            # The event the command caused is published by the segments service, which relays
            # the catalog's events (events.relay), in the same trace: the catalog's consumer
            # span → the segments service's consumer span of the relay → the event.
            # One relay per key: the flow's events and its new source's.
            def relays() -> list[Span]:
                return [
                    s
                    for s in receiver.spans
                    if s.trace_id == CLIENT_TRACE
                    and (s.service, s.name)
                    == ("tams-segments", f"{prefix}.segments.commands process")
                ]

            await wait_for(lambda: len(relays()) == 2)
            assert {s.parent_id for s in relays()} == {consumer.span_id}
            (event,) = [e for e in created if e["event_type"] == "flows/created"]
            _, trace_id, parent_span, _ = event["headers"]["traceparent"].split("-")
            assert trace_id == CLIENT_TRACE and parent_span in {s.span_id for s in relays()}

            # The catalog's log line for the command carries the trace and correlation ids.
            log_path = stack.services["catalog"].process.log_path

            def applied_line() -> dict[str, Any] | None:
                for line in log_path.read_text().splitlines():
                    entry = json.loads(line) if line.startswith("{") else {}
                    if entry.get("message") == "command applied":
                        return entry
                return None

            await wait_for(lambda: applied_line() is not None)
            line = applied_line()
            assert line is not None
            assert line["trace_id"] == CLIENT_TRACE and line["span_id"] == consumer.span_id
            assert line["correlation_id"] == "client-request-42"

            # The readiness probes (`wait_ready` asked them while the services started, long
            # enough ago for their spans to be exported) ask S3: measured, never traced.
            assert receiver.spans
            assert not [s for s in receiver.spans if s.name == "S3 HeadBucket"]
    finally:
        await receiver.stop()


async def test_a_webhook_delivery_continues_the_trace_of_the_change(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """Client → gateway → Kafka → catalog → event → webhooks service → the receiver, whose
    request carries `traceparent` in the same trace. The log line of a failed attempt is in
    that trace too, not in the one of the request that registered the webhook."""
    receiver = OtlpReceiver()
    await receiver.start()
    delivered: list[dict[str, str]] = []
    attempts = 0

    async def on_event(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return web.Response(status=503)  # the first attempt fails; the retry succeeds
        delivered.append(dict(request.headers))
        return web.Response(status=200)

    hook_app = web.Application()
    hook_app.router.add_post("/hook", on_event)
    hook_runner = web.AppRunner(hook_app)
    await hook_runner.setup()
    await web.TCPSite(hook_runner, "127.0.0.1", 0).start()
    hook_url = f"http://127.0.0.1:{hook_runner.addresses[0][1]}/hook"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    try:
        async with standalone(
            tams_stack, ("catalog", "segments", "webhooks", "gateway"), env
        ) as stack:
            flow = video_flow()
            async with aiohttp.ClientSession(
                base_url=stack.gateway_url, headers=admin_headers
            ) as client:
                hook = {"url": hook_url, "events": ["flows/created"], "flow_ids": [flow["id"]]}
                registration = {"X-Correlation-Id": "webhook-registration-7"}
                async with client.post(
                    "/service/webhooks", json=hook, headers=registration
                ) as resp:
                    assert resp.status == 201, await resp.text()
                headers = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
                async with client.put(f"/flows/{flow['id']}", json=flow, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
            await wait_for(lambda: bool(delivered))
            _, trace_id, parent_span, _ = delivered[0]["traceparent"].split("-")
            assert trace_id == CLIENT_TRACE
            # The catalog's events are published by the segments service (events.relay).
            process = f"{stack.env['TAMS_KAFKA_TOPIC_PREFIX']}.segments.commands process"

            def attempts_traced() -> list[Span]:
                return [
                    s
                    for s in receiver.spans
                    if s.name == "webhook deliver" and s.trace_id == CLIENT_TRACE
                ]

            # Each service exports its spans in its own batches: wait for both.
            await wait_for(
                lambda: (
                    len(attempts_traced()) == 2
                    and receiver.find("tams-segments", process, CLIENT_TRACE) is not None
                )
            )
            relays = {
                s.span_id
                for s in receiver.spans
                if (s.service, s.name, s.trace_id) == ("tams-segments", process, CLIENT_TRACE)
            }
            # Each attempt is a child of the command that published the event (the relay of
            # the flow's events); the receiver's request is in the successful attempt's span.
            (parent,) = {s.parent_id for s in attempts_traced()}
            assert parent in relays
            assert parent_span in {s.span_id for s in attempts_traced()}
            # The services' background work (polls, pruning) starts no traces of its own.
            roots = {(s.service, s.name) for s in receiver.spans if not s.parent_id}
            assert not {name for _, name in roots if name.startswith("store.")}, roots

            log_path = stack.services["webhooks"].process.log_path
            failed = [
                entry
                for entry in map(json.loads, log_path.read_text().splitlines())
                if entry.get("message") == "webhook delivery attempt failed"
            ]
            assert [(e["level"], e["trace_id"]) for e in failed] == [("warning", CLIENT_TRACE)]
            assert failed[0].get("correlation_id") != "webhook-registration-7"
    finally:
        await hook_runner.cleanup()
        await receiver.stop()
