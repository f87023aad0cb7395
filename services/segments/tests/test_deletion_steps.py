"""Deletion steps against a real SQLite store through the real applier: a redelivered step
is answered from its recorded outcome, a stale step changes nothing, the chain ends done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest_asyncio

from tams_runtime.applier import CommandApplier
from tams_runtime.settings import MediaSettings, S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_schema.timerange import TimeRange
from tams_segments.deletion import DeletionStep, SegmentDeletion
from tams_segments.registration import ObjectChecker, Registrar
from tams_segments.tagging import SegmentTagging
from tams_store import StoreUnavailable
from tams_store.port import ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore

from .helpers import flow_and_source

FLOW = "5a3e1a0c-7d2b-4c1e-9f00-000000000001"
SOURCE = "5a3e1a0c-7d2b-4c1e-9f00-000000000002"
S = 1_000_000_000
STAMP = "2026-01-01T00:00:00.000000Z"


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    segments = [
        SegmentRecord(i * S, (i + 1) * S, f"obj-{i}", f"[{i}:0_{i + 1}:0)", {}, 1)
        for i in range(10)
    ]
    objects = [
        ObjectRecord(f"obj-{i}", FLOW, "store-a", "video/mp2t", True, FLOW, {"timerange": "_"})
        for i in range(10)
    ]

    def setup(tx: Any) -> None:
        flow_and_source(tx, FLOW, SOURCE, STAMP)
        tx.add_segments(FLOW, segments, objects, STAMP)

    await db.write(setup)
    yield db
    await db.close()


def applier(store: SqliteStore) -> CommandApplier:
    # No release grace: the objects go with their last segment (the grace has its own test).
    media = MediaSettings(sync_delete_limit=3, delete_chunk_segments=4, release_grace_s=0)
    return CommandApplier(
        store,
        {"segments.delete": SegmentDeletion(media), "deletion.step": DeletionStep(media)},
        is_retryable=lambda exc: isinstance(exc, StoreUnavailable),
    )


async def remaining(store: SqliteStore) -> int:
    found = await store.read(
        lambda tx: tx.segments_within(FLOW, TimeRange.eternity(), object_id=None, limit=100)
    )
    return len(found)


async def apply(apply_: CommandApplier, command: CommandEnvelope) -> Outcome:
    (outcome,) = await apply_([command])
    return outcome


async def test_redelivered_and_stale_steps_are_applied_once(store: SqliteStore) -> None:
    run = applier(store)
    delete = CommandEnvelope(name="segments.delete", key=FLOW, payload={"flow_id": FLOW})
    accepted = await apply(run, delete)
    assert accepted.status == 202
    request_id = accepted.body["id"]
    (first_step,) = accepted.commands
    assert first_step.service == "segments" and first_step.command.key == FLOW
    assert await remaining(store) == 10  # nothing deleted before the first step

    first = await apply(run, first_step.command)
    assert await remaining(store) == 6
    assert [e.event["timerange"] for e in first.events] == ["[0:0_4:0)"]
    # Kafka redelivers the same step: the recorded outcome, nothing deleted again.
    assert await apply(run, first_step.command) == first
    assert await remaining(store) == 6
    # A copy of step 0 with a new command id (a restart racing the live chain): stale.
    stale = CommandEnvelope(name="deletion.step", key=FLOW, payload=first_step.command.payload)
    ignored = await apply(run, stale)
    assert ignored.events == [] and ignored.commands == []
    assert await remaining(store) == 6

    record = await store.read(lambda tx: tx.get_deletion_request(request_id))
    assert record is not None and record.status == "started" and record.step == 1
    assert record.doc["timerange_remaining"] == "[4:0_"

    follow_ups = first.commands
    while follow_ups:
        (follow_up,) = follow_ups
        follow_ups = (await apply(run, follow_up.command)).commands
    assert await remaining(store) == 0
    done = await store.read(lambda tx: tx.get_deletion_request(request_id))
    assert done is not None and done.status == "done" and done.doc["timerange_remaining"] == "()"
    # Every object went with its last segment; its bytes are queued for deletion.
    assert await store.read(lambda tx: tx.get_objects([f"obj-{i}" for i in range(10)])) == {}
    jobs = await store.read(lambda tx: tx.media_jobs_of([f"obj-{i}" for i in range(10)]))
    assert {(j.kind, j.storage_id) for j in jobs} == {("delete", "store-a")} and len(jobs) == 10


async def test_the_flows_segment_times_never_go_back(store: SqliteStore) -> None:
    """A deletion step is issued before the fetch carrying it commits, so commands for the
    flow accepted meanwhile are applied first, with later times: the step must not set
    `segments_updated`, or its events' times, back."""
    run = applier(store)
    delete = CommandEnvelope(name="segments.delete", key=FLOW, payload={"flow_id": FLOW})
    (step,) = (await apply(run, delete)).commands
    later = "2099-01-01T00:00:00.000000Z"
    await store.write(lambda tx: tx.replace_segment_tags(FLOW, {9 * S: {"k": "v"}}, later))
    # Tagging, issued now, after that: the flow's time stays.
    tagging = CommandApplier(
        store,
        {"segments.tag.set": SegmentTagging(MediaSettings())},
        is_retryable=lambda exc: isinstance(exc, StoreUnavailable),
    )
    tag = {"flow_id": FLOW, "name": "k", "value": "w", "timerange": "[9:0_10:0)"}
    tagged = await apply(tagging, CommandEnvelope(name="segments.tag.set", key=FLOW, payload=tag))
    assert tagged.status == 204
    flow = await store.read(lambda tx: tx.get_flow(FLOW))
    assert flow is not None and flow["segments_updated"] == later

    deleted = await apply(run, step.command)
    flow = await store.read(lambda tx: tx.get_flow(FLOW))
    assert flow is not None and flow["segments_updated"] == later
    assert [e.event_timestamp for e in deleted.events] == [datetime.fromisoformat(later)]

    # A registration issued before it, applied after it, likewise.
    backends = StorageBackends.from_settings(
        S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
    )
    registrar = Registrar(store, ObjectChecker(BackendClients(backends)))
    register = CommandApplier(
        store, {"segments.add": registrar}, is_retryable=lambda e: isinstance(e, StoreUnavailable)
    )
    segment = {
        "object_id": "external-1",
        "timerange": "[20:0_21:0)",
        "get_urls": [{"url": "https://cdn.example/external-1", "label": "cdn"}],
    }
    payload = {"flow_id": FLOW, "segments": [segment], "single": True}
    added = await apply(register, CommandEnvelope(name="segments.add", key=FLOW, payload=payload))
    assert added.status == 201, added
    flow = await store.read(lambda tx: tx.get_flow(FLOW))
    assert flow is not None and flow["segments_updated"] == later
    assert [e.event_timestamp for e in added.events] == [datetime.fromisoformat(later)]
