"""Start-up and shutdown of a service process, the same for all five services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from tams_runtime.http import (
    ReadyCheck,
    add_probe_routes,
    internal_token_middleware,
    observe_requests,
    start_site,
)
from tams_runtime.logs import configure_logging
from tams_runtime.settings import HttpSettings, KafkaSettings, ProcessSettings
from tams_runtime.tracing import configure_tracing, shutdown_tracing
from tams_schema.envelopes import CommandEnvelope, Outcome

log = logging.getLogger(__name__)

# While `serve` runs: set by `fail`, and `serve` then stops the process with the error.
_failure: asyncio.Future[None] | None = None


def fail(error: BaseException) -> None:
    """Stop this service with an error, so that whatever runs it starts it again: for work
    in the background that has ended by an error (a consume loop), which would otherwise
    leave a process that looks alive and does nothing. No-op outside `serve`."""
    if _failure is not None and not _failure.done():
        _failure.set_exception(error)


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
    public: bool = False,
) -> None:
    """Start components in order, serve HTTP, wait for SIGINT/SIGTERM, stop in reverse.

    An internal service's app (`public` False) answers only the probes without the internal
    token; the gateway's app is `public` and does its own authentication."""
    http = http or HttpSettings()
    app = app or web.Application(middlewares=[observe_requests])
    if not public:
        # After the request telemetry (refusals are measured too), before anything else.
        position = 1 if app.middlewares and app.middlewares[0] is observe_requests else 0
        app.middlewares.insert(position, internal_token_middleware())
    add_probe_routes(app, name, checks, http)
    global _failure
    loop = asyncio.get_running_loop()
    failure: asyncio.Future[None] = loop.create_future()
    _failure = failure

    def stop() -> None:
        if not failure.done():
            failure.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    started: list[Component] = []
    runner: web.AppRunner | None = None
    try:
        for component in components:
            if not await _start(component, failure, KafkaSettings().start_wait_s):
                break  # stopped while waiting for the broker
            started.append(component)
        else:
            runner = await start_site(
                app, http.host, http.port, keepalive_timeout_s=http.keepalive_timeout_s
            )
            # Everything alive now (modules, settings, clients) lives as long as the process:
            # moved out of the collector's reach, the full collections that request garbage
            # triggers no longer rescan it (they were 30-60 ms stalls in the latency tails).
            gc.collect()
            gc.freeze()
            log.info("service started", extra={"host": http.host, "port": http.port})
            # A signal, or `fail`: its error is raised once everything has stopped.
            await asyncio.wait([failure])
    finally:
        log.info("service stopping")
        _failure = None
        if runner is not None:
            await runner.cleanup()
        for component in reversed(started):
            with contextlib.suppress(Exception):
                await component.stop()
    failure.result()


async def _start(component: Component, failure: asyncio.Future[None], wait_s: float) -> bool:
    """Start a component; while the broker cannot be reached, try again (logging each
    attempt) for up to `wait_s`, so a service started during a broker outage comes up as
    soon as the broker is back instead of exiting into its supervisor's restart back-off.
    False: the service was told to stop meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.5
    while True:
        try:
            await component.start()
            return True
        except KafkaConnectionError as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning(
                "the broker cannot be reached; waiting for it",
                extra={"component": type(component).__name__, "error": str(exc)},
            )
        with contextlib.suppress(Exception):
            await component.stop()  # whatever it had started before the broker failed it
        await asyncio.wait([failure], timeout=delay)
        if failure.done():
            return False
        delay = min(delay * 2, 5.0)


def run(name: str, main: object) -> None:
    """Entry point helper: JSON logging and tracing, then run the coroutine function `main`
    on the configured event loop."""
    configure_logging(name)
    try:
        configure_tracing(name)
        assert callable(main)
        with asyncio.Runner(loop_factory=event_loop_factory(ProcessSettings())) as runner:
            runner.run(main())
    except Exception as exc:
        if isinstance(exc, ValidationError) and exc.title.endswith("Settings"):
            # A setting with a bad value: say which, as a log line like any other (the input
            # itself is left out, as it may be a secret).
            errors = [
                {
                    # No location: a rule across settings, which its message names.
                    "setting": ".".join(str(part) for part in error["loc"]) or exc.title,
                    "problem": error["msg"],
                }
                for error in exc.errors(include_url=False, include_input=False)
            ]
            log.critical("invalid configuration", extra={"settings": exc.title, "errors": errors})
            raise SystemExit(2) from None
        log.critical("stopped by an error", exc_info=True)
        raise SystemExit(1) from None
    finally:
        shutdown_tracing()


def event_loop_factory(settings: ProcessSettings) -> Callable[[], asyncio.AbstractEventLoop]:
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def serve_command_service(
    name: str,
    topic_of: Callable[[KafkaSettings], str],
    handlers_for: Callable[[Any], Mapping[str, Callable[[Any, CommandEnvelope], Outcome]]],
    *,
    components: Sequence[Component] = (),
    checks: Mapping[str, ReadyCheck] | None = None,
    workers_for: Callable[[Any, KafkaSettings], Sequence[Component]] | None = None,
) -> None:
    """Wiring shared by the services that own state: store, command consumer, probes.

    `handlers_for(store)` builds the command handlers; `components` (an S3 client, say) start
    before the consumer and stop after it; `workers_for(store, kafka)` builds background
    workers, started last and stopped first.
    """
    from tams_runtime.applier import CommandApplier
    from tams_runtime.components import StoreComponent
    from tams_runtime.consumer import CommandConsumer
    from tams_runtime.message_size import MessageLimit
    from tams_runtime.outcomes import OutcomePruner
    from tams_runtime.settings import OutcomeSettings
    from tams_runtime.store import open_store
    from tams_store import StoreUnavailable
    from tams_store.settings import StoreSettings

    kafka = KafkaSettings()
    store = open_store()
    # The consumer sets it at start (what the broker takes); the applier checks against it.
    limit = MessageLimit()
    applier = CommandApplier(
        store,
        handlers_for(store),
        is_retryable=lambda exc: isinstance(exc, StoreUnavailable),
        limit=limit,
    )
    consumer = CommandConsumer(
        kafka,
        topic_of(kafka),
        group_id=kafka.group_id(name),
        handler=applier,
        commands_per_transaction=StoreSettings().commands_per_transaction,
        limit=limit,
    )
    workers = list(workers_for(store, kafka)) if workers_for else []
    await serve(
        name,
        [
            StoreComponent(store),
            *components,
            consumer,
            OutcomePruner(store, OutcomeSettings()),
            *workers,
        ],
        {
            "store": store.ping,
            "broker": consumer.healthy,
            "commands": consumer.applying,
            **(checks or {}),
        },
    )
