"""Start-up and shutdown of a service process, the same for all five services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping, Sequence
from typing import Protocol

from aiohttp import web

from tams_runtime.http import ReadyCheck, add_probe_routes, start_site
from tams_runtime.logs import configure_logging
from tams_runtime.settings import HttpSettings

log = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(
    name: str,
    components: Sequence[Component],
    checks: Mapping[str, ReadyCheck],
    *,
    app: web.Application | None = None,
    http: HttpSettings | None = None,
) -> None:
    """Start components in order, serve HTTP, wait for SIGINT/SIGTERM, stop in reverse."""
    http = http or HttpSettings()
    app = app or web.Application()
    add_probe_routes(app, name, checks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Component] = []
    runner: web.AppRunner | None = None
    try:
        for component in components:
            await component.start()
            started.append(component)
        runner = await start_site(app, http.host, http.port)
        log.info("service started", extra={"host": http.host, "port": http.port})
        await stop.wait()
    finally:
        log.info("service stopping")
        if runner is not None:
            await runner.cleanup()
        for component in reversed(started):
            with contextlib.suppress(Exception):
                await component.stop()


def run(name: str, main: object) -> None:
    """Entry point helper: JSON logging, then run the coroutine function `main`."""
    configure_logging(name)
    assert callable(main)
    asyncio.run(main())
