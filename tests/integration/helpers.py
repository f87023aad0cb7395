"""Small builders and readers shared by the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from tams_runtime.s3 import object_key, s3_client
from tams_runtime.settings import MediaSettings, S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.worker import ObjectCollector
from tams_stack.stack import Stack
from tams_store.sqlite import SqliteStore

T = TypeVar("T")

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
DATA = "urn:x-nmos:format:data"
MULTI = "urn:x-nmos:format:multi"


def new_id() -> str:
    return str(uuid.uuid4())


def video_flow(
    flow_id: str | None = None, source_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "id": flow_id or new_id(),
        "source_id": source_id or new_id(),
        "format": VIDEO,
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 25, "denominator": 1},
        },
    }
    flow.update(extra)
    return flow


def audio_flow(
    flow_id: str | None = None, source_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "id": flow_id or new_id(),
        "source_id": source_id or new_id(),
        "format": AUDIO,
        "codec": "audio/aac",
        "container": "video/mp2t",
        "essence_parameters": {"sample_rate": 48000, "channels": 2},
    }
    flow.update(extra)
    return flow


def multi_flow(members: list[str], flow_id: str | None = None, **extra: Any) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "id": flow_id or new_id(),
        "source_id": new_id(),
        "format": MULTI,
        "container": "video/mp2t",
        "flow_collection": [{"id": m, "role": f"track{i}"} for i, m in enumerate(members)],
    }
    flow.update(extra)
    return flow


async def put_flow(http: aiohttp.ClientSession, flow: dict[str, Any]) -> dict[str, Any]:
    async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
        assert resp.status in (201, 204), await resp.text()
        return await resp.json() if resp.status == 201 else {}


async def get_json(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with http.get(path) as resp:
        assert resp.status == status, f"GET {path}: {resp.status} {await resp.text()}"
        return await resp.json()


async def allocate_and_upload(
    http: aiohttp.ClientSession,
    flow_id: str,
    payloads: list[bytes],
    object_ids: list[str] | None = None,
) -> list[str]:
    """Allocate storage for `payloads` (with the given ids, if any) and upload them."""
    request: dict[str, Any] = (
        {"object_ids": object_ids} if object_ids is not None else {"limit": len(payloads)}
    )
    async with http.post(f"/flows/{flow_id}/storage", json=request) as resp:
        assert resp.status == 201, await resp.text()
        media_objects = (await resp.json())["media_objects"]
    async with aiohttp.ClientSession() as anonymous:
        for item, payload in zip(media_objects, payloads, strict=True):
            put_url = item["put_url"]
            async with anonymous.put(
                put_url["url"], data=payload, headers={"Content-Type": put_url["content-type"]}
            ) as resp:
                assert resp.status == 200
    return [item["object_id"] for item in media_objects]


async def status_of(http: aiohttp.ClientSession, flow_id: str, object_id: str, tr: str) -> int:
    return (await post(http, flow_id, {"object_id": object_id, "timerange": tr}))[0]


async def post(http: aiohttp.ClientSession, flow_id: str, body: Any) -> tuple[int, Any]:
    async with http.post(f"/flows/{flow_id}/segments", json=body) as resp:
        text = await resp.text()
        return resp.status, (await resp.json()) if text else None


async def list_all(http: aiohttp.ClientSession, path: str) -> list[Any]:
    """Follow `Link: rel=next` to the end, checking the paging headers on the way."""
    items: list[Any] = []
    url: str | None = path
    while url is not None:
        async with http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
            assert resp.headers["X-Paging-Count"] == str(len(page))
            items.extend(page)
            link = resp.headers.get("Link")
            if link is None:
                assert "X-Paging-NextKey" not in resp.headers
                url = None
            else:
                assert link.endswith('>; rel="next"')
                url = link[1 : link.index(">")]
                assert resp.headers["X-Paging-NextKey"] in url
    return items


class EventReader:
    """Reads the public events topic from its current end, deduplicating by event id."""

    def __init__(self, bootstrap: str, topic: str = "tams.events") -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        self.topic = topic
        self.seen: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []

    async def __aenter__(self) -> EventReader:
        await self.consumer.start()
        partitions = [
            TopicPartition(self.topic, p)
            for p in self.consumer.partitions_for_topic(self.topic) or []
        ]
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(self.topic, p)
                for p in self.consumer.partitions_for_topic(self.topic) or []
            ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def until(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read until `predicate(events)` is true; returns the deduplicated events in order."""
        async with asyncio.timeout(timeout):
            while not predicate(self.events()):
                batches = await self.consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        headers = {k: v.decode() for k, v in record.headers}
                        event_id = headers["event_id"]
                        if event_id not in self.seen:
                            self.seen[event_id] = {
                                "key": record.key.decode() if record.key else None,
                                "headers": headers,
                                **json.loads(record.value),
                            }
                            self.order.append(event_id)
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        return [self.seen[i] for i in self.order]


