"""Helpers of the segments service's own tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tams_runtime.epochs import epoch_of
from tams_runtime.settings import KafkaSettings


def flow_and_source(tx: Any, flow_id: str, source_id: str, stamp: str) -> dict[str, Any]:
    """Put a video flow and its source straight into a store (`tx`); returns the flow."""
    flow = {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "container": "video/mp2t",
        "created": stamp,
        "metadata_updated": stamp,
        "tags": {},
    }
    tx.put_source({"id": source_id, "format": flow["format"], "created": stamp, "tags": {}})
    tx.put_flow(flow)
    return flow


async def published_commands(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """The commands sent to `topic` (or to its epochs), from the start, as the consuming
    service would read them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        partitions = [
            TopicPartition(described["topic"], p["partition"])
            for described in await admin.describe_topics()
            if described["topic"] == topic or epoch_of(topic, described["topic"]) is not None
            for p in described["partitions"]
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        commands: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=200)
                commands += [json.loads(r.value) for records in batches.values() for r in records]
        return commands
    finally:
        await consumer.stop()
