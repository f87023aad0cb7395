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

    async def start(self) -> None:
        await self.gate.wait()
        self.running = True

    async def stop(self) -> None:
        self.running = False


async def test_a_failed_start_ends_the_others_before_the_stop() -> None:
    slow = Slow()
    together = Together(Failing(), slow)
    with pytest.raises(KafkaConnectionError):
        await together.start()
    await together.stop()  # what `serve` does before it tries again
    slow.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    # Finished after its stop, it would run beside the one the next start makes.
    assert not slow.running
