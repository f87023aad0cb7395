"""Gateway wiring: the TAMS HTTP API.

Reads are answered from the store (read-only transactions); writes become commands on the
owning service's topic, keyed by flow or source id, and the gateway answers with the reply.
"""

from __future__ import annotations

from aiohttp import web

from tams_gateway.commands import BUS
from tams_gateway.context import GATEWAY, Gateway
from tams_gateway.errors import error_middleware
from tams_gateway.routes import (
    analytics,
    deletion_requests,
    flows,
    media,
    profiles,
    service,
    sources,
    webhooks,
)
from tams_gateway.settings import GatewaySettings
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
    S3Settings,
    WebhookSettings,
)
from tams_runtime.storage import StorageBackends
from tams_runtime.store import open_store
from tams_runtime.web import api_errors

SERVICE = "gateway"


def build_app(gateway: Gateway) -> web.Application:
    app = web.Application(
        middlewares=[observe_requests, api_errors, error_middleware],
        client_max_size=gateway.settings.max_body_bytes,
    )
    app[GATEWAY] = gateway
    app[BUS] = gateway.bus
    for table in (
        service.routes,
        profiles.routes,
        webhooks.routes,
        sources.routes,
        flows.routes,
        media.routes,
        deletion_requests.routes,
    ):
        app.add_routes(table)
    analytics.install(app, gateway.settings)
    return app


async def main() -> None:
    settings = GatewaySettings()
    kafka = KafkaSettings()
    store = open_store()
    bus = CommandBus(kafka)
    s3 = S3Settings()
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
        egress=EgressPolicy.from_settings(webhook_settings),
        secrets=SecretBox.from_settings(webhook_settings),
        media=MediaSettings(),
    )
    await serve(
        SERVICE,
        [StoreComponent(store), bus],
        {"store": store.ping, "broker": bus.healthy},
        app=build_app(gateway),
        http=HttpSettings(host=settings.host, port=settings.port),
    )


def entrypoint() -> None:
    run(SERVICE, main)
