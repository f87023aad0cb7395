"""`tams backup` of a running stack, and a new stack started on the backup.

The backup is taken while a client keeps registering segments. Started on the backup, with
the original gone, a stack lists every segment acknowledged before the backup began, serves
the bytes of every segment it lists, and takes new writes.

Other tests change the stack between the steps of the backup's rounds (`backup(on_step=)`):
bytes a snapshot references are deleted before they are copied, or an object id is
allocated again with new bytes, or an object without an allocation is registered again
with new bytes. The stack started on the backup then lists what the last snapshot had, with
its bytes.

A few watch the backup's own client of the stack's S3 server (`WatchedS3`): which tasks
read, or a body cut short after the bytes it was reading were deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ResponseStreamingError

from tams_runtime.s3 import object_key, s3_client
from tams_runtime.settings import S3Settings
from tams_stack import backup as backup_module
from tams_stack.backup import COPIES_AT_ONCE, MANIFEST_FILE, BackupFailed, Step, StepHook, backup
from tams_stack.stack import SERVICES as ALL_SERVICES
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND

from .helpers import (
    allocate_and_upload,
    eventually,
    get_json,
    list_all,
    new_id,
    post,
    put_flow,
    s3_settings,
    send_json,
    stack_collector,
    stack_media_settings,
    stored_bytes,
    video_flow,
)

BACKUP_DEADLINE_S = 120.0
NS = 1_000_000_000
SERVICES = ("catalog", "segments", "gateway")
# Objects are forgotten, and their bytes deleted, as soon as their last segment goes.
PROMPT_RELEASE = {"TAMS_MEDIA_RELEASE_GRACE_S": "0", "TAMS_MEDIA_WORKER_INTERVAL_S": "0.2"}


async def run_tams_backup(data_dir: Path, dest: Path, *, succeeds: bool = True) -> str:
    """`tams backup` as a user runs it; returns its output, or fails with it."""
    tams = Path(sys.executable).parent / "tams"
    process = await asyncio.create_subprocess_exec(
        str(tams), "backup", "--data-dir", str(data_dir), "--to", str(dest),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(BACKUP_DEADLINE_S):
        output, _ = await process.communicate()
    assert (process.returncode == 0) == succeeds, output.decode()
    return output.decode()


class Client:
    """Registers one-second segments of random bytes, remembering each object's checksum."""

    def __init__(self, http: aiohttp.ClientSession, flow_id: str) -> None:
        self.http = http
        self.flow_id = flow_id
        self.next_second = 0
        self.checksums: dict[str, str] = {}  # object id → sha256 of its bytes
        self.acknowledged: list[str] = []  # object ids, in order

    @classmethod
    async def on_new_flow(
        cls, http: aiohttp.ClientSession, flow: dict[str, Any], segments: int
    ) -> Client:
        """A client of `flow`, created, with its first `segments` registered."""
        await put_flow(http, flow)
        client = cls(http, flow["id"])
        for _ in range(segments):
            await client.register()
        return client

    async def register(self) -> str:
        payload = os.urandom(64 * 1024)
        [object_id] = await allocate_and_upload(self.http, self.flow_id, [payload])
        self.checksums[object_id] = hashlib.sha256(payload).hexdigest()
        second = self.next_second
        self.next_second += 1
        segment = {"object_id": object_id, "timerange": f"[{second}:0_{second + 1}:0)"}
        status, body = await post(self.http, self.flow_id, segment)
        assert status == 201, body
        self.acknowledged.append(object_id)
        return object_id


async def readable_segments(http: aiohttp.ClientSession, flow_id: str) -> dict[str, str]:
    """Object id → sha256 of the bytes its get_url serves, for every listed segment."""
    found: dict[str, str] = {}
    async with aiohttp.ClientSession() as anonymous:
        for segment in await list_all(http, f"/flows/{flow_id}/segments"):
            [url] = segment["get_urls"]
            async with anonymous.get(url["url"]) as resp:
                assert resp.status == 200, f"{segment['object_id']}: {resp.status}"
                found[segment["object_id"]] = hashlib.sha256(await resp.read()).hexdigest()
    return found


