"""Several storage backends, one of them on an S3 server of its own (other endpoint, other
credentials: copies to it are streamed): a backend that stops answering must not hold up the
work of the others."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from tams_runtime.s3 import object_key, s3_client
from tams_runtime.settings import S3Settings
from tams_stack.objectstore import ObjectStore, start_object_store
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND
from tams_store.port import MediaJob

from .helpers import (
    allocate_and_upload,
    bytes_in,
    eventually,
    get_json,
    post,
    put_flow,
    send_json,
    stack_store,
    stored_bytes,
    video_flow,
)
from .standalone import standalone
from .test_observability import scrape, total

REMOTE_BACKEND = {
    "id": "9b2e1c3d-4f5a-4b6c-8d7e-0f1a2b3c4d5e",
    "label": "remote",
    "bucket": "tams-remote",
    "access_key": "remote-key",
    "secret_key": "remote-secret-key",
}


@contextlib.contextmanager
def remote_object_store() -> Iterator[ObjectStore]:
    """A second SeaweedFS, with credentials of its own."""
    data_dir = Path(tempfile.mkdtemp(prefix="tams-remote-s3-"))
    store = start_object_store(
        data_dir,
        [REMOTE_BACKEND["bucket"]],
        access_key=REMOTE_BACKEND["access_key"],
        secret_key=REMOTE_BACKEND["secret_key"],
    )
    try:
        yield store
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(store.process.pid, signal.SIGCONT)
        store.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def frozen(store: ObjectStore) -> Iterator[None]:
    """The S3 server takes connections and never answers (SIGSTOP), as a hung remote site."""
    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(store.process.pid, signal.SIGCONT)


async def in_default_bucket(stack: Stack, object_id: str) -> bool:
    return await stored_bytes(stack, object_id) is not None


def remote_settings(remote: ObjectStore) -> S3Settings:
    return S3Settings(
        endpoint_url=remote.endpoint,
        bucket=REMOTE_BACKEND["bucket"],
        access_key=REMOTE_BACKEND["access_key"],
        secret_key=REMOTE_BACKEND["secret_key"],
    )


async def in_remote_bucket(remote: ObjectStore, object_id: str) -> bool:
    return await bytes_in(remote_settings(remote), object_id) is not None


def with_remote(remote: ObjectStore, **settings: str) -> dict[str, str]:
    """The services' environment: backend `archive` (another bucket of the local server), the
    remote server as backend `remote`, and `settings`."""
    extra = [ARCHIVE_BACKEND, {**REMOTE_BACKEND, "endpoint_url": remote.endpoint}]
    return {"TAMS_S3_EXTRA_BACKENDS": json.dumps(extra), **settings}


async def two_segments(
    http: aiohttp.ClientSession, first: bytes, second: bytes
) -> tuple[str, str, str]:
    """A new flow with a segment of each object, [0:0_1:0) and [1:0_2:0); its id and the
    objects'."""
    flow = video_flow()
    await put_flow(http, flow)
    object_ids = await allocate_and_upload(http, flow["id"], [first, second])
    for start, object_id in enumerate(object_ids):
        segment = {"object_id": object_id, "timerange": f"[{start}:0_{start + 1}:0)"}
        status, body = await post(http, flow["id"], segment)
        assert status == 201, body
    return flow["id"], object_ids[0], object_ids[1]


async def post_copy(http: aiohttp.ClientSession, object_id: str, backend: dict[str, str]) -> None:
    """Ask for a controlled copy of the object on `backend` (it runs in the background)."""
    body = {"storage_id": backend["id"]}
    status, answer, _ = await send_json(http, "POST", f"/objects/{object_id}/instances", body)
    assert status == 201, answer


async def claimed_copy(stack: Stack, object_id: str) -> MediaJob:
    """The object's copy job once a worker has claimed it (its copy has started)."""
    async with stack_store(stack) as store:

        async def claimed() -> MediaJob | None:
            jobs = await store.read(lambda tx: tx.media_jobs_of([object_id]))
            return next((j for j in jobs if j.kind == "copy" and j.lease_owner), None)

        job = await eventually(claimed, "the copy started")
        assert job is not None
        return job


