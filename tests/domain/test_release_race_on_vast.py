"""Forgetting an object at the end of its release grace, while a segment reuses it, on the
VAST adapter (snapshot isolation, several writers): one of the two must lose and retry.

The forget reads that no segment uses the object and deletes its row; the reuse reads the
row and inserts a segment. Neither reads what the other writes, so if both committed, the
segment would name a forgotten object whose bytes are queued for deletion (write skew). A
reuse of an object waiting out its grace also rewrites the object's row (it clears the
release record), so the two touch one row and the SDK double, like a cluster that detects
concurrent changes of a row, refuses the second commit; the store retries it in a new
transaction, which sees the other's change.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

from tams_runtime import deletion
from tams_runtime.applier import CommandApplier
from tams_runtime.settings import MediaSettings, S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.deletion import SegmentDeletion
from tams_segments.registration import ObjectChecker, Registrar
from tams_store import StoreUnavailable
from tams_store.port import WriteTx
from tams_store.vast.double import FakeVastCluster

from .test_write_skew_on_vast import START, command, opened

FLOW = "00000000-0000-4000-8000-000000000001"
SOURCE = "10000000-0000-4000-8000-000000000001"
MEDIA = MediaSettings(release_grace_s=60)


def segment(start: int, end: int) -> dict[str, Any]:
    return {
        "object_id": "o1",
        "timerange": f"[{start}:0_{end}:0)",
        "ts_offset": f"{start}:0",
        "get_urls": [{"url": "https://cdn.example/o1", "label": "cdn"}],
    }


async def test_a_reuse_and_the_forget_of_its_object_cannot_both_commit() -> None:
    cluster = FakeVastCluster()
    segments_service, worker = await opened(cluster), await opened(cluster)
    backends = StorageBackends.from_settings(
        S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
    )
    registrar = Registrar(segments_service, ObjectChecker(BackendClients(backends)))
    applier = CommandApplier(
        segments_service,
        {"segments.add": registrar, "segments.delete": SegmentDeletion(MEDIA)},
        is_retryable=lambda exc: isinstance(exc, StoreUnavailable),
    )

    def put_flow(tx: WriteTx) -> None:
        stamp = START.isoformat()
        tx.put_source({"id": SOURCE, "format": "urn:x-nmos:format:video", "created": stamp})
        tx.put_flow(
            {
                "id": FLOW,
                "source_id": SOURCE,
                "format": "urn:x-nmos:format:video",
                "container": "video/mp2t",
                "created": stamp,
                "metadata_updated": stamp,
            }
        )

    await segments_service.write(put_flow)
    added = await applier([command(1, "segments.add", FLOW, add(0, 2))])
    assert added[0].status == 201
    deleted = await applier([command(2, "segments.delete", FLOW, {"flow_id": FLOW})])
    assert deleted[0].status == 204  # o1 now waits out its release grace

    # The worker, after the grace: it finds o1 unreferenced, then waits before deleting it
    # until the reuse has committed.
    read_done, go_on = threading.Event(), threading.Event()
    attempts = 0

    class PausedTx:
        def __init__(self, tx: WriteTx) -> None:
            self.tx = tx

        def __getattr__(self, name: str) -> Any:
            return getattr(self.tx, name)

        def remove_objects(self, object_ids: list[str]) -> None:
            if attempts == 1:
                read_done.set()
                assert go_on.wait(10)
            self.tx.remove_objects(object_ids)

    def release(tx: WriteTx) -> list[str]:
        nonlocal attempts
        attempts += 1
        later = START + timedelta(hours=1)
        now_ns = deletion.to_ns(later)
        jobs = tx.claim_media_jobs("release", "worker", now_ns, 60 * 10**9, 100)
        paused: Any = PausedTx(tx)
        forgotten = deletion.forget_objects(paused, [j.object_id for j in jobs], later, MEDIA)
        tx.finish_media_jobs(jobs)
        return forgotten

    forgetting = asyncio.create_task(worker.write(release))
    assert await asyncio.to_thread(read_done.wait, 10)
    reused = await applier([command(3, "segments.add", FLOW, add(2, 4))])
    assert reused[0].status == 201
    go_on.set()
    forgotten = await forgetting

    assert attempts == 2  # the first commit was refused, the retry saw the reuse
    assert forgotten == []
    objects = await worker.read(lambda tx: tx.get_objects(["o1"]))
    assert objects["o1"].registered
    assert deletion.RELEASED_FROM not in objects["o1"].doc
    await segments_service.close()
    await worker.close()


def add(start: int, end: int) -> dict[str, Any]:
    return {"flow_id": FLOW, "single": True, "segments": [segment(start, end)]}
