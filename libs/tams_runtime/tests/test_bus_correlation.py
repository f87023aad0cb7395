"""The gateway's command carries the request's correlation id, and only the reply to that very
command answers the request (a late reply to an older command with the same correlation id,
say after a 504 and a client retry, is ignored; so is a line that is not a reply)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from tams_runtime.bus import CommandBus, ensure_topics
from tams_runtime.logs import correlated
from tams_runtime.replies import parse_reply_address
from tams_schema.envelopes import CommandEnvelope, Reply
from tams_stack.stack import Stack

from .test_command_bus import unique_settings


async def test_only_the_reply_to_this_command_answers_the_request(tams_infra: Stack) -> None:
    settings = unique_settings(tams_infra)
    await ensure_topics(settings)
    topic = settings.topics.catalog_commands
    bus = CommandBus(settings)
    await bus.start()
    commands = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, fetch_max_wait_ms=10
    )
    await commands.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.command_partitions)]
        commands.assign(partitions)
        await commands.seek_to_beginning(*partitions)
        with correlated("client-request-7"):
            request = asyncio.create_task(bus.request(topic, "count", "flow-1", {}))
        async with asyncio.timeout(10):
            record = None
            while record is None:
                for records in (await commands.getmany(timeout_ms=100)).values():
                    record = records[0]
        command = CommandEnvelope.model_validate_json(record.value)
        assert command.correlation_id == "client-request-7"
        assert command.reply_to == bus.reply_address
        # What a service sends the gateway: one line of JSON per reply.
        _, writer = await asyncio.open_connection(*parse_reply_address(command.reply_to))

        def reply(command_id: str, status: int) -> bytes:
            answer = Reply(
                command_id=command_id, correlation_id=command.correlation_id, status=status
            )
            return answer.model_dump_json().encode() + b"\n"

        writer.write(reply("an-older-command", 500) + b"not a reply\n")
        # The right reply arrives in two pieces, as TCP may deliver it.
        whole = reply(command.command_id, 201)
        writer.write(whole[:10])
        await writer.drain()
        writer.write(whole[10:])
        answered = await asyncio.wait_for(request, 10)
        assert (answered.command_id, answered.status) == (command.command_id, 201)
        writer.close()
    finally:
        await commands.stop()
        await bus.stop()
