"""Analytics service wiring: usage and time-range analytics over the store.

Answers read-only queries on its HTTP port (the gateway forwards `/analytics/*`); the
queries themselves arrive with the analytics issue.
"""

from __future__ import annotations

from tams_runtime.components import StoreComponent
from tams_runtime.service import run, serve
from tams_store import open_store_from_env

SERVICE = "analytics"


async def main() -> None:
    store = open_store_from_env()
    await serve(SERVICE, [StoreComponent(store)], {"store": store.ping})


def entrypoint() -> None:
    run(SERVICE, main)
