"""Each service's own small HTTP server: /health, /ready and /metrics, its internal API, and
request telemetry.

`/health` says the process and its event loop are alive: it answers from memory, never
waits on anything. `/ready` runs the service's dependency checks (broker, store, S3) at
once, each bounded by `TAMS_HTTP_READY_TIMEOUT_S`, and answers 503 naming the ones that
fail, so an orchestrator stops routing to an instance that could not do its work.

Anything else an internal service serves (the analytics service's API, which the gateway
forwards to) requires the shared internal token (`TAMS_INTERNAL_TOKEN`) as a bearer token:
clients reach it only through the gateway, which authenticates and authorises them first.

`observe_requests` is the middleware every HTTP app here uses (the gateway's API included):
a latency sample per request labelled by route template (`/flows/{flow_id}`, never the raw
path), a server span continuing the caller's `traceparent`, and a correlation id for the log
lines of the request (the caller's `X-Correlation-Id`, or a new one), returned as
`X-Correlation-Id`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tams_runtime.logs import correlated
from tams_runtime.metrics import HTTP_REQUEST_SECONDS
from tams_runtime.settings import HttpSettings, InternalSettings
from tams_runtime.tracing import extract_trace_context, recording, tracer, unrecorded_span
from tams_schema.envelopes import ErrorBody, with_message

ReadyCheck = Callable[[], Awaitable[bool]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


log = logging.getLogger(__name__)

# Open on every port: orchestrators and Prometheus carry no credentials.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


def internal_headers(settings: InternalSettings | None = None) -> dict[str, str]:
    """Headers a caller (the gateway) sends to an internal service's API."""
    token = (settings or InternalSettings()).token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}


def internal_token_middleware(settings: InternalSettings | None = None) -> Callable[..., Any]:
    """Requires `Authorization: Bearer <TAMS_INTERNAL_TOKEN>` on everything but the probes.
    Without a configured token every such request is refused (closed, not open)."""
    token = (settings or InternalSettings()).token
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None
    if expected is None:
        log.warning("TAMS_INTERNAL_TOKEN is not set: this service's internal API refuses all")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PROBE_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if expected is None or not hmac.compare_digest(given, expected):
            body = ErrorBody(
                type="Unauthorized",
                summary="this internal API needs the service token (TAMS_INTERNAL_TOKEN)",
            )
            return web.json_response(
                with_message(body.as_json()),
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="tams-internal"'},
            )
        return await handler(request)

    return middleware


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


_CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def correlation_id_of(request: web.Request) -> str:
    """The caller's `X-Correlation-Id` if it is a plain token (the gateway passes its own on
    to the services it calls), else a new one."""
    given = request.headers.get("X-Correlation-Id", "")
    return given if _CORRELATION_ID.fullmatch(given) else os.urandom(16).hex()


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_template(request)
    started = time.perf_counter()
    status = 500
    try:
        if route in PROBE_PATHS:
            response = await handler(request)
            status = response.status
            return response
        correlation_id = correlation_id_of(request)
        parent = extract_trace_context(request.headers)
        with (
            correlated(correlation_id),
            (
                tracer().start_as_current_span(
                    f"{request.method} {route}",
                    context=parent,
                    kind=SpanKind.SERVER,
                    attributes={
                        "http.request.method": request.method,
                        "http.route": route,
                        "url.path": request.path,
                        "tams.correlation_id": correlation_id,
                    },
                    record_exception=False,
                    set_status_on_exception=False,
                )
                if recording()
                else trace.use_span(unrecorded_span(parent), end_on_exit=False)
            ) as span,
        ):
            try:
                response = await handler(request)
                status = response.status
                if status >= 400:
                    log_error_answer(request, route, status, error_summary(response))
                if not response.prepared:
                    response.headers["X-Correlation-Id"] = correlation_id
                return response
            except web.HTTPException as exc:
                status = exc.status
                if status >= 400:
                    log_error_answer(request, route, status, exc.reason)
                raise
            except BaseException as exc:
                span.record_exception(exc)
                raise
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUEST_SECONDS.labels(route, request.method, f"{status // 100}xx").observe(
            time.perf_counter() - started
        )


