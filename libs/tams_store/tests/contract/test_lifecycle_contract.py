"""The media part of the store port: segment deletion, object lifecycle, the byte-work queue
and deletion requests. Every adapter must pass these."""

from __future__ import annotations

from typing import Any

from tams_schema.timerange import TimeRange
from tams_store import FlowQuery, Store
from tams_store.port import (
    DeletionRequestRecord,
    MediaJob,
    ObjectAllocation,
    ObjectRecord,
    SegmentRecord,
    TagFilter,
)

from .docs import flow, new_id, stamp
from .test_catalog_contract import put_all

S = 1_000_000_000


def segment(start_s: int, end_s: int, object_id: str) -> SegmentRecord:
    start, end = start_s * S, end_s * S
    return SegmentRecord(
        start, end, object_id, str(TimeRange.from_half_open(start, end)), {}, created_ns=1
    )


def media_object(object_id: str, flow_id: str, **doc: Any) -> ObjectRecord:
    return ObjectRecord(
        object_id=object_id,
        allocated_flow_id=flow_id,
        storage_id="store-a",
        content_type="video/mp2t",
        registered=True,
        first_referenced_by_flow=flow_id,
        doc={"timerange": "[0:0_1:0)", **doc},
    )


async def add(
    store: Store, flow_id: str, segments: list[SegmentRecord], objects: list[Any]
) -> None:
    await store.write(lambda tx: tx.add_segments(flow_id, segments, objects, stamp(1)))


