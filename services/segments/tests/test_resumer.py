"""Restarting stalled deletion requests: the current step is published again (to the real
broker), a request that never progresses is given up as `error`, a live one is left alone."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from tams_runtime import deletion
from tams_runtime.bus import CommandPublisher, ensure_topics
from tams_runtime.settings import KafkaSettings, MediaSettings
from tams_schema.timerange import TimeRange
from tams_segments.worker import DeletionResumer
from tams_stack.stack import Stack
from tams_store.port import DeletionRequestRecord
from tams_store.sqlite import SqliteStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    yield db
    await db.close()


def request(updated: datetime, resumes: int = 0, step: int = 0) -> DeletionRequestRecord:
    record = deletion.new_request(
        str(uuid.uuid4()),
        TimeRange.eternity(),
        delete_flow=False,
        object_id=None,
        principal=None,
        now=updated,
        retention_s=3600,
    )
    return DeletionRequestRecord(doc=record.doc, step=step, resumes=resumes)


async def test_stalled_requests_are_restarted_or_given_up(
    tams_infra: Stack, store: SqliteStore
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=tams_infra.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=f"t{uuid.uuid4().hex[:8]}",
        command_partitions=1,
    )
    await ensure_topics(kafka)
    media = MediaSettings(deletion_resume_after_s=30, deletion_max_resumes=3)
    now = datetime.now(UTC)
    stalled = request(now - timedelta(minutes=5), resumes=1, step=4)
    hopeless = request(now - timedelta(minutes=5), resumes=3)
    live = request(now)
    for record in (stalled, hopeless, live):
        await store.write(lambda tx, r=record: tx.put_deletion_request(r))

    publisher = CommandPublisher(kafka, client_id="resumer-test")
    await publisher.start()
    try:
        resumer = DeletionResumer(store, publisher, media)
        assert await resumer.resume(time.time_ns()) == [stalled.id]
        # At start-up every unfinished request is restarted, however recent.
        everything = await resumer.resume(time.time_ns(), everything=True)
        assert set(everything) == {stalled.id, live.id}
    finally:
        await publisher.stop()

    consumer = AIOKafkaConsumer(
        kafka.topics.segments_commands,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        commands = [json.loads(r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    assert {(c["name"], c["key"], c["payload"]["step"]) for c in commands} >= {
        ("deletion.step", stalled.flow_id, 4)
    }
    restarted = await store.read(lambda tx: tx.get_deletion_request(stalled.id))
    assert restarted is not None and restarted.resumes == 3 and restarted.status == "created"
    failed = await store.read(lambda tx: tx.get_deletion_request(hopeless.id))
    assert failed is not None and failed.status == "error"
    assert "no progress" in failed.doc["error"]["summary"]
