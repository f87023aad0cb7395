"""POST and DELETE /objects/{id}/instances: uncontrolled URLs and controlled copies.

The test stack has two storage backends on the same S3 server: the default (`local-s3`)
and `archive` (another bucket), so a controlled copy is a server-side CopyObject.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from tams_schema.models.common import MAX_URL_LENGTH
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND, SpecValidator

from .helpers import (
    allocate_and_upload,
    eventually,
    get_json,
    new_id,
    post,
    put_flow,
    send_json,
    stored_bytes,
    video_flow,
)

ARCHIVE = ARCHIVE_BACKEND["id"]


async def registered_object(
    http: aiohttp.ClientSession, payload: bytes
) -> tuple[dict[str, Any], str]:
    flow = video_flow()
    await put_flow(http, flow)
    (object_id,) = await allocate_and_upload(http, flow["id"], [payload])
    status, body = await post(http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"})
    assert status == 201, body
    return flow, object_id


async def instances(http: aiohttp.ClientSession, object_id: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = (
        await get_json(http, f"/objects/{object_id}?verbose_storage=true")
    )["get_urls"]
    return got


async def backend_figures(http: aiohttp.ClientSession) -> dict[str, tuple[int, int]]:
    """Objects and bytes per storage backend (by label), from the analytics service."""
    usage = await get_json(http, "/analytics/storage-usage")
    return {b["label"]: (b["objects"], b["bytes"]) for b in usage["backends"]}


def changes(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    found = {
        label: (objects - before[label][0], size - before[label][1])
        for label, (objects, size) in after.items()
    }
    return {label: change for label, change in found.items() if change != (0, 0)}


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        assert resp.status == 200, url
        return await resp.read()


async def test_uncontrolled_instances_are_added_and_removed(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow, object_id = await registered_object(http, b"uncontrolled")
    other = video_flow()
    await put_flow(http, other)
    reuse = {"object_id": object_id, "timerange": "[5:0_6:0)", "ts_offset": "5:0"}
    assert (await post(http, other["id"], reuse))[0] == 201
    base = f"/objects/{object_id}/instances"
    cdn = {"url": "https://cdn.example.com/a.ts", "label": "cdn"}
    status, body, _ = await send_json(http, "POST", base, cdn)
    assert status == 201, body
    got = await get_json(http, f"/objects/{object_id}")
    spec.validate(got, "object.json")
    assert {"url": cdn["url"], "label": "cdn", "presigned": False} in got["get_urls"]
    # An instance belongs to the object: every segment using it, in every flow, shows it.
    for flow_id in (flow["id"], other["id"]):
        (segment,) = await get_json(http, f"/flows/{flow_id}/segments")
        assert cdn["url"] in [u["url"] for u in segment["get_urls"]]
    verbose = [u for u in await instances(http, object_id) if u["url"] == cdn["url"]]
    assert verbose[0]["controlled"] is False and "storage_id" not in verbose[0]

    for bad, why in (
        ({"url": "https://elsewhere.example.com/a.ts", "label": "cdn"}, "label already used"),
        ({"url": cdn["url"], "label": "mirror"}, "URL already registered"),
        ({"url": "https://x.example.com/a.ts", "label": "local-s3"}, "a backend's label"),
        ({"url": "https://x.example.com/a.ts", "label": ARCHIVE_BACKEND["label"]}, "backend"),
        ({"url": "https://x.example.com/a.ts"}, "no label"),
        ({"url": "not a url", "label": "x"}, "not a URL"),
        ({"storage_id": ARCHIVE, "url": cdn["url"], "label": "x"}, "both kinds"),
        ({"storage_id": "nonsense"}, "not a UUID"),
        ([], "not an object"),
    ):
        status, body, _ = await send_json(http, "POST", base, bad)
        assert status == 400, why
        spec.validate(body, "error.json")

    status, _, _ = await send_json(http, "DELETE", f"{base}?label=cdn")
    assert status == 204
    assert cdn["url"] not in [u["url"] for u in await instances(http, object_id)]
    status, body, _ = await send_json(http, "DELETE", f"{base}?label=cdn")
    assert status == 404, body


async def test_instance_requests_need_a_registered_object(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    (allocated,) = await allocate_and_upload(http, flow["id"], [b"never registered"])
    body = {"url": "https://cdn.example.com/a.ts", "label": "cdn"}
    for object_id in (allocated, new_id()):
        status, error, _ = await send_json(http, "POST", f"/objects/{object_id}/instances", body)
        assert status == 404
        spec.validate(error, "error.json")
        status, _, _ = await send_json(http, "DELETE", f"/objects/{object_id}/instances?label=cdn")
        assert status == 404
    _, object_id = await registered_object(http, b"x")
    for query in ("", "?storage_id=nonsense", f"?storage_id={ARCHIVE}&label=cdn"):
        status, error, _ = await send_json(http, "DELETE", f"/objects/{object_id}/instances{query}")
        assert status == 400, query
        spec.validate(error, "error.json")


async def test_a_controlled_copy_to_another_backend(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    payload = bytes(range(256)) * 512
    flow, object_id = await registered_object(http, payload)
    base = f"/objects/{object_id}/instances"
    stored = await backend_figures(http)
    status, body, _ = await send_json(http, "POST", base, {"storage_id": ARCHIVE})
    assert status == 201, body

    async def copied() -> list[dict[str, Any]]:
        return [u for u in await instances(http, object_id) if u.get("storage_id") == ARCHIVE]

    (archived,) = await eventually(copied, "the copy on the archive backend")
    # The storage figures follow the copy: the archive now holds the object's bytes too.
    assert changes(stored, await backend_figures(http)) == {"archive": (1, len(payload))}
    assert archived["controlled"] is True and archived["label"] == ARCHIVE_BACKEND["label"]
    assert (
        hashlib.sha256(await download(archived["url"])).digest() == hashlib.sha256(payload).digest()
    )
    (segment,) = await get_json(http, f"/flows/{flow['id']}/segments?accept_get_urls=archive")
    assert [u["label"] for u in segment["get_urls"]] == ["archive"]
    spec.validate(segment, "flow-segment.json")

    for again in ({"storage_id": ARCHIVE}, {"storage_id": new_id()}):
        status, error, _ = await send_json(http, "POST", base, again)
        assert status == 400, again
        spec.validate(error, "error.json")

    # Removing the original controlled instance deletes its bytes; the copy serves on.
    current = await instances(http, object_id)
    default_id = next(u["storage_id"] for u in current if u["label"] == "local-s3")
    status, _, _ = await send_json(http, "DELETE", f"{base}?storage_id={default_id}")
    assert status == 204
    assert [u["label"] for u in await instances(http, object_id)] == ["archive"]
    # ... and its deletion: the object's bytes left the default backend.
    assert changes(stored, await backend_figures(http)) == {
        "archive": (1, len(payload)),
        "local-s3": (-1, -len(payload)),
    }

    async def original_gone() -> bool:
        return await stored_bytes(tams_stack, object_id) is None

    await eventually(original_gone, "the original bytes deleted")
    assert await stored_bytes(tams_stack, object_id, ARCHIVE_BACKEND["bucket"]) == payload
    status, error, _ = await send_json(http, "DELETE", f"{base}?label=archive")
    assert status == 400  # the last instance
    assert "last instance" in error["summary"]


async def test_an_object_with_only_an_uncontrolled_instance_can_be_copied_in(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """The spec asks that a controlled copy can be made from uncontrolled instances alone:
    here an external object whose URL is a presigned URL of bytes elsewhere."""
    payload = b"external media " * 1000
    _, source_id = await registered_object(http, payload)
    (source,) = [u for u in await instances(http, source_id) if u.get("presigned")]
    flow = video_flow()
    await put_flow(http, flow)
    external = f"external-{new_id()}"
    segment = {
        "object_id": external,
        "timerange": "[0:0_1:0)",
        "get_urls": [{"url": source["url"], "label": "elsewhere"}],
    }
    assert (await post(http, flow["id"], segment))[0] == 201
    status, body, _ = await send_json(
        http, "POST", f"/objects/{external}/instances", {"storage_id": ARCHIVE}
    )
    assert status == 201, body

    async def copied() -> list[dict[str, Any]]:
        return [u for u in await instances(http, external) if u.get("storage_id") == ARCHIVE]

    (archived,) = await eventually(copied, "the copy of the external object")
    assert await download(archived["url"]) == payload
    # External URLs may not pose as controlled instances, nor share a label.
    for urls in (
        [{"url": source["url"], "label": "archive"}],
        [
            {"url": "https://a.example.com/x", "label": "x"},
            {"url": "https://b.example.com/x", "label": "x"},
        ],
    ):
        clash = {"object_id": f"external-{new_id()}", "timerange": "[5:0_6:0)", "get_urls": urls}
        status, error = await post(http, flow["id"], clash)
        assert status == 400 and "label" in error["summary"], error
    # The uncontrolled instance may go now; its bytes are not ours and are never deleted.
    status, _, _ = await send_json(http, "DELETE", f"/objects/{external}/instances?label=elsewhere")
    assert status == 204
    assert await stored_bytes(tams_stack, source_id) == payload


async def test_instances_resource_has_no_get(http: aiohttp.ClientSession) -> None:
    """`GET /objects/{id}/instances` is a method the instances resource lacks (405), unless an
    object's own id ends in `/instances`: object ids may hold slashes."""
    _, object_id = await registered_object(http, b"instances-get")
    for method in ("GET", "HEAD"):
        async with http.request(method, f"/objects/{object_id}/instances") as resp:
            assert resp.status == 405, method
            assert resp.headers["Allow"] == "DELETE, OPTIONS, POST"
            if method == "GET":
                assert (await resp.json())["type"] == "MethodNotAllowed"

    flow = video_flow()
    await put_flow(http, flow)
    named = f"{new_id()}/instances"
    await allocate_and_upload(http, flow["id"], [b"named"], object_ids=[named])
    status, body = await post(http, flow["id"], {"object_id": named, "timerange": "[0:0_1:0)"})
    assert status == 201, body
    assert (await get_json(http, f"/objects/{named}"))["id"] == named


