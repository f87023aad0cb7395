"""Soft-deleted flows past their `purge_after` (docs/ext-soft-delete.md): the worker asks
the catalog to purge them (over the real broker), once per `deletion_resume_after_s`, and
never a flow still within its retention or already being purged."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tams_runtime import deletion
from tams_runtime.bus import CommandPublisher
from tams_runtime.settings import KafkaSettings, MediaSettings
from tams_segments.worker import DeletionResumer
from tams_store.port import DeletedFlowRecord
from tams_store.sqlite import SqliteStore

from .helpers import published_commands

S = 1_000_000_000


async def hidden_flow(store: SqliteStore, purge_after_ns: int) -> str:
    flow_id = str(uuid.uuid4())
    doc = {
        "id": flow_id,
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "created": "2026-01-01T00:00:00.000000Z",
        "metadata_updated": "2026-01-01T00:00:00.000000Z",
    }

    def work(tx: Any) -> None:
        tx.put_flow(doc)
        tx.hide_flow(
            DeletedFlowRecord(
                flow=doc,
                deleted="2026-01-01T00:00:00.000000Z",
                deleted_ns=0,
                purge_after="2026-01-01T00:00:00.000000Z",
                purge_after_ns=purge_after_ns,
            )
        )

    await store.write(work)
    return flow_id


async def test_expired_soft_deletes_are_sent_to_the_catalog_for_purging(
    kafka: KafkaSettings, store: SqliteStore
) -> None:
    now = time.time_ns()
    expired = await hidden_flow(store, now - S)
    purging = await hidden_flow(store, now - S)
    await store.write(lambda tx: tx.start_purge(purging, str(uuid.uuid4())))
    await hidden_flow(store, now + 3600 * S)  # within its retention

    publisher = CommandPublisher(kafka, client_id="expiry-test")
    await publisher.start()
    try:
        resumer = DeletionResumer(store, publisher, MediaSettings(deletion_resume_after_s=30))
        assert await resumer.purge_expired_flows(now) == [expired]
        # Not asked again while the first command may still be on its way...
        assert await resumer.purge_expired_flows(now + S) == []
        # ...but again once it may have been lost.
        assert await resumer.purge_expired_flows(now + 31 * S) == [expired]
    finally:
        await publisher.stop()

    commands = await published_commands(kafka, kafka.topics.catalog_commands)
    assert {(c["name"], c["key"], c["payload"]["flow_id"]) for c in commands} == {
        (deletion.PURGE_COMMAND, expired, expired)
    }