async def test_a_backup_taken_during_writes_restores_every_acknowledged_segment(
    tmp_path: Path,
) -> None:
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()

    async with live_stack(live_dir, ALL_SERVICES) as stack, api(stack) as http:
        client = await Client.on_new_flow(http, flow, 20)
        before = list(client.acknowledged)

        backing_up = asyncio.create_task(run_tams_backup(live_dir, backup_dir))
        while not backing_up.done():
            await client.register()
        output = backing_up.result()
        written_during = len(client.acknowledged) - len(before)
    assert "backed up" in output
    assert written_during > 0, "no write was made while the backup ran"
    # The backup stands alone.
    shutil.rmtree(live_dir)

    restored = Stack(backup_dir, remember_ports=True)
    try:
        restored.start_infrastructure()
        await restored.start_services()
        async with aiohttp.ClientSession(
            restored.gateway_url, headers=restored.client_headers()
        ) as http:
            found = await readable_segments(http, flow["id"])
            assert set(before) <= set(found)
            # Every segment listed, written before or during the backup, has its bytes.
            assert {oid: client.checksums[oid] for oid in found} == found
            # Writes go on from where the backup left off.
            client.http = http
            client.next_second = len(client.acknowledged) + 1
            new = await client.register()
            assert (await readable_segments(http, flow["id"]))[new] == client.checksums[new]
    finally:
        restored.stop()


async def test_a_store_that_references_missing_bytes_is_not_backed_up(tmp_path: Path) -> None:
    """Bytes a snapshot references go only after the store forgets their object, so a later
    snapshot no longer references them. Bytes gone while the store still references them
    are a fault of the stack: the backup says so instead of leaving a segment without
    bytes."""
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    async with live_stack(live_dir) as stack:
        async with aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http:
            [lost] = (await Client.on_new_flow(http, flow, 1)).acknowledged
        settings = s3_settings(stack)
        async with s3_client(settings) as s3:
            await s3.delete_object(Bucket=settings.bucket, Key=object_key(lost))
        output = await run_tams_backup(live_dir, backup_dir, succeeds=False)
    assert "referenced objects were deleted" in output


