"""`/analytics/*`: forwarded to the analytics service (docs/analytics.md).

The gateway stays the one public address; the analytics service answers the queries on its
own HTTP port (`TAMS_GATEWAY_ANALYTICS_URL`). A forwarded request is bounded by
`TAMS_GATEWAY_ANALYTICS_TIMEOUT_S` (then 504), and an analytics service that cannot be
reached gives 503, one that refuses the gateway's service token 502; all with the TAMS error
object. The next-page `Link` is built here, from
the client's own URL, out of the `X-Paging-NextKey` the analytics service returns.
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from opentelemetry.trace import SpanKind

from tams_gateway.auth.gate import GATE, principal_of
from tams_gateway.errors import ApiError
from tams_gateway.paging import next_page_url
from tams_gateway.settings import GatewaySettings
from tams_runtime.http import internal_headers
from tams_runtime.logs import CORRELATION_ID
from tams_runtime.tracing import inject_trace_context, tracer

log = logging.getLogger(__name__)

# Headers of the analytics answer that reach the client.
PASSED_HEADERS = ("Content-Type", "X-Paging-Limit", "X-Paging-NextKey", "X-Paging-Count")


class AnalyticsForwarder:
    """One HTTP client session to the analytics service for the gateway's lifetime."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.base_url = settings.analytics_url.rstrip("/") if settings.analytics_url else None
        self.timeout = settings.analytics_timeout_s
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), raise_for_status=False
        )

    async def stop(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.Response:
        if self.base_url is None or self._session is None:
            raise ApiError(503, "ServiceUnavailable", "analytics is not configured on this gateway")
        # The analytics API is internal: it answers only callers with the service token.
        headers = {"Accept": "application/json", **internal_headers()}
        correlation_id = CORRELATION_ID.get()
        if correlation_id is not None:
            headers["X-Correlation-Id"] = correlation_id
        with tracer().start_as_current_span(f"{request.method} analytics", kind=SpanKind.CLIENT):
            headers.update(inject_trace_context())
            try:
                async with self._session.request(
                    request.method, f"{self.base_url}{request.path_qs}", headers=headers
                ) as answer:
                    body = await answer.read()
                    status = answer.status
                    passed = {k: answer.headers[k] for k in PASSED_HEADERS if k in answer.headers}
            except TimeoutError as exc:
                raise ApiError(
                    504, "Timeout", f"the analytics service did not answer within {self.timeout}s"
                ) from exc
            except aiohttp.ClientError as exc:
                raise ApiError(
                    503, "ServiceUnavailable", f"the analytics service is unavailable: {exc}"
                ) from exc
        if status == 401:
            # The gateway's own service token was refused: the two services disagree on
            # TAMS_INTERNAL_TOKEN, which no client can fix.
            log.error("the analytics service refused the gateway's service token")
            raise ApiError(
                502,
                "BadGateway",
                "the analytics service refused the gateway (TAMS_INTERNAL_TOKEN differs)",
            )
        next_key = passed.get("X-Paging-NextKey")
        if next_key is not None:
            passed["Link"] = f'<{next_page_url(request, self.settings, next_key)}>; rel="next"'
        return web.Response(status=status, body=body, headers=passed)


ANALYTICS = web.AppKey("analytics", AnalyticsForwarder)


async def forward(request: web.Request) -> web.Response:
    """Needs `read` (the gate checks it). The figures cover every flow, whoever may read it:
    with a fine-grained policy in force only admins may see them (docs/security.md)."""
    gate = request.app[GATE]
    principal = principal_of(request)
    if gate.policy.enabled and principal is not None and not principal.admin:
        raise ApiError(
            403,
            "Forbidden",
            "analytics cover every flow; with per-resource permissions only admins may read them",
        )
    return await request.app[ANALYTICS].forward(request)


def install(app: web.Application, settings: GatewaySettings) -> None:
    forwarder = AnalyticsForwarder(settings)
    app[ANALYTICS] = forwarder
    app.on_startup.append(forwarder.start)
    app.on_cleanup.append(forwarder.stop)
    app.router.add_get("/analytics", forward)
    app.router.add_get("/analytics/{path:.*}", forward)