async def test_a_hung_backend_does_not_hold_up_deletions_on_the_others(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    with remote_object_store() as remote:
        env = with_remote(remote)
        async with (
            standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            labels = {b["label"] for b in await get_json(http, "/service/storage-backends")}
            assert labels == {"local-s3", "archive", "remote"}
            flow_id, copied, dropped = await two_segments(http, b"copied" * 1000, b"dropped" * 1000)

            with frozen(remote):
                await post_copy(http, copied, REMOTE_BACKEND)
                await claimed_copy(stack, copied)

                # The other object's last segment goes: once the release grace (2 s) is over
                # its bytes leave the default backend, whatever the remote site does.
                status, _, _ = await send_json(
                    http, "DELETE", f"/flows/{flow_id}/segments?timerange=[1:0_2:0)"
                )
                assert status == 204

                async def bytes_gone() -> bool:
                    return not await in_default_bucket(stack, dropped)

                await eventually(bytes_gone, "the deleted object's bytes gone", timeout=20)


async def test_byte_deletions_on_a_hung_backend_hold_up_the_others_only_briefly(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """An object with a copy on a backend that has stopped answering goes: its deletion
    there waits (and is retried once the backend answers), and another object deleted
    meanwhile leaves the default backend all the same."""
    with remote_object_store() as remote:
        env = with_remote(remote, TAMS_MEDIA_DELETE_TIMEOUT_S="2", TAMS_MEDIA_JOB_LEASE_S="4")
        async with (
            standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            flow_id, shared, local_only = await two_segments(
                http, b"shared" * 1000, b"local" * 1000
            )
            await post_copy(http, shared, REMOTE_BACKEND)

            async def copied() -> bool:
                return await in_remote_bucket(remote, shared)

            await eventually(copied, "the copy on the remote backend")

            with frozen(remote):
                status, _, _ = await send_json(
                    http, "DELETE", f"/flows/{flow_id}/segments?timerange=[0:0_1:0)"
                )
                assert status == 204
                async with stack_store(stack) as store:

                    async def remote_deletion_claimed() -> bool:
                        jobs = await store.read(lambda tx: tx.media_jobs_of([shared]))
                        return any(
                            j.kind == "delete"
                            and j.storage_id == REMOTE_BACKEND["id"]
                            and j.lease_owner
                            for j in jobs
                        )

                    await eventually(remote_deletion_claimed, "the deletion on the hung backend")

                status, _, _ = await send_json(
                    http, "DELETE", f"/flows/{flow_id}/segments?timerange=[1:0_2:0)"
                )
                assert status == 204

                async def local_bytes_gone() -> bool:
                    return not any(
                        [
                            await in_default_bucket(stack, local_only),
                            await in_default_bucket(stack, shared),
                        ]
                    )

                await eventually(local_bytes_gone, "the default backend's bytes gone", timeout=15)
                segments_url = stack.services["segments"].url

                async def failures_counted() -> bool:
                    samples = (await scrape(segments_url))[1]
                    return (
                        total(samples, "tams_media_jobs_total", kind="delete", outcome="failed") > 0
                    )

                # What TamsMediaJobsFailing watches.
                await eventually(failures_counted, "the failed deletions counted")

            # Answering again, the backend gets its deletion when the lease has run out.
            async def remote_bytes_gone() -> bool:
                return not await in_remote_bucket(remote, shared)

            await eventually(remote_bytes_gone, "the remote copy's bytes gone", timeout=30)
            done = total((await scrape(segments_url))[1], "tams_media_jobs_total", outcome="done")
            assert done >= 3  # the two local deletions and the remote one


async def test_a_copy_longer_than_its_lease_keeps_it(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A copy to a backend that does not answer runs past its 2-second lease: the lease is
    renewed while it runs, so another instance would not claim it, run it twice and count
    a failed attempt."""
    with remote_object_store() as remote:
        env = with_remote(remote, TAMS_MEDIA_JOB_LEASE_S="2")
        async with (
            standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
            stack_store(stack) as store,
        ):
            _, copied, _ = await two_segments(http, b"copied" * 1000, b"other" * 1000)
            with frozen(remote):
                await post_copy(http, copied, REMOTE_BACKEND)
                claimed = await claimed_copy(stack, copied)

                async def renewed_twice() -> MediaJob | None:
                    jobs = await store.read(lambda tx: tx.media_jobs_of([copied]))
                    job = next((j for j in jobs if j.kind == "copy"), None)
                    lease_ns = 2 * 10**9
                    if job is not None and job.lease_until_ns >= claimed.lease_until_ns + lease_ns:
                        return job
                    return None

                job = await eventually(renewed_twice, "the lease renewed while the copy runs")
                assert job is not None
                assert (job.lease_owner, job.attempts) == (claimed.lease_owner, 1)


async def test_a_copy_to_a_hung_backend_does_not_hold_up_copies_to_others(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """Replication to two sites, one of them down: copies to the other go on."""
    with remote_object_store() as remote:
        async with (
            standalone(
                tams_stack, ("catalog", "segments", "gateway"), with_remote(remote)
            ) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            _, stuck, other = await two_segments(http, b"stuck" * 1000, b"other" * 1000)

            with frozen(remote):
                await post_copy(http, stuck, REMOTE_BACKEND)
                await claimed_copy(stack, stuck)
                await post_copy(http, other, ARCHIVE_BACKEND)

                async def archived() -> bool:
                    obj = await get_json(http, f"/objects/{other}?verbose_storage=true")
                    ids = {i.get("storage_id") for i in obj["get_urls"]}
                    return ARCHIVE_BACKEND["id"] in ids

                await eventually(archived, "the copy to the archive backend done")


async def test_a_copy_tried_again_aborts_the_upload_a_killed_attempt_left_open(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A copy whose process was killed in its multipart upload leaves the upload open on the
    target, its parts taking space there, unlisted, for ever. The next attempt (once the
    killed one's lease ended) aborts it first, then copies."""
    with remote_object_store() as remote:
        env = with_remote(remote, TAMS_MEDIA_JOB_LEASE_S="3")
        async with (
            standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            _, copied, _ = await two_segments(http, b"copied" * 1000, b"other" * 1000)
            # What a killed attempt leaves: an upload of the object's key, with a part. (Made
            # here: killing the service inside the upload's few milliseconds is a race.)
            settings = remote_settings(remote)
            key = object_key(copied)
            async with s3_client(settings) as s3:
                started = await s3.create_multipart_upload(Bucket=settings.bucket, Key=key)
                await s3.upload_part(
                    Bucket=settings.bucket,
                    Key=key,
                    UploadId=started["UploadId"],
                    PartNumber=1,
                    Body=b"left over" * 100,
                )
            with frozen(remote):
                await post_copy(http, copied, REMOTE_BACKEND)
                await claimed_copy(stack, copied)
                os.kill(stack.services["segments"].process.pid, signal.SIGKILL)
            await stack.restart_service("segments")

            async def copied_again() -> bool:
                return await in_remote_bucket(remote, copied)

            await eventually(copied_again, "the copy done by the next attempt", timeout=30)
            assert await bytes_in(settings, copied) == b"copied" * 1000
            async with s3_client(settings) as s3:
                listed = await s3.list_multipart_uploads(Bucket=settings.bucket)
            assert listed.get("Uploads", []) == []