async def test_segments_within_lists_wholly_covered_segments_in_time_order(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    ids = [new_id() for _ in range(5)]
    await add(
        store,
        doc["id"],
        [segment(i * 2, i * 2 + 2, ids[i]) for i in range(5)],
        [media_object(i, doc["id"]) for i in ids],
    )

    async def within(text: str, object_id: str | None = None, limit: int = 100) -> list[str]:
        found = await store.read(
            lambda tx: tx.segments_within(
                doc["id"], TimeRange.parse(text), object_id=object_id, limit=limit
            )
        )
        return [s.timerange for s in found]

    assert await within("_") == [f"[{i * 2}:0_{i * 2 + 2}:0)" for i in range(5)]
    # Only wholly covered segments: [1:0_7:0) covers [2:0_4:0) and [4:0_6:0), not the edges.
    assert await within("[1:0_7:0)") == ["[2:0_4:0)", "[4:0_6:0)"]
    assert await within("[2:0_6:0]") == ["[2:0_4:0)", "[4:0_6:0)"]
    assert await within("_6:0)") == ["[0:0_2:0)", "[2:0_4:0)", "[4:0_6:0)"]
    assert await within("_", limit=2) == ["[0:0_2:0)", "[2:0_4:0)"]
    assert await within("_", object_id=ids[3]) == ["[6:0_8:0)"]
    assert await within("()") == []
    assert await within("_", object_id=new_id()) == []


async def test_delete_segments_shrinks_the_flow_extent(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    ids = [new_id() for _ in range(4)]
    records = [segment(i, i + 1, ids[i]) for i in range(4)]
    await add(store, doc["id"], records, [media_object(i, doc["id"]) for i in ids])

    await store.write(lambda tx: tx.delete_segments(doc["id"], [records[0], records[3]], stamp(9)))
    assert str(await store.read(lambda tx: tx.flow_timerange(doc["id"]))) == "[1:0_3:0)"
    got = await store.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["segments_updated"] == stamp(9)
    in_window = FlowQuery(timerange=TimeRange.parse("[0:0_1:0)"), limit=1000)
    listed = await store.read(lambda tx: tx.list_flows(in_window))
    assert doc["id"] not in {f["id"] for f in listed.items}

    await store.write(lambda tx: tx.delete_segments(doc["id"], records[1:3], stamp(10)))
    assert (await store.read(lambda tx: tx.flow_timerange(doc["id"]))).is_empty
    empty = await store.read(lambda tx: tx.list_flows(FlowQuery(timerange=TimeRange.never())))
    assert doc["id"] in {f["id"] for f in empty.items}


async def test_unreferenced_objects_count_every_flow_and_init_links(store: Store) -> None:
    first, second = flow(), flow()
    await put_all(store, first, second)
    shared, own, init = new_id(), new_id(), new_id()
    init_record = media_object(init, first["id"])
    init_record = ObjectRecord(**{**init_record.__dict__, "doc": {"role": "init"}})
    await add(
        store,
        first["id"],
        [segment(0, 1, shared), segment(1, 2, own)],
        [
            media_object(shared, first["id"]),
            media_object(own, first["id"], init_object_id=init),
            init_record,
        ],
    )
    await add(store, second["id"], [segment(0, 1, shared)], [])
    flows = await store.read(lambda tx: tx.object_flows(init, TagFilter(), None, 10))
    assert flows == ([first["id"]], None)  # an init object is used through its media objects

    await store.write(lambda tx: tx.delete_flow(first["id"]))
    candidates = [shared, own, init]
    assert await store.write(lambda tx: tx.unreferenced_objects(candidates)) == [own]

    def forget(tx: Any) -> None:
        tx.remove_objects([own])
        tx.queue_media_jobs([MediaJob("delete", own, "store-a", 5)])

    await store.write(forget)
    assert await store.write(lambda tx: tx.unreferenced_objects(candidates)) == [init]
    assert await store.read(lambda tx: tx.get_objects([own])) == {}
    # Bytes still queued for deletion keep the id in use.
    assert await store.write(lambda tx: tx.existing_object_ids([own, new_id()])) == {own}


async def test_update_objects_replaces_instances(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    object_id = new_id()
    await add(store, doc["id"], [segment(0, 1, object_id)], [media_object(object_id, doc["id"])])
    (obj,) = (await store.read(lambda tx: tx.get_objects([object_id]))).values()
    assert obj.controlled_storage_ids == ["store-a"]
    changed = ObjectRecord(
        **{**obj.__dict__, "doc": {**obj.doc, "controlled_storage_ids": ["store-b"]}}
    )
    await store.write(lambda tx: tx.update_objects([changed]))
    (again,) = (await store.read(lambda tx: tx.get_objects([object_id]))).values()
    assert again.controlled_storage_ids == ["store-b"]
    assert again.doc["timerange"] == "[0:0_1:0)"


async def test_expired_allocations_are_the_old_unregistered_ones(store: Store) -> None:
    doc = flow()
    await put_all(store, doc)
    old, young, used = new_id(), new_id(), new_id()
    await store.write(
        lambda tx: tx.allocate_objects(
            [
                ObjectAllocation(old, doc["id"], "store-a", "video/mp2t", 100),
                ObjectAllocation(young, doc["id"], "store-a", "video/mp2t", 900),
                ObjectAllocation(used, doc["id"], "store-a", "video/mp2t", 50),
            ]
        )
    )
    await add(store, doc["id"], [segment(0, 1, used)], [media_object(used, doc["id"])])
    expired = await store.write(lambda tx: tx.expired_allocations(500, 10))
    assert [o.object_id for o in expired] == [old]
    assert expired[0].storage_id == "store-a" and not expired[0].registered
    # An object remembers when it was allocated (its put_url handed out), registered or not.
    objects = await store.read(lambda tx: tx.get_objects([young, used]))
    assert objects[young].allocated_ns == 900 and objects[used].allocated_ns == 50


async def test_media_jobs_are_leased(store: Store) -> None:
    object_id = new_id()
    jobs = [MediaJob("delete", object_id, "a", 1), MediaJob("delete", object_id, "b", 2)]
    await store.write(lambda tx: tx.queue_media_jobs([*jobs, jobs[0]]))  # a repeat is ignored
    assert len(await store.read(lambda tx: tx.media_jobs_of([object_id]))) == 2

    claimed = await store.write(lambda tx: tx.claim_media_jobs("delete", "w1", 1000, 50, 10))
    mine = [j for j in claimed if j.object_id == object_id]
    assert {j.storage_id for j in mine} == {"a", "b"}
    assert all(j.lease_owner == "w1" and j.lease_until_ns == 1050 and j.attempts == 1 for j in mine)
    # Held: nobody else gets them until the lease runs out; then the attempt is counted.
    again = await store.write(lambda tx: tx.claim_media_jobs("delete", "w2", 1049, 50, 10))
    assert object_id not in {j.object_id for j in again}
    retried = await store.write(lambda tx: tx.claim_media_jobs("delete", "w2", 1050, 50, 10))
    assert {j.attempts for j in retried if j.object_id == object_id} == {2}
    assert await store.write(lambda tx: tx.claim_media_jobs("copy", "w2", 10**12, 50, 10)) == []

    await store.write(lambda tx: tx.finish_media_jobs(mine[:1]))
    left = await store.read(lambda tx: tx.media_jobs_of([object_id]))
    assert [j.storage_id for j in left] == [mine[1].storage_id]


async def test_a_held_job_is_renewed_only_by_its_holder(store: Store) -> None:
    """A long copy extends its lease, so nobody else claims it meanwhile; a worker whose
    lease ran out and was taken over renews nothing."""
    object_id = new_id()
    await store.write(lambda tx: tx.queue_media_jobs([MediaJob("copy", object_id, "a", 1)]))
    [held] = await store.write(lambda tx: tx.claim_media_jobs("copy", "w1", 1000, 50, 10))
    assert held.lease_until_ns == 1050
    assert await store.write(lambda tx: tx.renew_media_jobs([held], "w2", 9000)) == 0
    assert await store.write(lambda tx: tx.renew_media_jobs([held], "w1", 2000)) == 1
    assert await store.write(lambda tx: tx.claim_media_jobs("copy", "w2", 1999, 50, 10)) == []
    [taken] = await store.write(lambda tx: tx.claim_media_jobs("copy", "w2", 2000, 50, 10))
    assert (taken.lease_owner, taken.attempts) == ("w2", 2)
    assert await store.write(lambda tx: tx.renew_media_jobs([held], "w1", 9000)) == 0
    [job] = await store.read(lambda tx: tx.media_jobs_of([object_id]))
    assert (job.lease_owner, job.lease_until_ns) == ("w2", 2050)


async def test_a_job_queued_for_later_is_claimed_only_then(store: Store) -> None:
    object_id = new_id()
    sweep = MediaJob("sweep", object_id, "a", 1, lease_until_ns=5000)
    await store.write(lambda tx: tx.queue_media_jobs([sweep]))
    early = await store.write(lambda tx: tx.claim_media_jobs("sweep", "w1", 4999, 50, 10))
    assert object_id not in {j.object_id for j in early}
    due = await store.write(lambda tx: tx.claim_media_jobs("sweep", "w1", 5000, 50, 10))
    assert [(j.object_id, j.lease_until_ns) for j in due if j.object_id == object_id] == [
        (object_id, 5050)
    ]


async def test_a_release_is_due_at_the_end_of_its_grace_and_a_new_one_replaces_it(
    store: Store,
) -> None:
    """`release` jobs (no backend: storage_id ""), as `deletion.release_objects` queues them:
    a later release of the same object finishes the earlier job and queues its own."""
    object_id = new_id()
    first = MediaJob("release", object_id, "", 1, lease_until_ns=5000)
    await store.write(lambda tx: tx.queue_media_jobs([first]))
    later = MediaJob("release", object_id, "", 2, lease_until_ns=8000)

    def release_again(tx: Any) -> None:
        tx.finish_media_jobs([later])
        tx.queue_media_jobs([later])

    await store.write(release_again)
    early = await store.write(lambda tx: tx.claim_media_jobs("release", "w1", 5000, 50, 10))
    assert object_id not in {j.object_id for j in early}
    due = await store.write(lambda tx: tx.claim_media_jobs("release", "w1", 8000, 50, 10))
    assert [(j.object_id, j.storage_id, j.created_ns) for j in due] == [(object_id, "", 2)]
    await store.write(lambda tx: tx.finish_media_jobs(due))
    assert await store.read(lambda tx: tx.media_jobs_of([object_id])) == []


def request_doc(created_s: int, expiry_s: int, status: str = "created", **extra: Any) -> Any:
    doc = {
        "id": new_id(),
        "flow_id": new_id(),
        "timerange_to_delete": "_",
        "timerange_remaining": "_",
        "delete_flow": False,
        "status": status,
        "created": stamp(created_s),
        "updated": stamp(created_s),
        "expiry": stamp(expiry_s),
    }
    doc.update(extra)
    return doc


async def test_deletion_requests_round_trip_list_resume_and_purge(store: Store) -> None:
    docs = [request_doc(i, 100 - i) for i in range(5)]
    for doc in docs:
        record = DeletionRequestRecord(doc=doc, object_id="o" if doc is docs[0] else None)
        await store.write(lambda tx, r=record: tx.put_deletion_request(r))
    got = await store.read(lambda tx: tx.get_deletion_request(docs[0]["id"]))
    assert got == DeletionRequestRecord(doc=docs[0], object_id="o", step=0, resumes=0)
    assert await store.read(lambda tx: tx.get_deletion_request(new_id())) is None

    async def listed(sort_by: Any, reverse: bool) -> list[str]:
        ids: list[str] = []
        page = None
        while True:
            result = await store.read(
                lambda tx, p=page: tx.list_deletion_requests(
                    sort_by=sort_by, reverse_order=reverse, page=p, limit=2
                )
            )
            ids += [d["id"] for d in result.items]
            if result.next_key is None:
                return ids
            page = result.next_key

    newest_created = [d["id"] for d in reversed(docs)]
    assert await listed("created", False) == newest_created
    assert await listed("created", True) == newest_created[::-1]
    assert await listed("expiry", False) == newest_created[::-1]  # latest expiry first

    advanced = DeletionRequestRecord(
        doc={**docs[1], "status": "started", "updated": stamp(50)}, step=3, resumes=1
    )
    await store.write(lambda tx: tx.put_deletion_request(advanced))
    assert await store.read(lambda tx: tx.get_deletion_request(docs[1]["id"])) == advanced
    stalled = await store.write(lambda tx: tx.unfinished_deletion_requests(_ns(10), 100))
    assert {r.id for r in stalled} == {d["id"] for d in docs} - {docs[1]["id"]}

    done = DeletionRequestRecord(doc={**docs[2], "status": "done", "expiry": stamp(60)})
    await store.write(lambda tx: tx.put_deletion_request(done))
    assert await store.write(lambda tx: tx.purge_deletion_requests(_ns(59))) == 0
    assert await store.write(lambda tx: tx.purge_deletion_requests(_ns(61))) == 1
    assert await store.read(lambda tx: tx.get_deletion_request(docs[2]["id"])) is None
    # Unfinished requests are never purged, whatever their expiry.
    assert await store.write(lambda tx: tx.purge_deletion_requests(_ns(10_000))) == 0


def _ns(seconds: int) -> int:
    from .docs import BASE

    return int(BASE.timestamp() + seconds) * S
