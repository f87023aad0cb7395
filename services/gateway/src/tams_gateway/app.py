"""Gateway wiring: the TAMS HTTP API.

Reads are answered from the store (read-only transactions); writes become commands on the
owning service's topic, keyed by flow or source id, and the gateway answers with the reply.
"""

from __future__ import annotations

from aiohttp import web

from tams_gateway.auth.gate import GATE, Gate, gate_middleware
from tams_gateway.auth.ratelimit import RateLimiter
from tams_gateway.auth.settings import AuthSettings
from tams_gateway.commands import BUS
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.cors import CORS, Cors, cors_middleware
from tams_gateway.errors import error_middleware
from tams_gateway.expect import close_unanswered, with_deferred_continue
from tams_gateway.queries import single_valued_query
from tams_gateway.routes import (
    analytics,
    deleted_flows,
    deletion_requests,
    flows,
    hls,
    media,
    openapi,
    profiles,
    service,
    sources,
    webhooks,
)
from tams_gateway.settings import GatewaySettings
from tams_runtime.authz import AccessPolicy
from tams_runtime.bus import CommandBus
from tams_runtime.components import StoreComponent
from tams_runtime.egress import EgressPolicy
from tams_runtime.http import observe_requests
from tams_runtime.media import UrlBuilder
from tams_runtime.secret_box import SecretBox
from tams_runtime.service import run, serve
from tams_runtime.settings import (
    HttpSettings,
    KafkaSettings,
    MediaSettings,
    ReplySettings,
    S3Settings,
    WebhookSettings,
    check_presigned_url_timeout,
)
from tams_runtime.storage import StorageBackends
from tams_runtime.store import open_store
from tams_runtime.web import api_errors

SERVICE = "gateway"


def build_app(gateway: Gateway, gate: Gate) -> web.Application:
    # Outermost first: metrics and traces see every answer; CORS headers go on errors too (a
    # browser must be able to read a 401); `api_errors` answers every failure as JSON, the
    # gateway's own exceptions translated by `error_middleware`; the gate (authentication,
    # scopes, rate limits) raises errors of its own.
    app = web.Application(
        middlewares=[
            observe_requests,
            cors_middleware,
            api_errors,
            error_middleware,
            gate_middleware,
            single_valued_query,
        ],
        client_max_size=gateway.settings.max_body_bytes,
    )
    app[GATEWAY] = gateway
    app[BUS] = gateway.bus
    app[GATE] = gate
    app[CORS] = Cors(gateway.settings)
    # aiohttp tries the routes under one path prefix (`/flows/...`) in the order they were
    # added: segment registrations and reads, the busiest, are matched first.
    for table in (
        media.routes,
        service.routes,
        profiles.routes,
        webhooks.routes,
        sources.routes,
        flows.routes,
        hls.routes,
        deletion_requests.routes,
        deleted_flows.routes,
    ):
        app.add_routes(with_deferred_continue(table))
    app.on_response_prepare.append(close_unanswered)
    analytics.install(app, gateway.settings)
    openapi.install(app)
    return app


async def main() -> None:
    settings = GatewaySettings()
    kafka = KafkaSettings()
    store = open_store()
    bus = CommandBus(kafka, ReplySettings())
    s3 = S3Settings()
    media = MediaSettings()
    check_presigned_url_timeout(s3, media)
    backends = StorageBackends.from_settings(s3)
    webhook_settings = WebhookSettings()
    gateway = Gateway(
        settings=settings,
        kafka=kafka,
        s3=s3,
        store=store,
        bus=bus,
        backends=backends,
        urls=UrlBuilder(backends),
        playlist_urls=UrlBuilder(
            backends.with_url_timeout(
                max(settings.playlist_url_timeout_s, s3.presigned_url_timeout_s)
            )
        ),
        egress=EgressPolicy.from_settings(webhook_settings),
        secrets=SecretBox.from_settings(webhook_settings),
        media=media,
    )
    gate = Gate.from_settings(
        AuthSettings(),
        AccessPolicy.from_settings(),
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
    )
    await serve(
        SERVICE,
        [StoreComponent(store), bus],
        {"store": store.ping, "broker": bus.healthy},
        app=build_app(gateway, gate),
        http=HttpSettings(
            host=settings.host,
            port=settings.port,
            keepalive_timeout_s=settings.keepalive_timeout_s,
        ),
        public=True,
    )


def entrypoint() -> None:
    run(SERVICE, main)