async def test_an_objects_uncontrolled_urls_are_bounded(http: aiohttp.ClientSession) -> None:
    """Every listing shows each segment with all its object's URLs, so one object's URLs are
    multiplied by the segments reusing it: five 200 KB URLs made a 1,000-segment page 1 GB.
    A URL takes at most 8,192 characters, a label 256, an object 16 uncontrolled URLs; past
    them a 400, nothing added."""
    flow, object_id = await registered_object(http, b"bounded")
    url = "http://example.com/" + "a" * (MAX_URL_LENGTH - len("http://example.com/"))
    for body, fault in (
        ({"url": url + "a", "label": "long"}, str(MAX_URL_LENGTH)),
        ({"url": "http://example.com/x", "label": "l" * 257}, "label"),
    ):
        status, error, _ = await send_json(http, "POST", f"/objects/{object_id}/instances", body)
        assert status == 400 and fault in error["summary"], error
    for n in range(16):  # the controlled instance is not one of them
        body = {"url": f"{url[:-3]}{n:03}", "label": f"{n:03}" + "l" * 253}
        status, error, _ = await send_json(http, "POST", f"/objects/{object_id}/instances", body)
        assert status == 201, error
    status, error, _ = await send_json(
        http, "POST", f"/objects/{object_id}/instances", {"url": url, "label": "17th"}
    )
    assert status == 400 and "more than 16" in error["summary"], error
    # Nor may a segment reusing the object add one.
    reuse = {
        "object_id": object_id,
        "timerange": "[1:0_2:0)",
        "ts_offset": "-1:0",
        "get_urls": [{"url": "http://example.com/y", "label": "17th"}],
    }
    status, error = await post(http, flow["id"], reuse)
    assert status == 400 and "more than 16" in error["summary"], error
    urls = (await get_json(http, f"/objects/{object_id}"))["get_urls"]
    assert len([u for u in urls if not u["presigned"]]) == 16
    assert len(await get_json(http, f"/flows/{flow['id']}/segments")) == 1
