"""Copying an object's bytes to another storage backend (a controlled instance).

The source is the first instance that works: a controlled copy on another backend, else an
uncontrolled URL (the spec asks that an object whose only instances are uncontrolled can be
copied too). Between two backends on the same S3 endpoint with the same credentials the
copy is server-side (CopyObject; UploadPartCopy in ranges above 5 GiB, CopyObject's limit),
so no byte passes through this process. Otherwise the bytes are streamed: read in parts of
`part_bytes` and written as a multipart upload, so memory stays bounded for any size.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tams_runtime.egress import EgressPolicy
from tams_runtime.s3 import object_key
from tams_runtime.storage import BackendClients, StorageBackend, StorageBackends
from tams_store.port import ObjectRecord

log = logging.getLogger(__name__)

COPY_OBJECT_MAX = 5 * 1024**3
SERVER_SIDE_PART = 512 * 1024**2
DEFAULT_CONTENT_TYPE = "application/octet-stream"

Read = Callable[[int], Awaitable[bytes]]


class CopyFailed(Exception):
    """No instance of the object could be copied; the message lists why for each."""


def same_endpoint(a: StorageBackend, b: StorageBackend) -> bool:
    """Whether one S3 client can read `a` and write `b` (server-side copy possible)."""
    return (a.endpoint_url, a.region, a.access_key, a.secret_key) == (
        b.endpoint_url,
        b.region,
        b.access_key,
        b.secret_key,
    )


async def read_part(read: Read, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the stream."""
    chunks: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = await read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


class Copier:
    def __init__(
        self,
        backends: StorageBackends,
        clients: BackendClients,
        http: aiohttp.ClientSession,
        part_bytes: int,
        egress: EgressPolicy,
    ) -> None:
        self.backends = backends
        self.clients = clients
        self.http = http
        self.part_bytes = part_bytes
        self.egress = egress

    async def copy(self, obj: ObjectRecord, target_id: str) -> None:
        """Put the object's bytes on backend `target_id`, from the first instance that works."""
        target = self.backends.get(target_id)
        if target is None:
            raise CopyFailed(f"storage backend {target_id} is not configured")
        failures: list[str] = []
        for storage_id in obj.controlled_storage_ids:
            source = self.backends.get(storage_id)
            if source is None or storage_id == target_id:
                continue
            try:
                await self._from_backend(obj, source, target)
                return
            except Exception as exc:
                failures.append(f"from storage {storage_id}: {exc}")
        for instance in obj.doc.get("get_urls", []):
            try:
                await self._from_url(obj, instance["url"], target)
                return
            except Exception as exc:
                failures.append(f"from {instance.get('label')!r}: {exc}")
        raise CopyFailed("; ".join(failures) or "the object has no instance to copy from")

    async def abort_open_uploads(self, target_id: str, object_id: str) -> int:
        """Abort the multipart uploads left open on `target_id` for this object's key by an
        earlier attempt at its copy that never ended (its process was killed): S3 keeps their
        parts, unlisted and unreferenced, until they are aborted. Called by the holder of the
        copy's lease before it tries again; returns how many were aborted."""
        target = self.backends.get(target_id)
        if target is None:
            return 0
        key = object_key(object_id)
        client = self.clients.client(target_id)
        listed = await client.list_multipart_uploads(Bucket=target.bucket, Prefix=key)
        stale = [u for u in listed.get("Uploads", []) if u.get("Key") == key]
        for upload in stale:
            await self._abort(client, target.bucket, key, upload["UploadId"])
        if stale:
            log.info(
                "aborted multipart uploads left by an earlier copy",
                extra={"object_id": object_id, "storage_id": target_id, "count": len(stale)},
            )
        return len(stale)

    async def _from_backend(
        self, obj: ObjectRecord, source: StorageBackend, target: StorageBackend
    ) -> None:
        key = object_key(obj.object_id)
        if same_endpoint(source, target):
            await self._server_side(key, source, target)
            return
        response = await self.clients.client(source.id).get_object(Bucket=source.bucket, Key=key)
        body = response["Body"]
        try:
            content_type = response.get("ContentType") or obj.content_type
            await self.upload(target, key, body.read, content_type)
        finally:
            body.close()

    async def _server_side(self, key: str, source: StorageBackend, target: StorageBackend) -> None:
        client = self.clients.client(target.id)
        copy_source = {"Bucket": source.bucket, "Key": key}
        head = await client.head_object(Bucket=source.bucket, Key=key)
        size = int(head["ContentLength"])
        if size <= COPY_OBJECT_MAX:
            await client.copy_object(Bucket=target.bucket, Key=key, CopySource=copy_source)
            return
        upload = await client.create_multipart_upload(
            Bucket=target.bucket, Key=key, ContentType=head.get("ContentType", DEFAULT_CONTENT_TYPE)
        )
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, SERVER_SIDE_PART), start=1):
                end = min(start + SERVER_SIDE_PART, size) - 1
                part = await client.upload_part_copy(
                    Bucket=target.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=copy_source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"ETag": part["CopyPartResult"]["ETag"], "PartNumber": number})
            await client.complete_multipart_upload(
                Bucket=target.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(client, target.bucket, key, upload_id)
            raise

    async def _from_url(self, obj: ObjectRecord, url: str, target: StorageBackend) -> None:
        # A client registered this URL: refuse internal destinations; a redirect could
        # point anywhere, so none is followed.
        checked = self.egress.check_url(url)
        async with self.http.get(checked, allow_redirects=False) as response:
            if response.status != 200:
                raise CopyFailed(f"GET answered {response.status}")
            content_type = response.headers.get("Content-Type") or obj.content_type
            await self.upload(
                target, object_key(obj.object_id), response.content.read, content_type
            )

    async def upload(
        self, target: StorageBackend, key: str, read: Read, content_type: str | None
    ) -> None:
        """Write a stream to `target`: one PUT if it fits in a part, else a multipart upload
        (aborted if anything fails, so no half-written object is left)."""
        client = self.clients.client(target.id)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        chunk = await read_part(read, self.part_bytes)
        if len(chunk) < self.part_bytes:
            await client.put_object(
                Bucket=target.bucket, Key=key, Body=chunk, ContentType=content_type
            )
            return
        upload = await client.create_multipart_upload(
            Bucket=target.bucket, Key=key, ContentType=content_type
        )
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            number = 1
            while chunk:
                part = await client.upload_part(
                    Bucket=target.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
                number += 1
                chunk = await read_part(read, self.part_bytes)
            await client.complete_multipart_upload(
                Bucket=target.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await self._abort(client, target.bucket, key, upload_id)
            raise

    @staticmethod
    async def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
        try:
            await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            log.warning("could not abort a multipart upload", exc_info=True)
