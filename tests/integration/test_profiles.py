"""Flow profiles (ADR 0047): immutable, linked flows take their technical metadata."""

from __future__ import annotations

import aiohttp

from tams_stack.testing import SpecValidator

from .helpers import get_json, list_all, new_id, put_flow, video_flow


def profile(profile_id: str, label: str) -> dict:  # type: ignore[type-arg]
    return {
        "id": profile_id,
        "label": label,
        "flow_metadata": {
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "container": "video/mp2t",
            "avg_bit_rate": 2479,
            "segment_duration": {"numerator": 6, "denominator": 1},
            "essence_parameters": {
                "frame_rate": {"numerator": 25, "denominator": 1},
                "frame_width": 1280,
                "frame_height": 720,
            },
        },
    }


async def test_profiles_are_immutable_and_listed(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    profile_id = new_id()
    body = profile(profile_id, f"720p {profile_id}")
    async with http.post(f"/service/profiles/{profile_id}", json=body) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    spec.validate(created, "profile.json")
    assert created["created"]
    async with http.post(f"/service/profiles/{profile_id}", json=body) as resp:
        assert resp.status == 400
    assert (await get_json(http, f"/service/profiles/{profile_id}"))["id"] == profile_id
    await get_json(http, f"/service/profiles/{new_id()}", status=404)
    listed = await get_json(http, f"/service/profiles?label=720p {profile_id}")
    assert [p["id"] for p in listed] == [profile_id]
    async with http.get("/service/profiles?format=urn:x-nmos:format:multi") as resp:
        assert resp.status == 400


async def test_flow_linked_to_a_profile(http: aiohttp.ClientSession) -> None:
    profile_id = new_id()
    async with http.post(f"/service/profiles/{profile_id}", json=profile(profile_id, "p")) as resp:
        assert resp.status == 201
    flow_id = new_id()
    linked = {"id": flow_id, "source_id": new_id(), "profile_id": profile_id, "label": "cam"}
    created = await put_flow(http, linked)
    assert created["profile_id"] == profile_id
    assert created["codec"] == "video/h264"
    assert created["essence_parameters"]["frame_width"] == 1280
    found = await list_all(http, f"/flows?profile_id={profile_id}")
    assert [f["id"] for f in found] == [flow_id]
    async with http.put(f"/flows/{flow_id}/avg_bit_rate", json=100) as resp:
        assert resp.status == 400  # comes from the profile

    mixed = {**linked, "id": new_id(), "codec": "video/h264"}
    async with http.put(f"/flows/{mixed['id']}", json=mixed) as resp:
        assert resp.status == 400
    unknown = {**linked, "id": new_id(), "profile_id": new_id()}
    async with http.put(f"/flows/{unknown['id']}", json=unknown) as resp:
        assert resp.status == 400

    unlinked = video_flow(flow_id=flow_id, source_id=linked["source_id"], profile_id="")
    await put_flow(http, unlinked)
    got = await get_json(http, f"/flows/{flow_id}")
    assert "profile_id" not in got