def error_summary(response: web.StreamResponse) -> str | None:
    """The `summary` of a JSON error body (schemas/error.json), if the response has one."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return None
    body = response.body
    if not isinstance(body, bytes):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    summary = parsed.get("summary") if isinstance(parsed, dict) else None
    return summary if isinstance(summary, str) else None


def log_error_answer(request: web.Request, route: str, status: int, summary: str | None) -> None:
    """One line per request answered with an error, under the request's trace and correlation
    ids, so a client's report of a failure leads to what the server said and why. The path,
    never the query string (it can hold an `access_token`)."""
    log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "request answered with an error",
        extra={
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": status,
            "summary": summary,
        },
    )


async def run_checks(checks: Mapping[str, ReadyCheck], timeout: float) -> dict[str, str]:
    """Every check at once, each bounded by `timeout`: `ok`, `failing` or `timeout`."""

    async def one(check: ReadyCheck) -> str:
        try:
            async with asyncio.timeout(timeout):
                healthy = await check()
            return "ok" if healthy else "failing"
        except TimeoutError:
            return "timeout"
        except Exception:
            return "failing"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


def add_probe_routes(
    app: web.Application,
    service: str,
    checks: Mapping[str, ReadyCheck],
    settings: HttpSettings | None = None,
) -> None:
    timeout = (settings or HttpSettings()).ready_timeout_s

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service})

    async def ready(_: web.Request) -> web.Response:
        results = await run_checks(checks, timeout)
        failing = sorted(name for name, result in results.items() if result != "ok")
        body: dict[str, object] = {
            "status": "not ready" if failing else "ready",
            "service": service,
            "checks": results,
        }
        if failing:
            body["failing"] = failing
        return web.json_response(body, status=503 if failing else 200)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)


class _ApiRequestHandler(RequestHandler):
    """A connection whose own errors (a request the HTTP parser rejects, which never reaches
    the middlewares) are answered with a TAMS error object, as every other error is, not
    aiohttp's text/plain page."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The parent logs the error and refuses when a response has begun; its body is dropped.
        super().handle_error(request, status, exc, message)
        if isinstance(exc, HttpProcessingError):
            # Never seen by `observe_requests`; its method may be anything, so not a label.
            HTTP_REQUEST_SECONDS.labels("unparsed", "unparsed", f"{status // 100}xx").observe(0)
        body = ErrorBody(type=_error_type(status), summary=_parse_error_summary(status, exc))
        response = web.Response(
            status=status,
            text=json.dumps(with_message(body.as_json())),
            content_type="application/json",
        )
        response.force_close()
        return response


def _error_type(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


def _parse_error_summary(status: int, exc: BaseException | None) -> str:
    if status >= 500 or not isinstance(exc, BadHttpMessage):
        return "the server could not handle the request"
    return f"the request is not valid HTTP/1.1 ({type(exc).__name__}): {http_fault(exc)}"


def http_fault(exc: BadHttpMessage) -> str:
    """What aiohttp's parser found wrong, without the request bytes its message quotes after
    a colon or in quotes (a request line or header may hold a credential)."""
    if isinstance(exc, LineTooLong):
        return "a request line or header field is longer than the server accepts"
    lines = str(exc.message).strip().splitlines()
    reason = lines[0].split(":", 1)[0].split("'", 1)[0].strip()[:120] if lines else ""
    return reason or type(exc).__name__


class _ApiServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ApiRequestHandler(self, loop=self._loop, **self._kwargs)


class _ApiRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ApiServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


async def start_site(
    app: web.Application, host: str, port: int, *, keepalive_timeout_s: float = 75.0
) -> web.AppRunner:
    runner = _ApiRunner(app, access_log=None, keepalive_timeout=keepalive_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
