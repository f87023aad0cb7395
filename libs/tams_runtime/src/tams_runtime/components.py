"""Adapters that give stores and buses the start/stop shape `serve` expects."""

from __future__ import annotations

from typing import Any


class StoreComponent:
    def __init__(self, store: Any) -> None:
        self.store = store

    async def start(self) -> None:
        await self.store.open()

    async def stop(self) -> None:
        await self.store.close()
