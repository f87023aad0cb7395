"""Analytics service wiring: usage, storage and time-range analytics over the store.

Answers read-only queries on its own HTTP port (the gateway forwards `/analytics/*` to it)
from counters the store keeps at write time (docs/analytics.md), and publishes store-wide
gauges. It depends on the store only: no Kafka, no S3.
"""

from __future__ import annotations

from aiohttp import web

from tams_analytics.gauges import StoreGauges
from tams_analytics.routes import BACKENDS, SETTINGS, STORE, routes
from tams_analytics.settings import AnalyticsSettings
from tams_runtime.components import StoreComponent
from tams_runtime.http import observe_requests
from tams_runtime.service import run, serve
from tams_runtime.settings import S3Settings
from tams_runtime.storage import StorageBackends
from tams_runtime.store import open_store
from tams_runtime.web import api_errors
from tams_store import Store

SERVICE = "analytics"


def build_app(
    store: Store, settings: AnalyticsSettings, backends: StorageBackends
) -> web.Application:
    app = web.Application(middlewares=[observe_requests, api_errors])
    app[STORE] = store
    app[SETTINGS] = settings
    app[BACKENDS] = backends
    app.add_routes(routes)
    return app


async def main() -> None:
    settings = AnalyticsSettings()
    store = open_store()
    # Backend ids and labels only (deploy-time configuration): nothing here talks to S3.
    backends = StorageBackends.from_settings(S3Settings())
    await serve(
        SERVICE,
        [StoreComponent(store), StoreGauges(store, backends, settings.gauge_interval_s)],
        {"store": store.ping},
        app=build_app(store, settings, backends),
    )


def entrypoint() -> None:
    run(SERVICE, main)
