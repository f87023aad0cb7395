"""Webhooks service wiring: webhook registrations and durable delivery of TAMS events.

Two consumers: `tams.webhooks.commands` (registrations, keyed by webhook id, applied like every
command service's commands) and the public events topic in the group `tams-webhooks-delivery`
(`router.EventRouter` queues each event for the webhooks that want it). `dispatch.Dispatcher`
runs one delivery worker per enabled webhook. After each batch of registration commands the
dispatcher re-reads the registrations before the replies go out, so an event published after
a client's 201 is matched against the new registration.

One instance delivers: run a single replica of this service (the queues are per webhook and
a webhook's worker must be unique to keep its order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tams_runtime.applier import CommandApplier
from tams_runtime.authz import AccessPolicy
from tams_runtime.components import StoreComponent
from tams_runtime.consumer import CommandConsumer
from tams_runtime.egress import EgressPolicy
from tams_runtime.event_consumer import EventConsumer
from tams_runtime.media import UrlBuilder
from tams_runtime.message_size import MessageLimit
from tams_runtime.outcomes import OutcomePruner
from tams_runtime.secret_box import SecretBox
from tams_runtime.service import Component, run, serve
from tams_runtime.settings import KafkaSettings, OutcomeSettings, S3Settings, WebhookSettings
from tams_runtime.storage import StorageBackends
from tams_runtime.store import open_store
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import StoreUnavailable
from tams_webhooks.dispatch import Dispatcher
from tams_webhooks.payloads import Payloads
from tams_webhooks.registrations import HANDLERS
from tams_webhooks.router import EventRouter
from tams_webhooks.sender import Sender

SERVICE = "webhooks"
# The consumer group following the events topic: `<topic prefix>-webhooks-delivery`.
DELIVERY_GROUP = "webhooks-delivery"


class Together:
    """Components started side by side (each consumer group join takes a while) and stopped
    in reverse order."""

    def __init__(self, *components: Component) -> None:
        self.components = components

    async def start(self) -> None:
        starts = [asyncio.ensure_future(c.start()) for c in self.components]
        try:
            await asyncio.gather(*starts)
        except BaseException:
            # One failed (the broker cannot be reached, say): the others are ended before
            # this raises, so the stop that follows (and a start again: `serve` waits for
            # the broker) never races a start still under way, which would finish after it
            # and leave a second consumer running.
            for start in starts:
                start.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    async def stop(self) -> None:
        for component in reversed(self.components):
            await component.stop()


async def main() -> None:
    kafka = KafkaSettings()
    settings = WebhookSettings()
    # Its loop sends deliveries while the store records them: SQLite writes stay on their
    # thread (on the loop, delivery p50 went from 13 to 21 ms in bench/webhooks.py).
    store = open_store(writes_on_loop=False)
    backends = StorageBackends.from_settings(S3Settings())
    sender = Sender(settings, EgressPolicy.from_settings(settings))
    dispatcher = Dispatcher(
        store,
        sender,
        Payloads(UrlBuilder(backends)),
        SecretBox.from_settings(settings),
        settings,
        AccessPolicy.from_settings(),
    )
    # The consumer sets it at start (what the broker takes); the applier checks against it.
    limit = MessageLimit()
    applier = CommandApplier(
        store, HANDLERS, is_retryable=lambda exc: isinstance(exc, StoreUnavailable), limit=limit
    )

    async def apply_registrations(commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        async with dispatcher.match_lock:
            outcomes = await applier(commands)
            # Registration commands name their webhook; only those are read again.
            await dispatcher.refresh({i for c in commands if (i := c.payload.get("webhook_id"))})
        return outcomes

    # Off the media path: these consumers poll less often (KafkaSettings explains).
    quiet = kafka.model_copy(update={"fetch_max_wait_ms": kafka.webhooks_fetch_max_wait_ms})
    commands = CommandConsumer(
        quiet,
        kafka.topics.webhooks_commands,
        group_id=kafka.group_id(SERVICE),
        handler=apply_registrations,
        limit=limit,
    )
    events = EventConsumer(
        quiet,
        kafka.group_id(DELIVERY_GROUP),
        EventRouter(dispatcher),
        idle_read_interval_s=kafka.webhooks_idle_read_interval_ms / 1000,
    )
    await serve(
        SERVICE,
        [
            StoreComponent(store),
            sender,
            dispatcher,
            Together(commands, events),
            OutcomePruner(store, OutcomeSettings()),
        ],
        {
            "store": store.ping,
            "broker": commands.healthy,
            "commands": commands.applying,
            "events": events.healthy,
        },
    )


def entrypoint() -> None:
    run(SERVICE, main)
