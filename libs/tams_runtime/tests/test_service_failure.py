"""A service whose consume loop ends by an error stops with it, so that its supervisor
(Kubernetes, `tams up`) starts it again. Before, the process stayed up, its `/health` 200,
its partitions assigned to it and read by nobody. Over the real local broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from tams_runtime import service
from tams_runtime.bus import ensure_topics
from tams_runtime.group_consumer import Fetch, GroupConsumer, Publish
from tams_runtime.settings import HttpSettings
from tams_stack.stack import Stack

from .test_command_bus import unique_settings


class Stopped:
    """A component that records its stop."""

    def __init__(self) -> None:
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


async def test_a_consume_loop_that_dies_stops_the_service_with_its_error(
    tams_infra: Stack,
) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    topic = settings.topics.catalog_commands

    async def broken(fetch: Fetch) -> Publish | None:
        raise RuntimeError("a fault the loop does not expect")

    consumer = GroupConsumer(
        settings, topic, settings.group_id("catalog"), broken, client_id="test"
    )
    other = Stopped()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        serving = asyncio.create_task(
            service.serve("test", [other, consumer], {}, http=HttpSettings(port=0))
        )
        await producer.send_and_wait(topic, b"{}", key=b"flow-1")
        with pytest.raises(RuntimeError, match="a fault the loop does not expect"):
            async with asyncio.timeout(30):
                await serving
    finally:
        await producer.stop()
    assert other.stopped  # everything started was stopped before the error was raised
    assert not consumer.running()


def test_fail_outside_a_running_service_does_nothing() -> None:
    service.fail(RuntimeError("nobody serves"))