@asynccontextmanager
async def live_stack(
    data_dir: Path, services: tuple[str, ...] = SERVICES, env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """The stack to back up, stopped afterwards; it keeps its ports in its data directory,
    as `tams up` does, so a stack started on the backup takes them."""
    stack = Stack(data_dir, remember_ports=True, extra_env=env or {})
    try:
        stack.start_infrastructure()
        await stack.start_services(services)
        yield stack
    finally:
        stack.stop()


@asynccontextmanager
async def api(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http:
        yield http


async def segments_and_bytes(
    http: aiohttp.ClientSession, flow_id: str, accept: str | None = None
) -> dict[str, tuple[str, str]]:
    """Timerange → (object id, sha256 of the bytes its get_url serves) of every segment
    (its get_url on the backend labelled `accept`, if given)."""
    found: dict[str, tuple[str, str]] = {}
    query = f"?accept_get_urls={accept}" if accept else ""
    async with aiohttp.ClientSession() as anonymous:
        for segment in await list_all(http, f"/flows/{flow_id}/segments{query}"):
            [url] = segment["get_urls"]
            async with anonymous.get(url["url"]) as resp:
                assert resp.status == 200, f"{segment['object_id']}: {resp.status}"
                checksum = hashlib.sha256(await resp.read()).hexdigest()
            found[segment["timerange"]] = (segment["object_id"], checksum)
    return found


async def backed_up(live_dir: Path, backup_dir: Path, on_step: StepHook) -> dict[str, Any]:
    """The backup, run with `on_step`; returns its manifest."""
    async with asyncio.timeout(BACKUP_DEADLINE_S):
        await asyncio.to_thread(backup, live_dir, backup_dir, on_step=on_step)
    manifest: dict[str, Any] = json.loads((backup_dir / MANIFEST_FILE).read_text())
    return manifest


async def restored(
    live_dir: Path, backup_dir: Path, flow_id: str, accept: str | None = None
) -> dict[str, tuple[str, str]]:
    """What a stack started on the backup, with the original gone, lists of the flow."""
    shutil.rmtree(live_dir)
    stack = Stack(backup_dir, remember_ports=True)
    try:
        stack.start_infrastructure()
        await stack.start_services(SERVICES)
        async with api(stack) as http:
            return await segments_and_bytes(http, flow_id, accept)
    finally:
        stack.stop()


async def forget(
    stack: Stack, http: aiohttp.ClientSession, flow_id: str, tr: str, object_id: str
) -> None:
    """Delete the segment at `tr`, the only one of its object; returns once the object is
    forgotten and its bytes are gone."""
    async with http.delete(f"/flows/{flow_id}/segments", params={"timerange": tr}) as resp:
        assert resp.status == 204, await resp.text()

    async def gone() -> bool:
        async with http.get(f"/objects/{object_id}") as resp:
            if resp.status != 404:
                return False
        return await stored_bytes(stack, object_id) is None

    await eventually(gone, f"{object_id} forgotten and its bytes deleted")


async def allocate_again(
    stack: Stack, http: aiohttp.ClientSession, flow_id: str, object_id: str, payload: bytes, tr: str
) -> None:
    """Allocate a forgotten object id again (as a client choosing its ids may), upload
    `payload` to it and register it at `tr`."""
    media = await stack_media_settings(http)
    async with stack_collector(stack, media) as collector:
        # The id is free once no put_url handed out for it can upload: the collector runs
        # with its clock past that, instead of the test waiting 20 minutes.
        await collector.delete_bytes(time.time_ns() + (media.upload_window_s + 1) * NS)

    put_urls: list[dict[str, str]] = []

    async def allocated() -> bool:
        async with http.post(f"/flows/{flow_id}/storage", json={"object_ids": [object_id]}) as r:
            if r.status != 201:
                return False
            put_urls.append((await r.json())["media_objects"][0]["put_url"])
            return True

    await eventually(allocated, f"{object_id} free to allocate again")
    headers = {"Content-Type": put_urls[0]["content-type"]}
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.put(put_urls[0]["url"], data=payload, headers=headers) as resp,
    ):
        assert resp.status == 200
    status, body = await post(http, flow_id, {"object_id": object_id, "timerange": tr})
    assert status == 201, body


async def test_bytes_deleted_before_their_copy_are_left_out_by_a_second_snapshot(
    tmp_path: Path,
) -> None:
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    async with live_stack(live_dir, env=PROMPT_RELEASE) as stack:
        async with api(stack) as http:
            client = await Client.on_new_flow(http, flow, 5)
        doomed = client.acknowledged[2]

        async def on_step(step: Step, round_: int) -> None:
            if (step, round_) == ("snapshot", 1):
                async with api(stack) as http:
                    await forget(stack, http, flow["id"], "[2:0_3:0)", doomed)

        manifest = await backed_up(live_dir, backup_dir, on_step)
        # Nothing changed after the last snapshot: the stack lists what that snapshot has.
        async with api(stack) as http:
            last = await segments_and_bytes(http, flow["id"])
    assert manifest["snapshots"] == 2
    assert sorted(oid for oid, _ in last.values()) == sorted(set(client.acknowledged) - {doomed})
    # The last snapshot: every segment but the one deleted, each with its bytes.
    assert await restored(live_dir, backup_dir, flow["id"]) == last
    assert {oid: checksum for oid, checksum in last.values()} == {
        oid: client.checksums[oid] for oid, _ in last.values()
    }


@pytest.mark.parametrize(
    "when",
    [("snapshot", 1), ("copy", 1)],
    ids=["between-a-snapshot-and-its-copy", "between-a-copy-and-the-next-snapshot"],
)
async def test_an_object_id_allocated_again_during_the_backup_is_backed_up_with_its_new_bytes(
    tmp_path: Path, when: tuple[Step, int]
) -> None:
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    new_bytes = os.urandom(64 * 1024)
    async with live_stack(live_dir, env=PROMPT_RELEASE) as stack:
        async with api(stack) as http:
            client = await Client.on_new_flow(http, flow, 5)
        reused = client.acknowledged[1]

        async def on_step(step: Step, round_: int) -> None:
            async with api(stack) as http:
                if when == ("copy", 1) and (step, round_) == ("snapshot", 1):
                    # Bytes missing from the first copy: the backup takes a second snapshot.
                    await forget(stack, http, flow["id"], "[3:0_4:0)", client.acknowledged[3])
                if (step, round_) == when:
                    await forget(stack, http, flow["id"], "[1:0_2:0)", reused)
                    await allocate_again(stack, http, flow["id"], reused, new_bytes, "[9:0_10:0)")

        manifest = await backed_up(live_dir, backup_dir, on_step)
        # Nothing changed after the last snapshot: the stack lists what that snapshot has.
        async with api(stack) as http:
            last = await segments_and_bytes(http, flow["id"])
    assert manifest["snapshots"] == 2
    assert "[1:0_2:0)" not in last
    assert last["[9:0_10:0)"] == (reused, hashlib.sha256(new_bytes).hexdigest())
    # The last snapshot's segments, the reused id's with its new bytes, not the old ones.
    assert await restored(live_dir, backup_dir, flow["id"]) == last


# The default backend's label: a segment's get_url there, not its uncontrolled ones.
LOCAL = "local-s3"


async def presigned_url(http: aiohttp.ClientSession, object_id: str) -> str:
    """A URL serving a registered object's bytes from the stack's S3 server."""
    urls = (await get_json(http, f"/objects/{object_id}"))["get_urls"]
    url: str = next(u["url"] for u in urls if u.get("presigned"))
    return url


async def register_external(
    stack: Stack, http: aiohttp.ClientSession, flow_id: str, object_id: str, url: str, tr: str
) -> None:
    """Register `object_id` at `tr` with its own get_url (`url`), no allocation, then give it
    a controlled instance on the default backend (its bytes copied in from `url`); returns
    once the bytes there are those `url` serves."""
    segment = {"object_id": object_id, "timerange": tr, "get_urls": [{"url": url, "label": "cdn"}]}
    status, body = await post(http, flow_id, segment)
    assert status == 201, body
    backends = await get_json(http, "/service/storage-backends")
    default = next(b["id"] for b in backends if b["default_storage"])
    status, body, _ = await send_json(
        http, "POST", f"/objects/{object_id}/instances", {"storage_id": default}
    )
    assert status == 201, body
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        payload = await resp.read()

    async def copied_in() -> bool:
        return await stored_bytes(stack, object_id) == payload

    await eventually(copied_in, f"{object_id}'s bytes copied in")


@pytest.mark.parametrize(
    "when",
    [("snapshot", 1), ("copy", 1)],
    ids=["between-a-snapshot-and-its-copy", "between-a-copy-and-the-next-snapshot"],
)
async def test_an_object_without_an_allocation_registered_again_is_backed_up_with_its_new_bytes(
    tmp_path: Path, when: tuple[Step, int]
) -> None:
    """An object registered with its own get_urls, then given a controlled instance, has no
    allocation (`allocated_ns` 0); forgotten and registered again with the same id and other
    bytes, it has none again, so the store alone cannot tell the two apart."""
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    external = f"external-{new_id()}"
    async with live_stack(live_dir, env=PROMPT_RELEASE) as stack:
        async with api(stack) as http:
            client = await Client.on_new_flow(http, flow, 3)
            old, new, other = client.acknowledged
            await register_external(
                stack, http, flow["id"], external, await presigned_url(http, old), "[5:0_6:0)"
            )

        async def on_step(step: Step, round_: int) -> None:
            async with api(stack) as http:
                if when == ("copy", 1) and (step, round_) == ("snapshot", 1):
                    # Bytes missing from the first copy: the backup takes a second snapshot.
                    await forget(stack, http, flow["id"], "[2:0_3:0)", other)
                if (step, round_) == when:
                    await forget(stack, http, flow["id"], "[5:0_6:0)", external)
                    url = await presigned_url(http, new)
                    await register_external(stack, http, flow["id"], external, url, "[9:0_10:0)")

        manifest = await backed_up(live_dir, backup_dir, on_step)
        async with api(stack) as http:
            last = await segments_and_bytes(http, flow["id"], accept=LOCAL)
    assert manifest["snapshots"] >= 2
    assert "[5:0_6:0)" not in last
    assert last["[9:0_10:0)"] == (external, client.checksums[new])
    # The last snapshot's segments, the external object's with its new bytes.
    assert await restored(live_dir, backup_dir, flow["id"], accept=LOCAL) == last


class WatchedS3:
    """The backup's own client of the stack's S3 server, watched: which tasks call
    `get_object`, and `on_get` awaited with each response before the backup reads it."""

    def __init__(
        self,
        client: Any,
        on_get: Callable[[str, dict[str, Any]], Awaitable[None]] | None,
    ) -> None:
        self.client = client
        self.on_get = on_get
        self.tasks: set[asyncio.Task[Any]] = set()
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def get_object(self, **kwargs: Any) -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        got: dict[str, Any] = await self.client.get_object(**kwargs)
        self.gets += 1
        if self.on_get is not None:
            await self.on_get(kwargs["Key"], got)
        return got


@pytest.fixture
def watch_source(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[Stack, Callable[[str, dict[str, Any]], Awaitable[None]] | None], list[WatchedS3]]:
    """Has the backup's clients of the stack's S3 server watched (`WatchedS3`); returns the
    watched clients."""

    def watch(
        stack: Stack, on_get: Callable[[str, dict[str, Any]], Awaitable[None]] | None
    ) -> list[WatchedS3]:
        watched: list[WatchedS3] = []

        @asynccontextmanager
        async def client(settings: S3Settings, public: bool = False) -> AsyncIterator[Any]:
            async with s3_client(settings, public) as real:
                if settings.endpoint_url != stack.env["TAMS_S3_ENDPOINT_URL"]:
                    yield real  # the backup's own S3 server
                    return
                watched.append(WatchedS3(real, on_get))
                yield watched[-1]

        monkeypatch.setattr(backup_module, "s3_client", client)
        return watched

    return watch


class CutShort:
    """A GET's body whose connection closed before its end, as aiobotocore reports it."""

    def __init__(self, body: Any) -> None:
        self.body = body

    async def read(self) -> bytes:
        self.body.close()
        raise ResponseStreamingError(
            error=aiohttp.ClientPayloadError("Response payload is not completed")
        )


async def test_bytes_deleted_while_they_are_read_are_left_out_by_a_second_snapshot(
    tmp_path: Path,
    watch_source: Callable[
        [Stack, Callable[[str, dict[str, Any]], Awaitable[None]] | None], list[WatchedS3]
    ],
) -> None:
    """The GET of an object's bytes has its answer; before its body is read, the store
    forgets the object and the S3 server deletes its bytes, and the body is cut short."""
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    async with live_stack(live_dir, env=PROMPT_RELEASE) as stack:
        async with api(stack) as http:
            client = await Client.on_new_flow(http, flow, 3)
        doomed = client.acknowledged[1]
        cut: list[str] = []

        async def on_get(key: str, got: dict[str, Any]) -> None:
            if key == object_key(doomed) and not cut:
                async with api(stack) as http:
                    await forget(stack, http, flow["id"], "[1:0_2:0)", doomed)
                got["Body"] = CutShort(got["Body"])
                cut.append(key)

        watch_source(stack, on_get)
        manifest = await backed_up(live_dir, backup_dir, on_step=_nothing)
        async with api(stack) as http:
            last = await segments_and_bytes(http, flow["id"])
    assert cut, "the doomed object's bytes were never read"
    assert manifest["snapshots"] == 2
    assert (manifest["objects"], manifest["bytes"]) == (2, 2 * 64 * 1024)
    assert sorted(oid for oid, _ in last.values()) == sorted(set(client.acknowledged) - {doomed})
    assert await restored(live_dir, backup_dir, flow["id"]) == last


async def _nothing(step: Step, round_: int) -> None:
    return None


async def test_an_s3_error_during_the_copy_fails_the_backup(tmp_path: Path) -> None:
    """The stack's bucket is removed after the snapshot: its objects cannot be read (not
    "no such key": no such bucket), and the backup fails as such, leaving no store."""
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    async with live_stack(live_dir) as stack:
        async with api(stack) as http:
            await Client.on_new_flow(http, flow, 1)
        settings = s3_settings(stack)
        bucket = settings.bucket

        async def on_step(step: Step, round_: int) -> None:
            if step == "snapshot":
                async with s3_client(settings) as s3:
                    listed = await s3.list_objects_v2(Bucket=bucket)
                    for item in listed.get("Contents", []):
                        await s3.delete_object(Bucket=bucket, Key=item["Key"])
                    await s3.delete_bucket(Bucket=bucket)

        with pytest.raises(BackupFailed, match=f"could not copy {bucket}/.*NoSuchBucket"):
            await backed_up(live_dir, backup_dir, on_step)
    assert not (backup_dir / "tams.db").exists()


async def test_a_large_store_is_copied_by_a_few_tasks(
    tmp_path: Path,
    watch_source: Callable[
        [Stack, Callable[[str, dict[str, Any]], Awaitable[None]] | None], list[WatchedS3]
    ],
) -> None:
    """A store may hold millions of objects: the copy takes a few workers, not a task (and
    its memory) per object."""
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    count = 20 * COPIES_AT_ONCE
    async with live_stack(live_dir) as stack:
        async with api(stack) as http:
            await put_flow(http, flow)
            # Allocated and uploaded, not registered: copied all the same.
            for _ in range(count // 80):
                await allocate_and_upload(http, flow["id"], [b"x%d" % n for n in range(80)])
        watched = watch_source(stack, None)
        output_manifest = await backed_up(live_dir, backup_dir, on_step=_nothing)
    assert output_manifest["objects"] == count
    # The check that the stack runs has a client of its own, the copy another.
    assert sum(source.gets for source in watched) >= count
    assert len(set().union(*(source.tasks for source in watched))) <= COPIES_AT_ONCE


async def test_an_object_with_copies_on_two_local_backends_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controlled instance on a second backend of the same S3 server: both copies are
    backed up, and the object is one object."""
    extra = {"TAMS_S3_EXTRA_BACKENDS": json.dumps([ARCHIVE_BACKEND])}
    # `tams backup` takes the backends from its environment, as `tams up` does.
    monkeypatch.setenv("TAMS_S3_EXTRA_BACKENDS", extra["TAMS_S3_EXTRA_BACKENDS"])
    live_dir, backup_dir = tmp_path / "live", tmp_path / "backup"
    flow = video_flow()
    async with live_stack(live_dir, env=extra) as stack:
        async with api(stack) as http:
            client = await Client.on_new_flow(http, flow, 2)
            twice = client.acknowledged[0]
            status, body, _ = await send_json(
                http, "POST", f"/objects/{twice}/instances", {"storage_id": ARCHIVE_BACKEND["id"]}
            )
            assert status == 201, body

            async def archived() -> bool:
                stored = await stored_bytes(stack, twice, ARCHIVE_BACKEND["bucket"])
                return (
                    stored is not None
                    and hashlib.sha256(stored).hexdigest() == (client.checksums[twice])
                )

            await eventually(archived, "the copy on the archive backend")
        output = await run_tams_backup(live_dir, backup_dir)
    assert f"then 2 objects ({3 * 64 * 1024} bytes)" in output
