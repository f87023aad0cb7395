"""Releasing objects: a release grace first, during which a segment may use the object again;
then forgetting them queues their byte deletions, and a sweep only where a put_url may still
upload. A segment may pass its object's timerange by at most one sample. Against a fresh
SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tams_runtime.deletion import forget_objects, release_objects, to_ns
from tams_runtime.settings import MediaSettings
from tams_segments.registration import sample_ns
from tams_segments.worker import ObjectCollector
from tams_store import WriteTx
from tams_store.port import ObjectAllocation, ObjectRecord, SegmentRecord
from tams_store.sqlite import SqliteStore

from .helpers import flow_and_source

NS = 1_000_000_000
FLOW = "6b3e1a0c-7d2b-4c1e-9f00-000000000001"
SOURCE = "6b3e1a0c-7d2b-4c1e-9f00-000000000002"
STAMP = "2026-11-26T12:00:00.000000Z"
MEDIA = MediaSettings(min_object_timeout_s=600, object_gc_grace_s=60)


async def test_only_objects_allocated_lately_get_a_sweep(store: SqliteStore) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    now_ns = to_ns(now)
    young_ns = now_ns - 60 * NS
    allocated = {"old": now_ns - 10_000 * NS, "young": young_ns}

    segments = [
        SegmentRecord(i * NS, (i + 1) * NS, object_id, f"[{i}:0_{i + 1}:0)", {}, 1)
        for i, object_id in enumerate(allocated)
    ]

    def setup(tx: WriteTx) -> None:
        flow_and_source(tx, FLOW, SOURCE, STAMP)
        tx.allocate_objects(
            [ObjectAllocation(i, FLOW, "store-a", "video/mp2t", t) for i, t in allocated.items()]
        )
        registered = [
            ObjectRecord(i, FLOW, "store-a", "video/mp2t", True, FLOW, {"timerange": "_"})
            for i in allocated
        ]
        tx.add_segments(FLOW, segments, registered, STAMP)
        tx.delete_segments(FLOW, segments, STAMP)

    await store.write(setup)
    await store.write(lambda tx: forget_objects(tx, list(allocated), now, MEDIA))
    jobs = await store.read(lambda tx: tx.media_jobs_of(list(allocated)))
    assert sorted((j.object_id, j.kind, j.lease_until_ns) for j in jobs) == [
        ("old", "delete", 0),
        ("young", "delete", 0),
        ("young", "sweep", young_ns + MEDIA.upload_window_s * NS),
    ]


async def test_an_object_is_forgotten_when_its_release_grace_ends_unless_used_again(
    store: SqliteStore,
) -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    grace = timedelta(seconds=MEDIA.release_grace_s)
    ids = ["kept", "reused", "released twice"]
    segments = {
        object_id: SegmentRecord(i * NS, (i + 1) * NS, object_id, f"[{i}:0_{i + 1}:0)", {}, 1)
        for i, object_id in enumerate(ids)
    }

    def setup(tx: WriteTx) -> None:
        flow_and_source(tx, FLOW, SOURCE, STAMP)
        registered = [
            ObjectRecord(i, FLOW, "store-a", "video/mp2t", True, FLOW, {"timerange": "_"})
            for i in ids
        ]
        tx.add_segments(FLOW, list(segments.values()), registered, STAMP)
        tx.delete_segments(FLOW, list(segments.values()), STAMP)
        release_objects(tx, ids, now, MEDIA)

    await store.write(setup)
    jobs = await store.read(lambda tx: tx.media_jobs_of(ids))
    assert {(j.object_id, j.kind, j.lease_until_ns) for j in jobs} == {
        (i, "release", to_ns(now + grace)) for i in ids
    }
    assert set(await store.read(lambda tx: tx.get_objects(ids))) == set(ids)  # still there

    def later(tx: WriteTx) -> None:
        # One is used again; another is used again and released again, half a grace later.
        tx.add_segments(FLOW, [segments["reused"], segments["released twice"]], [], STAMP)
        tx.delete_segments(FLOW, [segments["released twice"]], STAMP)
        release_objects(tx, ["released twice"], now + grace / 2, MEDIA)

    await store.write(later)
    unused: Any = None  # the release step touches neither S3 nor its clients
    collector = ObjectCollector(store, unused, unused, MEDIA, "worker-1")
    assert await collector.release_due(to_ns(now + grace) - 1) == []
    assert await collector.release_due(to_ns(now + grace)) == ["kept"]
    assert await collector.release_due(to_ns(now + grace * 3 // 2)) == ["released twice"]
    remaining = await store.read(lambda tx: tx.get_objects(ids))
    assert set(remaining) == {"reused"}
    jobs = await store.read(lambda tx: tx.media_jobs_of(ids))
    assert sorted((j.object_id, j.kind) for j in jobs) == [
        ("kept", "delete"),
        ("released twice", "delete"),
    ]


def test_one_sample_is_a_frame_an_audio_sample_or_a_nanosecond() -> None:
    def video(numerator: int, denominator: int = 1) -> dict[str, object]:
        rate = {"numerator": numerator, "denominator": denominator}
        return {"essence_parameters": {"frame_rate": rate}}

    assert sample_ns(video(25)) == 40_000_000
    assert sample_ns(video(30000, 1001)) == 33_366_667  # rounded up
    assert sample_ns({"essence_parameters": {"sample_rate": 48000}}) == 20_834
    assert sample_ns({"essence_parameters": {"data_type": "x"}}) == 1
    assert sample_ns({}) == 1
