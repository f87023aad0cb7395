"""What every gateway handler can reach: settings, store (reads), command bus, topics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from tams_gateway.errors import bad_request
from tams_gateway.settings import GatewaySettings
from tams_runtime.bus import CommandBus
from tams_runtime.egress import EgressPolicy
from tams_runtime.media import UrlBuilder
from tams_runtime.secret_box import SecretBox
from tams_runtime.settings import KafkaSettings, MediaSettings, S3Settings
from tams_runtime.storage import StorageBackends
from tams_schema.topics import Topics
from tams_store import ReadTx, Store
from tams_store.port import InvalidPageKey

T = TypeVar("T")


@dataclass
class Gateway:
    settings: GatewaySettings
    kafka: KafkaSettings
    s3: S3Settings
    store: Store
    bus: CommandBus
    backends: StorageBackends
    urls: UrlBuilder
    # Playlists' URLs, valid longer: a player fetches the playlist once (docs/ext-hls.md).
    playlist_urls: UrlBuilder
    # Webhook registrations: which receiver URLs are acceptable, and sealing of key values.
    egress: EgressPolicy
    secrets: SecretBox
    media: MediaSettings

    @property
    def topics(self) -> Topics:
        return self.kafka.topics

    async def read_page(self, work: Callable[[ReadTx], T]) -> T:
        """Run a listing; a `page` cursor this store did not issue is the client's error."""
        try:
            return await self.store.read(work)
        except InvalidPageKey as exc:
            raise bad_request(f"invalid page key: {exc}") from exc

    def event_stream_mechanisms(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "kafka",
                "docs": "docs/events.md",
                "config": {"topic": self.topics.events},
            },
            {"name": "webhooks", "docs": "docs/webhooks.md"},
        ]


GATEWAY = web.AppKey("gateway", Gateway)
