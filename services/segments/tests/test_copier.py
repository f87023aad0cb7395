"""The copier against the real S3 server: server-side on one endpoint, streamed in parts
between endpoints (the same server under another host name counts as another endpoint)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tams_runtime.egress import EgressPolicy
from tams_runtime.s3 import object_key
from tams_runtime.settings import S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.copier import Copier, CopyFailed, same_endpoint
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND
from tams_store.port import ObjectRecord

PART = 5 * 1024 * 1024


@pytest_asyncio.fixture
async def clients(tams_infra: Stack) -> AsyncIterator[tuple[StorageBackends, BackendClients]]:
    endpoint = tams_infra.env["TAMS_S3_ENDPOINT_URL"]
    other_host = endpoint.replace("127.0.0.1", "localhost")
    extras = (
        f'[{{"id": "{ARCHIVE_BACKEND["id"]}", "label": "archive", '
        f'"bucket": "{ARCHIVE_BACKEND["bucket"]}"}}, '
        f'{{"id": "0b7f2c55-3a8e-4d1b-9c6f-2e4a8d1f7b39", "label": "far", '
        f'"bucket": "{ARCHIVE_BACKEND["bucket"]}", "endpoint_url": "{other_host}"}}]'
    )
    settings = S3Settings(
        endpoint_url=endpoint,
        access_key=tams_infra.env["TAMS_S3_ACCESS_KEY"],
        secret_key=tams_infra.env["TAMS_S3_SECRET_KEY"],
        extra_backends=extras,
    )
    backends = StorageBackends.from_settings(settings)
    s3 = BackendClients(backends)
    await s3.start()
    yield backends, s3
    await s3.stop()


async def put(s3: BackendClients, backends: StorageBackends, object_id: str, data: bytes) -> None:
    default = backends.all[0]
    await s3.client(default.id).put_object(
        Bucket=default.bucket, Key=object_key(object_id), Body=data, ContentType="video/mp2t"
    )


async def read(s3: BackendClients, storage_id: str, object_id: str) -> tuple[bytes, str]:
    got = await s3.client(storage_id).get_object(
        Bucket=s3.bucket(storage_id), Key=object_key(object_id)
    )
    return await got["Body"].read(), got["ContentType"]


def record(object_id: str, storage_id: str) -> ObjectRecord:
    return ObjectRecord(object_id, None, storage_id, "video/mp2t", True, None, {})


async def test_copies_server_side_and_streamed(
    clients: tuple[StorageBackends, BackendClients],
) -> None:
    backends, s3 = clients
    default, archive, far = backends.all
    assert same_endpoint(default, archive) and not same_endpoint(default, far)
    data = os.urandom(2 * PART + 12345)  # three parts when streamed
    async with aiohttp.ClientSession() as http:
        copier = Copier(backends, s3, http, part_bytes=PART, egress=EgressPolicy())
        near_id, far_id = f"copy-near-{os.getpid()}", f"copy-far-{os.getpid()}"
        for object_id in (near_id, far_id):
            await put(s3, backends, object_id, data)
        await copier.copy(record(near_id, default.id), archive.id)
        await copier.copy(record(far_id, default.id), far.id)
    assert await read(s3, archive.id, near_id) == (data, "video/mp2t")
    assert await read(s3, far.id, far_id) == (data, "video/mp2t")


async def test_a_copy_never_reads_an_internal_url(
    clients: tuple[StorageBackends, BackendClients],
) -> None:
    """A client registers the URL of an uncontrolled instance; the server must not fetch
    internal addresses (here, the S3 server itself, on loopback) on its behalf."""
    backends, s3 = clients
    default, archive, _ = backends.all
    object_id = f"copy-ssrf-{os.getpid()}"
    await put(s3, backends, object_id, b"secret bytes")
    internal_url = f"{default.endpoint_url}/{default.bucket}/{object_key(object_id)}"
    external = ObjectRecord(
        object_id,
        None,
        None,
        "video/mp2t",
        True,
        None,
        {"get_urls": [{"url": internal_url, "label": "cdn", "controlled": False}]},
    )
    async with aiohttp.ClientSession() as http:
        copier = Copier(backends, s3, http, part_bytes=PART, egress=EgressPolicy())
        with pytest.raises(CopyFailed, match="not a public address"):
            await copier.copy(external, archive.id)
