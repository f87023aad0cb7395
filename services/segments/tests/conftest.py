"""Fixtures of the segments service's own tests: topics of their own on the session's real
broker (the fresh SQLite `store` comes from tams_stack.testing)."""

from __future__ import annotations

import uuid

import pytest_asyncio

from tams_runtime.bus import ensure_topics
from tams_runtime.settings import KafkaSettings
from tams_stack.stack import Stack


@pytest_asyncio.fixture
async def kafka(tams_infra: Stack) -> KafkaSettings:
    """Topics of their own (a fresh prefix) on the session's broker, one command partition."""
    settings = KafkaSettings(
        bootstrap_servers=tams_infra.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        command_partitions=1,
    )
    await ensure_topics(settings)
    return settings
