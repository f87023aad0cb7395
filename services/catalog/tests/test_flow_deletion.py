"""Asynchronous flow deletion across the catalog and the segments service, step by step
against a real SQLite store: segments written while the deletion runs are deleted too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from tams_catalog.handlers import FlowDeletion, Relaying
from tams_runtime.applier import CommandApplier
from tams_runtime.settings import MediaSettings
from tams_schema.envelopes import CommandEnvelope, FollowUp, Outcome
from tams_segments.deletion import DeletionStep
from tams_store import StoreUnavailable
from tams_store.port import ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore

FLOW = "6b3e1a0c-7d2b-4c1e-9f00-000000000001"
SOURCE = "6b3e1a0c-7d2b-4c1e-9f00-000000000002"
S = 1_000_000_000
STAMP = "2026-01-01T00:00:00.000000Z"


def segments(first: int, count: int) -> tuple[list[SegmentRecord], list[ObjectRecord]]:
    records = [
        SegmentRecord(i * S, (i + 1) * S, f"obj-{i}", f"[{i}:0_{i + 1}:0)", {}, 1)
        for i in range(first, first + count)
    ]
    objects = [
        ObjectRecord(r.object_id, FLOW, "store-a", "video/mp2t", True, FLOW, {"timerange": "_"})
        for r in records
    ]
    return records, objects


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    flow = {
        "id": FLOW,
        "source_id": SOURCE,
        "format": "urn:x-nmos:format:video",
        "container": "video/mp2t",
        "created": STAMP,
        "metadata_updated": STAMP,
        "tags": {},
    }

    def setup(tx: Any) -> None:
        tx.put_source({"id": SOURCE, "format": flow["format"], "created": STAMP, "tags": {}})
        tx.put_flow(flow)
        tx.add_segments(FLOW, *segments(0, 10), STAMP)

    await db.write(setup)
    yield db
    await db.close()


async def test_segments_added_during_a_flow_deletion_go_too(store: SqliteStore) -> None:
    media = MediaSettings(sync_delete_limit=3, delete_chunk_segments=4)
    run = CommandApplier(
        store,
        {"flows.delete": Relaying(FlowDeletion(media)), "deletion.step": DeletionStep(media)},
        is_retryable=lambda exc: isinstance(exc, StoreUnavailable),
    )

    async def apply(command: CommandEnvelope) -> Outcome:
        (outcome,) = await run([command])
        return outcome

    accepted = await apply(
        CommandEnvelope(name="flows.delete", key=FLOW, payload={"flow_id": FLOW})
    )
    assert accepted.status == 202 and accepted.body["delete_flow"] is True
    assert accepted.body["timerange_to_delete"] == "[0:0_10:0)"

    async def run_until_catalog(follow_ups: list[FollowUp]) -> FollowUp:
        while follow_ups[0].service == "segments":
            follow_ups = (await apply(follow_ups[0].command)).commands
        return follow_ups[0]

    finish = await run_until_catalog(accepted.commands)
    # A client writes more segments before the catalog's last step runs.
    await store.write(lambda tx: tx.add_segments(FLOW, *segments(20, 5), STAMP))
    again = await apply(finish.command)
    assert [f.service for f in again.commands] == ["segments"]
    assert await store.read(lambda tx: tx.get_flow(FLOW)) is not None
    record = await store.read(lambda tx: tx.get_deletion_request(accepted.body["id"]))
    assert record is not None and record.doc["timerange_remaining"] == "[20:0_25:0)"

    last = await apply((await run_until_catalog(again.commands)).command)
    # The deletion's events go through the segments service, after its own (events.relay),
    # under the flow's key and the source's.
    assert last.events == []
    relays = {f.command.key: f for f in last.commands}
    assert {(f.service, f.command.name) for f in last.commands} == {("segments", "events.relay")}
    relayed = {
        key: [e["event_type"] for e in f.command.payload["events"]] for key, f in relays.items()
    }
    assert relayed == {FLOW: ["flows/deleted"], SOURCE: ["sources/deleted"]}
    assert await store.read(lambda tx: tx.get_flow(FLOW)) is None
    done = await store.read(lambda tx: tx.get_deletion_request(accepted.body["id"]))
    assert done is not None and done.status == "done"
