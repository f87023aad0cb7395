"""Malformed requests the models cannot see: bodies the HTTP layer cannot decode, repeated
and unknown query parameters. Each gets a 400 naming the fault, and changes nothing."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import allocate_and_upload, eventually, get_json, post, put_flow, video_flow


async def two_segments(http: aiohttp.ClientSession) -> str:
    flow = video_flow()
    await put_flow(http, flow)
    ids = await allocate_and_upload(http, flow["id"], [b"a", b"b"])
    for n, object_id in enumerate(ids):
        body = {"object_id": object_id, "timerange": f"[{n}:0_{n + 1}:0)"}
        assert (await post(http, flow["id"], body))[0] == 201
    return str(flow["id"])


async def expect_400(resp: aiohttp.ClientResponse, spec: SpecValidator, *fragments: str) -> None:
    assert resp.status == 400, await resp.text()
    error = await resp.json()
    spec.validate(error, "error.json")
    for fragment in fragments:
        assert fragment in error["summary"], error


async def test_a_misspelt_filter_does_not_widen_a_deletion(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    """Without its filter, DELETE /flows/{id}/segments deletes every segment: a parameter
    it does not know is refused, not ignored."""
    flow_id = await two_segments(http)
    for query in ("Timerange=[0:0_1:0)", "timerange=[0:0_1:0)&bogus=1", "limit=abc"):
        async with http.delete(f"/flows/{flow_id}/segments?{query}") as resp:
            await expect_400(resp, spec, "unknown query parameter", "timerange, object_id")
    async with http.delete(f"/flows/{flow_id}/segments/tags/genre?Timerange=_") as resp:
        await expect_400(resp, spec, "Timerange")
    async with http.delete(f"/flows/{flow_id}?force=1") as resp:
        await expect_400(resp, spec, "force", "takes none")
    assert len(await get_json(http, f"/flows/{flow_id}/segments")) == 2
    async with http.delete(f"/flows/{flow_id}/segments?timerange=[0:0_1:0)") as resp:
        assert resp.status == 204
    assert len(await get_json(http, f"/flows/{flow_id}/segments")) == 1


async def test_a_parameter_given_twice_is_refused(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    """Reading the first value would drop the second, valid or not."""
    flow_id = await two_segments(http)
    for method, query in (
        ("DELETE", "timerange=[0:0_1:0)&timerange=bad"),
        ("DELETE", "timerange=bad&timerange=[0:0_1:0)"),
        ("GET", "limit=1&limit=2"),
        ("GET", "timerange=_&reverse_order=true&timerange=[0:0_1:0)"),
    ):
        async with http.request(method, f"/flows/{flow_id}/segments?{query}") as resp:
            await expect_400(resp, spec, "more than once")
    async with http.get("/flows?tag.genre=news&tag.genre=sport") as resp:
        await expect_400(resp, spec, "tag.genre")
    assert len(await get_json(http, f"/flows/{flow_id}/segments")) == 2


async def test_a_tag_filter_must_name_its_tag(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    for query in ("tag.=news", "tag_exists.=true"):
        async with http.get(f"/flows?{query}") as resp:
            await expect_400(resp, spec, "names no tag")


async def test_a_body_that_cannot_be_decoded_is_a_400(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    async with http.put(
        f"/flows/{flow['id']}/label",
        data=b'"not gzip at all"',
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    ) as resp:
        await expect_400(resp, spec, "could not be decoded")
    assert (await get_json(http, f"/flows/{flow['id']}")).get("label") is None


async def test_an_uncontrolled_instance_url_is_one_line(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    (object_id,) = await allocate_and_upload(http, flow["id"], [b"a"])
    assert (await post(http, flow["id"], {"object_id": object_id, "timerange": "[0:0_1:0)"}))[
        0
    ] == 201
    for url in ("http://example.com/y\r\nX: 1", "http://example.com/a b", "ftp://example.com/"):
        body = {"url": url, "label": "partner"}
        async with http.post(f"/objects/{object_id}/instances", json=body) as resp:
            await expect_400(resp, spec, "url")
    urls = [u["url"] for u in (await get_json(http, f"/objects/{object_id}"))["get_urls"]]
    assert all("example.com" not in url for url in urls)


async def test_a_client_gone_mid_body_is_not_a_server_error(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """Nobody reads the answer, but operators do read the 5xx count."""
    flow = video_flow()
    await put_flow(http, flow)
    route = 'method="PUT",route="/flows/{flow_id}/label"'

    async def label_puts() -> dict[str, float]:
        async with http.get("/metrics") as resp:
            text = await resp.text()
        counts = {}
        for line in text.splitlines():
            if line.startswith("tams_http_request_seconds_count{") and route in line:
                status = line.split('status="')[1].split('"')[0]
                counts[status] = float(line.rsplit(" ", 1)[1])
        return counts

    before = await label_puts()
    gateway = urlsplit(tams_stack.gateway_url)
    _, writer = await asyncio.open_connection(gateway.hostname, gateway.port)
    authorization = tams_stack.client_headers()["Authorization"]
    writer.write(
        f"PUT /flows/{flow['id']}/label HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"cut'.encode()
    )
    await writer.drain()
    writer.close()

    async def counted() -> dict[str, float] | None:
        after = await label_puts()
        return after if sum(after.values()) > sum(before.values()) else None

    after = await eventually(counted, "the cut request to be counted")
    assert after.get("5xx", 0) == before.get("5xx", 0), after
    assert after["4xx"] == before.get("4xx", 0) + 1
    assert (await get_json(http, f"/flows/{flow['id']}")).get("label") is None


async def test_a_body_over_the_limit_is_413_naming_it(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    """However the body comes (a Content-Length, chunks, or compressed smaller than it
    decodes), the answer says what the limit is."""
    flow = video_flow()
    await put_flow(http, flow)
    limit = 16 * 1024 * 1024  # TAMS_GATEWAY_MAX_BODY_BYTES's default, kept by the test stack
    over = json.dumps("x" * limit).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield over

    headers = {"Content-Type": "application/json"}
    for data, extra in (
        (over, {}),
        (chunks(), {}),
        (gzip.compress(over), {"Content-Encoding": "gzip"}),
    ):
        async with http.put(
            f"/flows/{flow['id']}/description", data=data, headers={**headers, **extra}
        ) as resp:
            assert resp.status == 413, await resp.text()
            error = await resp.json()
        spec.validate(error, "error.json")
        assert str(limit) in error["summary"], error
    assert (await get_json(http, f"/flows/{flow['id']}")).get("description") is None
