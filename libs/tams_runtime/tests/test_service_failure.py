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
from tams_runtime.settings import HttpSettings, KafkaSettings
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


class Client:
    """The Kafka client of a consume loop: records whether it was stopped (left the group)."""

    def __init__(self) -> None:
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


async def test_a_loop_that_died_still_lets_its_client_leave_the_group() -> None:
    """Stopping after the loop died by an error stops the Kafka client too: the service's
    stop raised the loop's error again before, and the member never left the group, so its
    partitions waited out the session timeout before the restarted service got them."""

    async def unused(fetch: Fetch) -> Publish | None:
        return None

    async def broken() -> None:
        raise RuntimeError("a fault the loop does not expect")

    consumer = GroupConsumer(KafkaSettings(), "topic", "group", unused, client_id="test")
    client = Client()
    consumer._consumer = client
    consumer._task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await consumer.stop()
    assert client.stopped
