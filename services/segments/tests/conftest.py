"""Fixtures of the segments service's own tests: a fresh SQLite store, and topics of their
own on the session's real broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tams_runtime.bus import ensure_topics
from tams_runtime.settings import KafkaSettings
from tams_stack.stack import Stack
from tams_store.sqlite import SqliteStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    yield db
    await db.close()


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
