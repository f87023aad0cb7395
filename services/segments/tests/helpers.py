"""Helpers of the segments service's own tests."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from tams_runtime.settings import KafkaSettings


async def published_commands(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """The commands on `topic`, from the start (as the consuming service would read them)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [json.loads(r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()
