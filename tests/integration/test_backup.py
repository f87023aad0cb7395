"""`tams backup` of a running stack, and a new stack started on the backup.

The backup is taken while a client keeps registering segments. Started on the backup, with
the original gone, a stack lists every segment acknowledged before the backup began, serves
the bytes of every segment it lists, and takes new writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from pathlib import Path

import aiohttp

from tams_runtime.s3 import object_key, s3_client
from tams_stack.stack import Stack

from .helpers import allocate_and_upload, list_all, post, put_flow, s3_settings, video_flow

BACKUP_DEADLINE_S = 120.0


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

    stack = Stack(live_dir, remember_ports=True)
    try:
        stack.start_infrastructure()
        await stack.start_services()
        async with aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http:
            await put_flow(http, flow)
            client = Client(http, flow["id"])
            for _ in range(20):
                await client.register()
            before = list(client.acknowledged)

            backing_up = asyncio.create_task(run_tams_backup(live_dir, backup_dir))
            while not backing_up.done():
                await client.register()
            output = backing_up.result()
            written_during = len(client.acknowledged) - len(before)
    finally:
        stack.stop()
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
    stack = Stack(live_dir, remember_ports=True)
    try:
        stack.start_infrastructure()
        await stack.start_services(("catalog", "segments", "gateway"))
        async with aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as http:
            await put_flow(http, flow)
            lost = await Client(http, flow["id"]).register()
        settings = s3_settings(stack)
        async with s3_client(settings) as s3:
            await s3.delete_object(Bucket=settings.bucket, Key=object_key(lost))
        output = await run_tams_backup(live_dir, backup_dir, succeeds=False)
    finally:
        stack.stop()
    assert "referenced objects were deleted" in output
