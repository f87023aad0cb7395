"""Components started side by side (`app.Together`): a failed start leaves none running."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from tams_webhooks.app import Together


class Failing:
    async def start(self) -> None:
        raise KafkaConnectionError("no broker")

    async def stop(self) -> None:
        pass


class Slow:
    """A start that takes a while (a consumer joining its group)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = False
        self.ended = False  # its start was over (cancelled, or done) when `start` returned

    async def start(self) -> None:
        try:
            await self.gate.wait()
            self.running = True
        finally:
            self.ended = True

    async def stop(self) -> None:
        self.running = False


async def test_a_failed_start_ends_the_others_before_the_stop() -> None:
    slow = Slow()
    together = Together(Failing(), slow)
    with pytest.raises(KafkaConnectionError):
        await together.start()
    # Its start is over before the failure is raised: it cannot finish after the stop that
    # follows and run beside the one the next start makes.
    assert slow.ended and not slow.running
    await together.stop()  # what `serve` does before it tries again