def s3_settings(stack: Stack, bucket: str | None = None) -> S3Settings:
    """Credentials of the test stack's S3 server (for looking at buckets directly)."""
    settings = S3Settings(
        endpoint_url=stack.env["TAMS_S3_ENDPOINT_URL"],
        access_key=stack.env["TAMS_S3_ACCESS_KEY"],
        secret_key=stack.env["TAMS_S3_SECRET_KEY"],
    )
    return settings.model_copy(update={"bucket": bucket}) if bucket else settings


async def stored_bytes(stack: Stack, object_id: str, bucket: str | None = None) -> bytes | None:
    """An object's bytes as S3 holds them in a bucket (the default one unless named), or None."""
    return await bytes_in(s3_settings(stack, bucket), object_id)


async def bytes_in(settings: S3Settings, object_id: str) -> bytes | None:
    """An object's bytes in the bucket of `settings` (any S3 server), or None."""
    async with s3_client(settings) as s3:
        try:
            stored = await s3.get_object(Bucket=settings.bucket, Key=object_key(object_id))
        except s3.exceptions.NoSuchKey:
            return None
        body: bytes = await stored["Body"].read()
        return body


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = 15.0) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {result!r})")
        await asyncio.sleep(0.05)


async def send_json(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any, Any]:
    """Any request; returns the status, the JSON body (None if empty) and the headers."""
    async with http.request(method, path, json=body) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None), resp.headers


@contextlib.contextmanager
def paused(stack: Stack, service: str) -> Iterator[None]:
    """Freeze a service process (SIGSTOP) for the duration of the block, to look at work it
    has not picked up yet; keep the block short (its Kafka group session keeps running)."""
    pid = stack.services[service].process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def stack_store(stack: Stack) -> AsyncIterator[SqliteStore]:
    """The test stack's own metadata store, opened from the test process."""
    store = SqliteStore(Path(stack.env["TAMS_DATA_DIR"]) / "tams.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def stack_collector(stack: Stack, media: MediaSettings) -> AsyncIterator[ObjectCollector]:
    """The segments service's object collector, run from the test process against the test
    stack's store and S3, so a test can run it with its clock set ahead."""
    settings = s3_settings(stack).model_copy(
        update={"extra_backends": stack.env.get("TAMS_S3_EXTRA_BACKENDS")}
    )
    backends = StorageBackends.from_settings(settings)
    clients = BackendClients(backends)
    await clients.start()
    try:
        async with stack_store(stack) as store:
            yield ObjectCollector(store, backends, clients, media, owner="test-collector")
    finally:
        await clients.stop()


async def stack_media_settings(http: aiohttp.ClientSession) -> MediaSettings:
    """The stack's object timeout, as /service advertises it (the grace is the default)."""
    service = await get_json(http, "/service")
    return MediaSettings(min_object_timeout_s=int(service["min_object_timeout"].split(":")[0]))
