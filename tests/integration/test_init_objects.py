"""Init objects (ADR 0045): allocated with their own content type, linked at registration,
never timed, never media objects, and collected with the last media object using them."""

from __future__ import annotations

from typing import Any

import aiohttp

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import (
    eventually,
    get_json,
    post,
    put_flow,
    send_json,
    stored_bytes,
    video_flow,
)


def fmp4_flow() -> dict[str, Any]:
    flow = video_flow(container="video/mp4")
    flow["essence_parameters"]["init_segments"] = True
    return flow


async def upload(
    http: aiohttp.ClientSession,
    flow_id: str,
    payloads: list[bytes],
    content_type: str | None = None,
) -> list[str]:
    request: dict[str, Any] = {"limit": len(payloads)}
    if content_type:
        request["content_type"] = content_type
    async with http.post(f"/flows/{flow_id}/storage", json=request) as resp:
        assert resp.status == 201, await resp.text()
        media_objects = (await resp.json())["media_objects"]
    async with aiohttp.ClientSession() as anonymous:
        for item, payload in zip(media_objects, payloads, strict=True):
            put_url = item["put_url"]
            assert put_url["content-type"] == (content_type or "video/mp4")
            async with anonymous.put(
                put_url["url"], data=payload, headers={"Content-Type": put_url["content-type"]}
            ) as resp:
                assert resp.status == 200
    return [item["object_id"] for item in media_objects]


async def test_init_objects(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow = fmp4_flow()
    await put_flow(http, flow)
    flow_id = flow["id"]
    (init,) = await upload(http, flow_id, [b"ftyp moov"], content_type="application/mp4")
    media = await upload(http, flow_id, [b"moof mdat 0", b"moof mdat 1", b"moof mdat 2"])

    def segment(i: int, **extra: Any) -> dict[str, Any]:
        return {"object_id": media[i], "timerange": f"[{i}:0_{i + 1}:0)", **extra}

    # A flow with init_segments needs an init object for every new media object.
    status, error = await post(http, flow_id, segment(0))
    assert status == 400 and "init_object_id" in error["summary"]
    # An object allocated as an init object (its own content type) is not a media object.
    status, error = await post(http, flow_id, {"object_id": init, "timerange": "[9:0_10:0)"})
    assert status == 400, error
    status, body = await post(
        http, flow_id, [segment(0, init_object_id=init), segment(1, init_object_id=init)]
    )
    assert status == 201, body

    segments = await get_json(http, f"/flows/{flow_id}/segments")
    spec.validate_list(segments, "flow-segment.json")
    linked = segments[0]["init_object"]
    assert linked["object_id"] == init
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(linked["get_urls"][0]["url"]) as resp,
    ):
        assert await resp.read() == b"ftyp moov"
    assert (await get_json(http, f"/flows/{flow_id}/segments?accept_get_urls="))[0]["init_object"][
        "get_urls"
    ] == []
    media_view = await get_json(http, f"/objects/{media[0]}")
    spec.validate(media_view, "object.json")
    assert media_view["init_object"]["id"] == init and media_view["init_object"]["get_urls"]
    init_view = await get_json(http, f"/objects/{init}")
    spec.validate(init_view, "object.json")
    assert "timerange" not in init_view and "init_object" not in init_view
    assert init_view["referenced_by_flows"] == [flow_id]  # through its media objects

    # Roles are exclusive, and a reused media object keeps its init object.
    status, error = await post(http, flow_id, {"object_id": init, "timerange": "[9:0_10:0)"})
    assert status == 400 and "init object" in error["summary"]
    status, error = await post(http, flow_id, segment(2, init_object_id=media[0]))
    assert status == 400 and "media object" in error["summary"]
    other = fmp4_flow()
    await put_flow(http, other)
    status, error = await post(
        http,
        other["id"],
        {"object_id": media[0], "timerange": "[0:0_1:0)", "init_object_id": media[2]},
    )
    assert status == 400 and "cannot change" in error["summary"]
    assert (await post(http, other["id"], {"object_id": media[0], "timerange": "[0:0_1:0)"}))[
        0
    ] == 201

    # Reference counting: the init object lives while any media object using it does.
    status, _, _ = await send_json(http, "DELETE", f"/flows/{flow_id}/segments?timerange=[1:0_2:0)")
    assert status == 204

    async def gone(object_id: str) -> bool:
        return await stored_bytes(tams_stack, object_id) is None

    await eventually(lambda: gone(media[1]), "the unreferenced media object deleted")
    assert await stored_bytes(tams_stack, init) == b"ftyp moov"
    for flow_of_segment in (flow_id, other["id"]):
        status, _, _ = await send_json(http, "DELETE", f"/flows/{flow_of_segment}")
        assert status == 204
    await eventually(lambda: gone(media[0]), "the last media object deleted")
    await eventually(lambda: gone(init), "its init object deleted with it")
    await get_json(http, f"/objects/{init}", status=404)


async def test_the_content_type_may_be_spelt_as_the_spec_text_spells_it(
    http: aiohttp.ClientSession,
) -> None:
    """The schema says `content_type`, the spec's prose `content-type`: both allocate an
    init object with its own type; both at once must agree."""
    flow = fmp4_flow()
    await put_flow(http, flow)
    for request in (
        {"limit": 1, "content-type": "application/mp4"},
        {"limit": 1, "content_type": "application/mp4", "content-type": "application/mp4"},
    ):
        async with http.post(f"/flows/{flow['id']}/storage", json=request) as resp:
            assert resp.status == 201, await resp.text()
            (allocated,) = (await resp.json())["media_objects"]
            assert allocated["put_url"]["content-type"] == "application/mp4"
    request = {"limit": 1, "content_type": "application/mp4", "content-type": "video/mp4"}
    async with http.post(f"/flows/{flow['id']}/storage", json=request) as resp:
        assert resp.status == 400
        assert "differ" in (await resp.json())["summary"]
