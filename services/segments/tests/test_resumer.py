"""Restarting stalled deletion requests: the current step is published again (to the real
broker), a request that never progresses is given up as `error`, a live one is left alone."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tams_runtime import deletion
from tams_runtime.bus import CommandPublisher
from tams_runtime.settings import KafkaSettings, MediaSettings
from tams_schema.timerange import TimeRange
from tams_segments.worker import DeletionResumer
from tams_store import Store
from tams_store.port import DeletionRequestRecord
from tams_store.sqlite import SqliteStore

from .helpers import published_commands


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
    kafka: KafkaSettings, store: SqliteStore
) -> None:
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

    commands = await published_commands(kafka, kafka.topics.segments_commands)
    assert {(c["name"], c["key"], c["payload"]["step"]) for c in commands} >= {
        ("deletion.step", stalled.flow_id, 4)
    }
    restarted = await store.read(lambda tx: tx.get_deletion_request(stalled.id))
    assert restarted is not None and restarted.resumes == 3 and restarted.status == "created"
    failed = await store.read(lambda tx: tx.get_deletion_request(hopeless.id))
    assert failed is not None and failed.status == "error"
    assert "no progress" in failed.doc["error"]["summary"]


class CommitLandsThenFails:
    """A store whose next write commits and then reports a failure, as a lost connection
    after the commit would: the caller's retry runs the same work a second time."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    async def read(self, work: Any) -> Any:
        return await self.store.read(work)

    async def write(self, work: Any) -> Any:
        await self.store.write(work)
        return await self.store.write(work)  # the retry


async def test_a_restart_is_counted_once_when_its_write_is_retried(
    kafka: KafkaSettings, store: SqliteStore
) -> None:
    media = MediaSettings(deletion_resume_after_s=30, deletion_max_resumes=3)
    stalled = request(datetime.now(UTC) - timedelta(minutes=5), resumes=1, step=2)
    await store.write(lambda tx: tx.put_deletion_request(stalled))
    publisher = CommandPublisher(kafka, client_id="resumer-retry-test")
    await publisher.start()
    try:
        resumer = DeletionResumer(cast(Store, CommitLandsThenFails(store)), publisher, media)
        assert await resumer.resume(time.time_ns()) == [stalled.id]
    finally:
        await publisher.stop()
    restarted = await store.read(lambda tx: tx.get_deletion_request(stalled.id))
    assert restarted is not None and restarted.resumes == 2
