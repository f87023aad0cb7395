"""POST /flows/{id}/storage: allocation through Kafka, upload with a plain HTTP client."""

from __future__ import annotations

import base64
import hashlib

import aiohttp

from tams_runtime.s3 import object_key, s3_client
from tams_runtime.settings import S3Settings
from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import new_id, put_flow, video_flow


def s3_settings(stack: Stack) -> S3Settings:
    return S3Settings(
        endpoint_url=stack.env["TAMS_S3_ENDPOINT_URL"],
        access_key=stack.env["TAMS_S3_ACCESS_KEY"],
        secret_key=stack.env["TAMS_S3_SECRET_KEY"],
    )


async def test_allocate_and_upload_with_no_credentials(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    async with http.post(f"/flows/{flow['id']}/storage", json={"limit": 3}) as resp:
        assert resp.status == 201, await resp.text()
        allocation = await resp.json()
    spec.validate(allocation, "flow-storage.json")
    objects = allocation["media_objects"]
    assert len(objects) == 3 and len({o["object_id"] for o in objects}) == 3
    media = b"\x47" + bytes(range(187)) * 100  # something shaped like MPEG-TS packets
    async with aiohttp.ClientSession() as anonymous:
        for item in objects:
            put_url = item["put_url"]
            assert put_url["content-type"] == "video/mp2t"
            assert item["presigned"] is True
            async with anonymous.put(
                put_url["url"], data=media, headers={"Content-Type": put_url["content-type"]}
            ) as resp:
                assert resp.status == 200, await resp.text()
    settings = s3_settings(tams_stack)
    async with s3_client(settings) as s3:
        stored = await s3.get_object(
            Bucket=settings.bucket, Key=object_key(objects[0]["object_id"])
        )
        body = await stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(media).hexdigest()


async def test_client_chosen_object_ids(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    ids = [f"replica/{new_id()}", new_id()]
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": ids}) as resp:
        assert resp.status == 201
        assert [o["object_id"] for o in (await resp.json())["media_objects"]] == ids
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": ids[:1]}) as resp:
        assert resp.status == 400
        assert ids[0] in (await resp.json())["summary"]


async def test_errors_carry_message_for_aws_tools(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    """The AWS TAMS tools read `message` from error bodies: sqs-segment-ingestion skips the upload
    of a replicated object when a 400 from the storage endpoint says "already exist" there, and
    the web UI shows it. Errors from the owning service and from the gateway both carry it."""
    flow = video_flow()
    await put_flow(http, flow)
    ids = [new_id()]
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": ids}) as resp:
        assert resp.status == 201
    async with http.post(f"/flows/{flow['id']}/storage", json={"object_ids": ids}) as resp:
        assert resp.status == 400
        error = await resp.json()
    spec.validate(error, "error.json")
    assert "already exist" in error["message"] and error["message"] == error["summary"]
    async with http.get(f"/flows/{flow['id']}/segments", params={"timerange": "bad"}) as resp:
        assert resp.status == 400
        error = await resp.json()
    spec.validate(error, "error.json")
    assert error["message"] == error["summary"]


async def test_allocation_rules(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    base = f"/flows/{flow['id']}/storage"
    for body, status in (
        ({"limit": 2, "object_ids": [new_id()]}, 400),
        ({"limit": 0}, 400),
        ({"storage_id": new_id()}, 400),
        ({"presigned": False}, 400),
        ({"content_type": "video/mp4"}, 400),
        ({"object_ids": ["a", "a"]}, 400),
        # Ids become S3 keys and URL paths: no path steps, control characters or spaces.
        ({"object_ids": ["ab/../../ea/x"]}, 400),
        ({"object_ids": [".."]}, 400),
        ({"object_ids": [""]}, 400),
        ({"object_ids": ["a\nb"]}, 400),
        ({"object_ids": ["with space"]}, 400),
        ({"object_ids": ["x" * 257]}, 400),
    ):
        async with http.post(base, json=body) as resp:
            assert resp.status == status, f"{body}: {resp.status} {await resp.text()}"
            assert (await resp.json())["summary"]
    async with http.post(f"/flows/{new_id()}/storage", json={}) as resp:
        assert resp.status == 404
    no_container = video_flow()
    del no_container["container"]
    await put_flow(http, no_container)
    async with http.post(f"/flows/{no_container['id']}/storage", json={}) as resp:
        assert resp.status == 400
        assert "container" in (await resp.json())["summary"]
    async with http.put(f"/flows/{flow['id']}/read_only", json=True) as resp:
        assert resp.status == 204
    async with http.post(base, json={}) as resp:
        assert resp.status == 403
    async with http.put(f"/flows/{flow['id']}/read_only", json=False) as resp:
        assert resp.status == 204
    async with http.post(base, json={}) as resp:
        assert resp.status == 201
        assert len((await resp.json())["media_objects"]) == 10  # the default limit
    # The request body is optional: none at all is the same as {}.
    async with http.post(base) as resp:
        assert resp.status == 201, await resp.text()
        assert len((await resp.json())["media_objects"]) == 10


async def test_presigned_uploads_carry_checksums_and_a_wrong_one_is_refused(
    http: aiohttp.ClientSession,
) -> None:
    """ADR 0048: `Content-MD5` passes through a presigned upload and the object store
    verifies it: a client that sends it cannot store bytes damaged on the way."""
    flow = video_flow()
    await put_flow(http, flow)
    async with http.post(f"/flows/{flow['id']}/storage", json={"limit": 2}) as resp:
        assert resp.status == 201, await resp.text()
        objects = (await resp.json())["media_objects"]
    media = b"\x47" + bytes(range(187)) * 10
    md5 = base64.b64encode(hashlib.md5(media).digest()).decode()
    wrong_md5 = base64.b64encode(hashlib.md5(media + b"x").digest()).decode()
    cases = [({"Content-MD5": md5}, 200), ({"Content-MD5": wrong_md5}, 400)]
    async with aiohttp.ClientSession() as anonymous:
        for item, (checksum, status) in zip(objects, cases, strict=True):
            put_url = item["put_url"]
            headers = {"Content-Type": put_url["content-type"], **checksum}
            async with anonymous.put(put_url["url"], data=media, headers=headers) as resp:
                assert resp.status == status, (checksum, await resp.text())
