"""Consumer lag is measured from the broker, so it shows a consumer that is stuck."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from tams_runtime.bus import ensure_topics
from tams_runtime.consumer import CommandConsumer
from tams_runtime.metrics import CONSUMER_LAG
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_stack.stack import Stack

from .test_command_bus import unique_settings


def lag_of(group: str) -> float:
    return sum(
        sample.value
        for metric in CONSUMER_LAG.collect()
        for sample in metric.samples
        if sample.labels["group"] == group
    )


async def until(predicate: object, timeout: float = 15.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def test_lag_grows_while_the_consumer_is_stuck_and_drains_after(
    tams_infra: Stack,
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    release = asyncio.Event()

    async def stuck_handler(commands: Sequence[CommandEnvelope]) -> list[Outcome]:
        await release.wait()
        return [Outcome(status=204) for _ in commands]

    group = f"{settings.topic_prefix}-lag"
    consumer = CommandConsumer(
        settings,
        settings.topics.catalog_commands,
        group_id=group,
        handler=stuck_handler,
        lag_interval_s=0.1,
    )
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for n in range(20):
            command = CommandEnvelope(name="x", key=f"flow-{n}")
            await producer.send_and_wait(
                settings.topics.catalog_commands, command.model_dump_json().encode()
            )
        await until(lambda: lag_of(group) == 20)
        release.set()
        await until(lambda: lag_of(group) == 0)
    finally:
        release.set()
        await producer.stop()
        await consumer.stop()
