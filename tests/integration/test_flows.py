"""Flows end to end: PUT through Kafka to the catalog, reads from the store, events."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import (
    AUDIO,
    EventReader,
    audio_flow,
    get_json,
    list_all,
    multi_flow,
    new_id,
    put_flow,
    video_flow,
)

Event = dict[str, Any]


async def test_put_creates_with_201_and_replaces_with_204(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow = video_flow(label="camera 1", tags={"genre": "news"})
    async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    spec.validate(created, "flow-get.json")
    assert created["label"] == "camera 1"
    assert created["tags"] == {"genre": "news"}
    for field in ("created", "metadata_updated", "metadata_version"):
        assert field in created

    replacement = {**flow, "label": "camera one"}
    del replacement["tags"]
    async with http.put(f"/flows/{flow['id']}", json=replacement) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    stored = await get_json(http, f"/flows/{flow['id']}")
    spec.validate(stored, "flow-get.json")
    assert stored["label"] == "camera one"
    assert stored["tags"] == {}  # PUT replaces tags wholesale
    assert stored["created"] == created["created"]
    assert stored["metadata_version"] != created["metadata_version"]


async def test_server_managed_fields_are_not_taken_from_the_client(
    http: aiohttp.ClientSession,
) -> None:
    flow = video_flow(
        created="2001-01-01T00:00:00Z",
        metadata_updated="2001-01-01T00:00:00Z",
        segments_updated="2001-01-01T00:00:00Z",
        timerange="[0:0_10:0)",
        collected_by=[new_id()],
    )
    created = await put_flow(http, flow)
    assert not created["created"].startswith("2001")
    assert not created["metadata_updated"].startswith("2001")
    assert "segments_updated" not in created
    assert "timerange" not in created
    assert "collected_by" not in created


async def test_source_is_born_and_dies_with_its_flows(http: aiohttp.ClientSession) -> None:
    source_id = new_id()
    first = video_flow(source_id=source_id)
    second = video_flow(source_id=source_id)
    await put_flow(http, first)
    await put_flow(http, second)
    source = await get_json(http, f"/sources/{source_id}")
    assert source["format"] == first["format"]

    async with http.delete(f"/flows/{first['id']}") as resp:
        assert resp.status == 204
    await get_json(http, f"/sources/{source_id}")  # still has a flow
    async with http.delete(f"/flows/{second['id']}") as resp:
        assert resp.status == 204
    await get_json(http, f"/sources/{source_id}", status=404)
    await get_json(http, f"/flows/{second['id']}", status=404)


async def test_flow_format_must_match_its_source(http: aiohttp.ClientSession) -> None:
    source_id = new_id()
    await put_flow(http, video_flow(source_id=source_id))
    clash = audio_flow(source_id=source_id)
    async with http.put(f"/flows/{clash['id']}", json=clash) as resp:
        assert resp.status == 400
        assert AUDIO in (await resp.json())["summary"]


async def test_bad_flow_bodies_are_400_with_a_reason(http: aiohttp.ClientSession) -> None:
    flow_id = new_id()
    good = video_flow(flow_id=flow_id)
    cases = {
        "mismatched id": {**good, "id": new_id()},
        "no source": {k: v for k, v in good.items() if k != "source_id"},
        "unknown format": {**good, "format": "urn:x-nmos:format:smell"},
        "frame_rate with vfr": {
            **good,
            "essence_parameters": {**good["essence_parameters"], "vfr": True},
        },
        "not an object": ["a list"],
    }
    # The schemas' exclusiveMinimum 0 and enums; integers a 64-bit column cannot hold.
    for name, change in {
        "zero width": {"frame_width": 0},
        "zero frame rate": {"frame_rate": {"numerator": 0}},
        "negative frame rate": {"frame_rate": {"numerator": -25, "denominator": 1}},
        "zero bit depth": {"bit_depth": 0},
        "unknown unc_type": {"unc_parameters": {"unc_type": "bogus"}},
        "width beyond int64": {"frame_width": 2**63},
    }.items():
        cases[name] = {**good, "essence_parameters": {**good["essence_parameters"], **change}}
    cases["zero segment duration"] = {**good, "segment_duration": {"numerator": 0}}
    for name, body in cases.items():
        async with http.put(f"/flows/{flow_id}", json=body) as resp:
            assert resp.status == 400, f"{name}: {resp.status}"
            error = await resp.json()
            assert error["type"] and error["summary"], name
    async with http.put(
        f"/flows/{flow_id}", data=b"{", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
    await get_json(http, f"/flows/{flow_id}", status=404)  # nothing half-written


async def test_errors_name_the_field_not_the_union(http: aiohttp.ClientSession) -> None:
    """A flow is validated as one of the format's models: the error names the field."""
    flow_id = new_id()
    good = video_flow(flow_id=flow_id)
    wide = {**good["essence_parameters"], "frame_width": "wide"}
    for body, summary in (
        ({**good, "format": None}, "format: missing, or not a string"),
        ({**good, "format": "urn:x-nmos:format:smell"}, "format: 'urn:x-nmos:format:smell' is"),
        ({**good, "essence_parameters": wide}, "essence_parameters.frame_width: "),
    ):
        async with http.put(f"/flows/{flow_id}", json=body) as resp:
            assert resp.status == 400
            assert (await resp.json())["summary"].startswith(summary), body


async def test_a_write_too_large_for_one_command_is_413(http: aiohttp.ClientSession) -> None:
    """Under the gateway's body limit but over a Kafka message's: a client error that no
    retry can fix, not a 503."""
    flow = video_flow()
    huge = {**flow, "description": "x" * 1_100_000}
    async with http.put(f"/flows/{flow['id']}", json=huge) as resp:
        assert resp.status == 413, await resp.text()
        error = await resp.json()
        assert "Retry-After" not in resp.headers
        assert error["type"] == "RequestEntityTooLarge" and "send less" in error["summary"]
    await get_json(http, f"/flows/{flow['id']}", status=404)


async def test_a_flow_too_large_for_its_events_is_refused_and_the_catalog_goes_on(
    http: aiohttp.ClientSession,
) -> None:
    """Each change publishes the whole flow in an event, which must fit a Kafka message:
    a document over 512 KiB is a 400, whether it comes in one request or grows over two.
    Before, such an event blocked every later catalog write."""
    flow = video_flow()
    big = {**flow, "description": "x" * 600_000}
    async with http.put(f"/flows/{flow['id']}", json=big) as resp:
        assert resp.status == 400, await resp.text()
        assert "bytes of JSON" in (await resp.json())["summary"]
    await put_flow(http, {**flow, "description": "x" * 300_000})
    async with http.put(f"/flows/{flow['id']}/tags/notes", json="y" * 300_000) as resp:
        assert resp.status == 400, await resp.text()
    # The catalog still takes changes.
    async with http.put(f"/flows/{flow['id']}/label", json="fine") as resp:
        assert resp.status == 204
    assert (await get_json(http, f"/flows/{flow['id']}"))["label"] == "fine"


async def test_a_change_whose_events_would_not_fit_a_message_changes_nothing(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """A source's events carry its `source_collection`, the union of its flows'
    collections, which no document's own size limit bounds. A flow adding a third 400 KB role
    to it was created (201) while the events of the change, too large for a Kafka message,
    were dropped: subscribers never heard of the flow. It is refused whole now."""
    source_id = new_id()
    members = [video_flow() for _ in range(3)]
    collectors = [
        video_flow(source_id=source_id, flow_collection=[{"id": m["id"], "role": r * 400_000}])
        for m, r in zip(members, "abc", strict=True)
    ]
    for flow in [*members, *collectors[:2]]:
        await put_flow(http, flow)
    async with http.put(f"/flows/{collectors[2]['id']}", json=collectors[2]) as resp:
        assert resp.status == 400, (await resp.text())[:300]
        assert "nothing was changed" in (await resp.json())["summary"]
    await get_json(http, f"/flows/{collectors[2]['id']}", status=404)
    source = await get_json(http, f"/sources/{source_id}")
    assert len(source["source_collection"]) == 2
    # Smaller, it is made, and its events are published.
    smaller = {**collectors[2], "flow_collection": [{"id": members[2]["id"], "role": "c"}]}

    def published(evs: list[Event]) -> bool:
        keys = {(e["event_type"], e["key"]) for e in evs}
        return {("flows/created", smaller["id"]), ("sources/updated", source_id)} <= keys

    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        await put_flow(http, smaller)
        await reader.until(published)


async def test_unknown_ids_are_404(http: aiohttp.ClientSession) -> None:
    missing = new_id()
    for path in (
        f"/flows/{missing}",
        f"/flows/{missing}/tags",
        f"/flows/{missing}/label",
        f"/sources/{missing}",
        f"/sources/{missing}/tags",
    ):
        await get_json(http, path, status=404)
    async with http.put(f"/flows/{missing}/tags/x", json="y") as resp:
        assert resp.status == 404
    async with http.delete(f"/flows/{missing}") as resp:
        assert resp.status == 404


async def test_ids_outside_the_schemas_uuid_pattern(http: aiohttp.ClientSession) -> None:
    """uuid.json allows versions 1 to 5 of the RFC variant: a version 7 or nil id in the path
    names nothing (404), and in a filter it is a 400, as it can match nothing."""
    for odd in ("0190c5f0-1234-7abc-8def-0123456789ab", "00000000-0000-0000-0000-000000000000"):
        await get_json(http, f"/flows/{odd}", status=404)
        async with http.get(f"/flows?source_id={odd}") as resp:
            assert resp.status == 400, odd
            assert "source_id" in (await resp.json())["summary"]
    # Nor may a valid one carry a trailing newline (`$` alone would let it through).
    newline = URL(f"/flows?source_id={video_flow()['source_id']}%0A", encoded=True)
    async with http.get(newline) as resp:
        assert resp.status == 400


async def test_property_endpoints(http: aiohttp.ClientSession) -> None:
    flow = video_flow(label="before")
    await put_flow(http, flow)
    base = f"/flows/{flow['id']}"
    for prop, value in (
        ("label", "after"),
        ("description", "a description"),
        ("max_bit_rate", 8000),
        ("avg_bit_rate", 5000),
    ):
        async with http.put(f"{base}/{prop}", json=value) as resp:
            assert resp.status == 204, await resp.text()
        assert await get_json(http, f"{base}/{prop}") == value
        async with http.head(f"{base}/{prop}") as resp:
            assert resp.status == 200
            assert await resp.read() == b""
    async with http.delete(f"{base}/description") as resp:
        assert resp.status == 204
    await get_json(http, f"{base}/description", status=404)
    for prop, bad in (
        ("label", 5),
        ("max_bit_rate", -1),
        ("max_bit_rate", 2**63),  # more than a 64-bit column holds
        ("avg_bit_rate", "fast"),
        ("read_only", "yes"),
    ):
        async with http.put(f"{base}/{prop}", json=bad) as resp:
            assert resp.status == 400, prop
    async with http.delete(f"{base}/read_only") as resp:
        assert resp.status == 405


async def test_tags_single_and_multi_valued(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    base = f"/flows/{flow['id']}/tags"
    async with http.put(f"{base}/genre", json="news") as resp:
        assert resp.status == 204
    async with http.put(f"{base}/language", json=["en", "cy"]) as resp:
        assert resp.status == 204
    async with http.put(f"{base}/weird%20name.x", json="é ü 漢") as resp:
        assert resp.status == 204
    assert await get_json(http, base) == {
        "genre": "news",
        "language": ["en", "cy"],
        "weird name.x": "é ü 漢",
    }
    assert await get_json(http, f"{base}/language") == ["en", "cy"]
    async with http.put(f"{base}/bad", json={"not": "a tag"}) as resp:
        assert resp.status == 400
    async with http.delete(f"{base}/genre") as resp:
        assert resp.status == 204
    await get_json(http, f"{base}/genre", status=404)
    async with http.delete(f"{base}/genre") as resp:
        assert resp.status == 404


async def test_read_only_flow_refuses_writes_except_read_only(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    base = f"/flows/{flow['id']}"
    async with http.put(f"{base}/read_only", json=True) as resp:
        assert resp.status == 204
    assert await get_json(http, f"{base}/read_only") is True
    for method, path, body in (
        ("PUT", base, flow),
        ("PUT", f"{base}/label", "x"),
        ("PUT", f"{base}/tags/a", "b"),
        ("DELETE", f"{base}/tags/a", None),
        ("PUT", f"{base}/max_bit_rate", 1),
        ("DELETE", base, None),
    ):
        async with http.request(method, path, json=body) as resp:
            assert resp.status == 403, f"{method} {path}: {resp.status}"
    async with http.put(f"{base}/read_only", json=False) as resp:
        assert resp.status == 204
    async with http.put(f"{base}/label", json="x") as resp:
        assert resp.status == 204


async def test_a_collection_change_updates_the_sources_it_changes(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    # Sources show collections derived from their flows' (`source_collection`,
    # `collected_by`): when those change, so do the sources, and each says so.
    video, multi = video_flow(), multi_flow([])
    del multi["flow_collection"]
    await put_flow(http, video)
    await put_flow(http, multi)
    created = {
        source_id: (await get_json(http, f"/sources/{source_id}"))["updated"]
        for source_id in (video["source_id"], multi["source_id"])
    }
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:

        def updated(evs: list[dict[str, Any]], source_id: str) -> list[dict[str, Any]]:
            return [
                e["event"]["source"]
                for e in evs
                if e["event_type"] == "sources/updated" and e["key"] == source_id
            ]

        async with http.put(
            f"/flows/{multi['id']}/flow_collection", json=[{"id": video["id"], "role": "v"}]
        ) as resp:
            assert resp.status == 204, await resp.text()
        seen = await reader.until(
            lambda evs: updated(evs, multi["source_id"]) and updated(evs, video["source_id"])
        )
        (collector,) = updated(seen, multi["source_id"])
        assert [s["id"] for s in collector["source_collection"]] == [video["source_id"]]
        (member,) = updated(seen, video["source_id"])
        assert member["collected_by"] == [multi["source_id"]]
        # Their `updated` moves with them, in the events and in the store (sort_by=updated).
        for source in (collector, member):
            assert source["updated"] > created[source["id"]]
            assert (await get_json(http, f"/sources/{source['id']}")) == source

        # The member goes: the collector's source loses it.
        async with http.delete(f"/flows/{video['id']}") as resp:
            assert resp.status == 204
        seen = await reader.until(lambda evs: len(updated(evs, multi["source_id"])) == 2)
        assert "source_collection" not in updated(seen, multi["source_id"])[1]

    # The other way round: the collector goes, and its member's source is collected no more.
    member_flow, collector_flow = video_flow(), multi_flow([])
    await put_flow(http, member_flow)
    collector_flow["flow_collection"] = [{"id": member_flow["id"], "role": "v"}]
    await put_flow(http, collector_flow)
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        async with http.delete(f"/flows/{collector_flow['id']}") as resp:
            assert resp.status == 204
        # (The set-up's own sources/updated, with the collection, may be read first.)
        await reader.until(
            lambda evs: any(
                "collected_by" not in source for source in updated(evs, member_flow["source_id"])
            )
        )


async def test_a_source_created_or_moved_to_announces_its_derived_collections(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    # A source's collections are derived from its flows', so they change when a flow moves
    # to another source as much as when a collection changes, and a source born of a flow
    # that collects others is born with its `source_collection`: the events say so.
    member = video_flow()
    await put_flow(http, member)
    collector = multi_flow([member["id"]])

    def of(evs: list[Event], kind: str, source_id: str) -> list[Event]:
        return [
            e["event"]["source"]
            for e in evs
            if e["event_type"] == f"sources/{kind}" and e["key"] == source_id
        ]

    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        await put_flow(http, collector)
        seen = await reader.until(lambda evs: of(evs, "created", collector["source_id"]))
        (born,) = of(seen, "created", collector["source_id"])
        assert [s["id"] for s in born["source_collection"]] == [member["source_id"]]

        # The member moves: the collector's source now collects the member's new source.
        member_source = new_id()
        await put_flow(http, {**member, "source_id": member_source})
        seen = await reader.until(
            lambda evs: (
                of(evs, "created", member_source) and of(evs, "updated", collector["source_id"])
            )
        )
        (moved_to,) = of(seen, "created", member_source)
        assert moved_to["collected_by"] == [collector["source_id"]]
        (changed,) = of(seen, "updated", collector["source_id"])
        assert [s["id"] for s in changed["source_collection"]] == [member_source]
        assert changed == await get_json(http, f"/sources/{collector['source_id']}")

        # The collector moves: the member's source is collected by the collector's new one.
        collector_source = new_id()
        await put_flow(http, {**collector, "source_id": collector_source})
        seen = await reader.until(
            lambda evs: of(evs, "created", collector_source) and of(evs, "updated", member_source)
        )
        (moved_to,) = of(seen, "created", collector_source)
        assert [s["id"] for s in moved_to["source_collection"]] == [member_source]
        (changed,) = of(seen, "updated", member_source)
        assert changed["collected_by"] == [collector_source]
        assert changed == await get_json(http, f"/sources/{member_source}")


async def test_collections_and_collected_by(http: aiohttp.ClientSession) -> None:
    video, audio = video_flow(), audio_flow()
    await put_flow(http, video)
    await put_flow(http, audio)
    multi = multi_flow([video["id"], audio["id"]])
    created = await put_flow(http, multi)
    assert [m["id"] for m in created["flow_collection"]] == [video["id"], audio["id"]]
    assert (await get_json(http, f"/flows/{video['id']}"))["collected_by"] == [multi["id"]]
    source = await get_json(http, f"/sources/{multi['source_id']}")
    assert [s["id"] for s in source["source_collection"]] == [
        video["source_id"],
        audio["source_id"],
    ]
    member_source = await get_json(http, f"/sources/{video['source_id']}")
    assert member_source["collected_by"] == [multi["source_id"]]

    collected = await list_all(http, f"/flows?collected_by_ids={multi['id']}")
    assert {f["id"] for f in collected} == {video["id"], audio["id"]}
    top_level = {f["id"] for f in await list_all(http, "/flows?collected_by_ids=")}
    assert multi["id"] in top_level and video["id"] not in top_level

    bad = multi_flow([new_id()])
    async with http.put(f"/flows/{bad['id']}", json=bad) as resp:
        assert resp.status == 400  # members must exist
    selfish = multi_flow([video["id"]])
    selfish["flow_collection"].append({"id": selfish["id"]})
    async with http.put(f"/flows/{selfish['id']}", json=selfish) as resp:
        assert resp.status == 400

    # Nor through others: `multi` collects `outer`, which collects `inner`, which would
    # collect `multi`.
    inner = multi_flow([video["id"]])
    await put_flow(http, inner)
    outer = multi_flow([inner["id"]])
    await put_flow(http, outer)
    async with http.put(
        f"/flows/{multi['id']}/flow_collection",
        json=[*created["flow_collection"], {"id": outer["id"], "role": "outer"}],
    ) as resp:
        assert resp.status == 204, await resp.text()
    for collector, members in ((inner, [video["id"], multi["id"]]), (outer, [multi["id"]])):
        cyclic = {**collector, "flow_collection": [{"id": m, "role": m} for m in members]}
        async with http.put(f"/flows/{collector['id']}", json=cyclic) as resp:
            assert resp.status == 400
            assert "would collect itself" in (await resp.json())["summary"]
    assert (await get_json(http, f"/flows/{inner['id']}"))["flow_collection"] == inner[
        "flow_collection"
    ]


async def test_a_deleted_member_leaves_its_collections_as_a_change_of_each(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    video, audio = video_flow(), audio_flow()
    await put_flow(http, video)
    await put_flow(http, audio)
    multi = await put_flow(http, multi_flow([video["id"], audio["id"]]))
    frozen = await put_flow(http, multi_flow([video["id"]]))
    async with http.put(f"/flows/{frozen['id']}/read_only", json=True) as resp:
        assert resp.status == 204
    frozen = await get_json(http, f"/flows/{frozen['id']}")
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        async with http.delete(f"/flows/{video['id']}") as resp:
            assert resp.status == 204

        def updates(evs: list[dict[str, Any]]) -> set[str]:
            return {e["key"] for e in evs if e["event_type"] == "flows/updated"}

        await reader.until(lambda evs: {multi["id"], frozen["id"]} <= updates(evs))
    after = await get_json(http, f"/flows/{multi['id']}")
    assert after["flow_collection"] == [{"id": audio["id"], "role": "track1"}]
    assert after["metadata_version"] != multi["metadata_version"]
    assert after["metadata_updated"] > multi["metadata_updated"]
    # Read-only, yet a collection never names a flow that does not exist.
    after = await get_json(http, f"/flows/{frozen['id']}")
    assert "flow_collection" not in after and after["read_only"] is True
    assert after["metadata_version"] != frozen["metadata_version"]


async def test_collections_of_one_source_agree_on_roles_and_order(
    http: aiohttp.ClientSession,
) -> None:
    video, audio, data = video_flow(), audio_flow(), video_flow()
    for flow in (video, audio, data):
        await put_flow(http, flow)
    source_id = new_id()
    first = multi_flow([video["id"], audio["id"]], source_id=source_id)
    first["flow_collection"] = [
        {"id": video["id"], "role": "video"},
        {"id": audio["id"], "role": "audio"},
    ]
    await put_flow(http, first)
    # Other renditions of the same source: the same roles, in the same order; fewer is fine.
    await put_flow(http, {**first, "id": new_id()})
    fewer = [{"id": video["id"], "role": "video"}]
    await put_flow(http, {**first, "id": new_id(), "flow_collection": fewer})
    second = {**multi_flow([]), "source_id": source_id}
    for collection, why in (
        ([{"id": audio["id"], "role": "sound"}, {"id": video["id"], "role": "video"}], "role"),
        ([{"id": audio["id"], "role": "audio"}, {"id": video["id"], "role": "video"}], "order"),
    ):
        async with http.put(
            f"/flows/{second['id']}", json={**second, "flow_collection": collection}
        ) as resp:
            assert resp.status == 400, why
            assert why in (await resp.json())["summary"]
    await get_json(http, f"/flows/{second['id']}", status=404)
    # The same rule on the property; the flow itself may change its own collection.
    async with http.put(
        f"/flows/{first['id']}/flow_collection",
        json=[{"id": audio["id"], "role": "audio"}, {"id": video["id"], "role": "video"}],
    ) as resp:
        assert resp.status == 400
    async with http.put(
        f"/flows/{first['id']}/flow_collection",
        json=[{"id": video["id"], "role": "video"}, {"id": data["id"], "role": "data"}],
    ) as resp:
        assert resp.status == 204


async def test_deleting_a_property_that_is_not_set_changes_nothing(
    http: aiohttp.ClientSession,
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    before = await get_json(http, f"/flows/{flow['id']}")
    for prop in ("label", "description", "max_bit_rate", "avg_bit_rate"):
        async with http.delete(f"/flows/{flow['id']}/{prop}") as resp:
            assert resp.status == 204, prop
    for prop in ("label", "description"):
        async with http.delete(f"/sources/{flow['source_id']}/{prop}") as resp:
            assert resp.status == 204, prop
    after = await get_json(http, f"/flows/{flow['id']}")
    assert after["metadata_version"] == before["metadata_version"]


async def test_listing_filters(http: aiohttp.ClientSession) -> None:
    marker = new_id()
    a = video_flow(label=f"A {marker}", tags={"run": marker, "lang": ["en", "fr"]})
    b = audio_flow(label=f"B {marker}", tags={"run": marker, "lang": "cy"})
    c = video_flow(label=f"C {marker}", tags={"run": marker, "credit": "BBC, 2026"})
    c["essence_parameters"] = {**c["essence_parameters"], "frame_width": 1280, "frame_height": 720}
    # An image flow of the same size: the frame size filters are on video flows only.
    still = {
        **video_flow(tags={"run": marker, "note": ""}, codec="image/jpeg", container="image/jpeg"),
        "format": "urn:x-tam:format:image",
        "essence_parameters": {"frame_width": 1280, "frame_height": 720},
    }
    for flow in (a, b, c, still):
        await put_flow(http, flow)
    run = f"tag.run={marker}"

    async def ids(query: str) -> set[str]:
        return {f["id"] for f in await list_all(http, f"/flows?{run}&{query}")}

    assert await ids("") == {a["id"], b["id"], c["id"], still["id"]}
    assert await ids("format=urn:x-nmos:format:audio") == {b["id"]}
    assert await ids("codec=video/h264") == {a["id"], c["id"]}
    assert await ids(f"label=A {marker}") == {a["id"]}
    assert await ids(f"source_id={a['source_id']}") == {a["id"]}
    assert await ids("frame_width=1280&frame_height=720") == {c["id"]}
    assert await ids("tag.lang=fr") == {a["id"]}
    assert await ids("tag.lang=cy,fr") == {a["id"], b["id"]}
    # An empty item is the empty value, which a tag may have.
    assert await ids("tag.note=") == {still["id"]}
    assert await ids("tag.note=,x") == {still["id"]}
    assert await ids("tag.lang=,fr") == {a["id"]}
    # A value with a comma is sent encoded; a literal comma separates values. (As sent:
    # a URL built from a string would decode the %2C.)
    for query, expected in (("BBC%2C%202026", {c["id"]}), ("BBC,%202026", set())):
        url = URL(f"/flows?{run}&tag.credit={query}", encoded=True)
        async with http.get(url) as resp:
            assert {f["id"] for f in await resp.json()} == expected, query
    assert await ids("tag_exists.lang=false") == {c["id"], still["id"]}
    assert await ids("tag_exists.lang=true") == {a["id"], b["id"]}
    assert await ids("timerange=()") == {a["id"], b["id"], c["id"], still["id"]}  # no segments
    assert await ids("timerange=[0:0_10:0)") == set()
    sources = {
        s["id"]
        for s in await list_all(
            http, f"/sources?format=urn:x-nmos:format:audio&label=nothing{marker}"
        )
    }
    assert sources == set()
    for bad in (
        "format=nonsense",
        "frame_width=wide",
        "codec=h264",
        "timerange=[1:0_x)",
        "sort_by=size",
        "reverse_order=maybe",
        "source_id=not-a-uuid",
        "limit=0",
        "page=garbage!",
        "status=running",
    ):
        async with http.get(f"/flows?{bad}") as resp:
            assert resp.status == 400, bad
            assert (await resp.json())["summary"]


async def test_sorting_and_paging(http: aiohttp.ClientSession, spec: SpecValidator) -> None:
    marker = new_id()
    labels = ["delta", "alpha", None, "charlie", "bravo", None, "echo"]
    flows = []
    for label in labels:
        flow = video_flow(tags={"sort": marker})
        if label:
            flow["label"] = label
        flows.append(flow)
        await put_flow(http, flow)
    base = f"/flows?tag.sort={marker}&limit=3"

    newest_first = await list_all(http, base)
    assert [f["id"] for f in newest_first] == [f["id"] for f in reversed(flows)]
    spec.validate_list(newest_first, "flow-get.json")
    oldest_first = await list_all(http, f"{base}&reverse_order=true")
    assert [f["id"] for f in oldest_first] == [f["id"] for f in flows]

    by_label = await list_all(http, f"{base}&sort_by=label")
    assert [f.get("label") for f in by_label[:5]] == ["alpha", "bravo", "charlie", "delta", "echo"]
    unlabelled = sorted(f["id"] for f in flows if "label" not in f)
    assert [f["id"] for f in by_label[5:]] == unlabelled
    reversed_label = await list_all(http, f"{base}&sort_by=label&reverse_order=true")
    assert reversed_label == list(reversed(by_label))

    async with http.get(base) as resp:
        assert resp.headers["X-Paging-Limit"] == "3"
        assert resp.headers["X-Paging-Count"] == "3"
        assert resp.headers["X-Paging-Reverse-Order"] == "false"
        assert "tag.sort" in resp.headers["Link"]
    async with http.head(base) as resp:
        assert resp.status == 200
        assert resp.headers["X-Paging-Count"] == "3"
        assert await resp.read() == b""
    async with http.get(f"/flows?tag.sort={marker}&limit=100000") as resp:
        assert int(resp.headers["X-Paging-Limit"]) <= 1000


async def test_link_keeps_the_query_as_sent(http: aiohttp.ClientSession) -> None:
    """`%2C` is a comma inside one tag value, `,` separates values: the next page must filter
    on what the first did."""
    marker = new_id()
    flows = [video_flow(tags={"pair": f"{marker},x"}) for _ in range(3)]
    for flow in flows:
        await put_flow(http, flow)
    await put_flow(http, video_flow(tags={"pair": marker}))
    await put_flow(http, video_flow(tags={"pair": "x"}))
    # `encoded=True`: yarl would otherwise decode the `%2C` before sending it.
    url: URL | None = URL(f"/flows?tag.pair={marker}%2Cx&limit=1", encoded=True)
    listed = []
    while url is not None:
        async with http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            listed += await resp.json()
            link = resp.headers.get("Link")
        url = URL(link[1 : link.index(">")], encoded=True) if link else None
        assert url is None or f"tag.pair={marker}%2Cx&limit=1&page=" in url.raw_query_string
    assert sorted(f["id"] for f in listed) == sorted(f["id"] for f in flows)


async def test_a_query_cannot_add_a_link_of_its_own(http: aiohttp.ClientSession) -> None:
    """A raw `>` in the query used to end the next page's `<...>` early, and what followed
    made a second link (`rel="next"` pointing wherever the query said)."""
    for _ in range(2):
        await put_flow(http, video_flow())
    raw = 'x=a>;rel="x",<http://evil.example/&limit=1'
    async with http.get(URL(f"/flows?{raw}", encoded=True)) as resp:
        assert resp.status == 200, await resp.text()
        link = resp.headers["Link"]
    target, _, params = link.partition(">")
    assert target.startswith("<") and params == '; rel="next"'
    assert "evil.example" in target and not any(c in target[1:] for c in '<>" ')


async def test_sources_listing_and_properties(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    marker = new_id()
    flow = video_flow()
    await put_flow(http, flow)
    base = f"/sources/{flow['source_id']}"
    async with http.put(f"{base}/label", json=f"studio {marker}") as resp:
        assert resp.status == 204
    async with http.put(f"{base}/tags/site", json=["london", marker]) as resp:
        assert resp.status == 204
    async with http.put(f"{base}/description", json="the studio") as resp:
        assert resp.status == 204
    source = await get_json(http, base)
    spec.validate(source, "source.json")
    assert source["label"] == f"studio {marker}"
    assert await get_json(http, f"{base}/tags/site") == ["london", marker]
    found = await list_all(http, f"/sources?tag.site={marker}")
    assert [s["id"] for s in found] == [flow["source_id"]]
    spec.validate_list(found, "source.json")
    assert [s["id"] for s in await list_all(http, f"/sources?label=studio {marker}")] == [
        flow["source_id"]
    ]
    async with http.delete(f"{base}/label") as resp:
        assert resp.status == 204
    await get_json(http, f"{base}/label", status=404)
    for method in ("PUT", "DELETE", "POST"):
        async with http.request(method, base, json={}) as resp:
            assert resp.status == 405  # sources live and die with their flows


async def test_include_timerange_on_an_empty_flow(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    got = await get_json(http, f"/flows/{flow['id']}?include_timerange=true")
    assert got["timerange"] == "()"
    assert "timerange" not in await get_json(http, f"/flows/{flow['id']}")


async def test_fifty_concurrent_tag_writers_lose_no_update(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)

    async def tag(i: int) -> int:
        async with http.put(f"/flows/{flow['id']}/tags/t{i}", json=str(i)) as resp:
            return resp.status

    statuses = await asyncio.gather(*(tag(i) for i in range(50)))
    assert statuses == [204] * 50
    tags = await get_json(http, f"/flows/{flow['id']}/tags")
    assert tags == {f"t{i}": str(i) for i in range(50)}


async def test_every_change_publishes_its_event_once(
    http: aiohttp.ClientSession, tams_stack: Stack, spec: SpecValidator
) -> None:
    flow = video_flow()
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        await put_flow(http, flow)
        async with http.put(f"/flows/{flow['id']}/label", json="renamed") as resp:
            assert resp.status == 204
        async with http.put(f"/sources/{flow['source_id']}/label", json="src") as resp:
            assert resp.status == 204
        async with http.delete(f"/flows/{flow['id']}") as resp:
            assert resp.status == 204
        mine = {flow["id"], flow["source_id"]}

        def relevant(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
            return [e for e in events if e["key"] in mine]

        events = relevant(await reader.until(lambda evs: len(relevant(evs)) >= 6))
    # Order is guaranteed per key: flow events by flow id, source events by source id.
    flow_events = [e for e in events if e["key"] == flow["id"]]
    source_events = [e for e in events if e["key"] == flow["source_id"]]
    assert [e["event_type"] for e in flow_events] == [
        "flows/created",
        "flows/updated",
        "flows/deleted",
    ]
    assert [e["event_type"] for e in source_events] == [
        "sources/created",
        "sources/updated",
        "sources/deleted",
    ]
    spec.validate(flow_events[0]["event"]["flow"], "flow-get.json")
    assert flow_events[0]["event"]["flow"]["id"] == flow["id"]
    assert flow_events[1]["event"]["flow"]["label"] == "renamed"
    assert flow_events[2]["event"] == {"flow_id": flow["id"]}
    assert source_events[1]["event"]["source"]["label"] == "src"
    assert source_events[2]["event"] == {"source_id": flow["source_id"]}
    for event in events:
        assert event["event_timestamp"].endswith("Z")


async def test_events_carry_the_source_and_collectors_of_their_flow(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """Webhook filters on source and collection ids need these even for flows/deleted."""
    member = video_flow()
    await put_flow(http, member)
    collector = multi_flow([member["id"]])
    await put_flow(http, collector)
    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        async with http.put(f"/flows/{member['id']}/label", json="camera") as resp:
            assert resp.status == 204
        async with http.put(f"/sources/{member['source_id']}/label", json="cam") as resp:
            assert resp.status == 204

        def updated(events: list[Event], event_type: str, key: str) -> list[Event]:
            return [e for e in events if e["event_type"] == event_type and e["key"] == key]

        # The set-up's own flows/created and sources/created may land after the reader starts
        # (they follow the PUT replies): pick the two updates by type, not by count.
        events = await reader.until(
            lambda evs: (
                updated(evs, "flows/updated", member["id"])
                and updated(evs, "sources/updated", member["source_id"])
            )
        )
        flow_updated = updated(events, "flows/updated", member["id"])[-1]
        source_updated = updated(events, "sources/updated", member["source_id"])[-1]
    assert flow_updated["headers"]["tams-flow-id"] == member["id"]
    assert flow_updated["headers"]["tams-source-id"] == member["source_id"]
    assert flow_updated["headers"]["tams-flow-collected-by"] == collector["id"]
    assert flow_updated["headers"]["tams-source-collected-by"] == collector["source_id"]
    assert source_updated["headers"]["tams-source-id"] == member["source_id"]
    assert source_updated["headers"]["tams-source-collected-by"] == collector["source_id"]
    assert "tams-flow-id" not in source_updated["headers"]


async def test_concurrent_writers_never_move_metadata_times_back(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """Requests accepted at once reach the catalog in any order, each stamped with the time
    its gateway accepted it: a change applied after another must not carry an earlier
    `metadata_updated` (or source `updated`), and none may come before `created`."""
    flow = video_flow()
    flow_id, source_id = flow["id"], flow["source_id"]
    writes = [("PUT", f"/flows/{flow_id}", {**flow, "label": f"put {i}"}) for i in range(20)]
    writes += [("PUT", f"/flows/{flow_id}/tags/t{i % 3}", str(i)) for i in range(20)]
    writes += [("PUT", f"/sources/{source_id}/label", f"source {i}") for i in range(20)]

    async def write(method: str, path: str, body: Any) -> int:
        async with http.request(method, path, json=body) as resp:
            return resp.status

    async with EventReader(tams_stack.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]) as reader:
        # The flow's creations race each other first, then everything races everything.
        statuses = await asyncio.gather(*(write(*w) for w in writes[:20]))
        assert sorted(statuses) == [201] + [204] * 19
        statuses = await asyncio.gather(*(write(*w) for w in writes[20:]))
        assert statuses == [204] * 40

        def mine(events: list[Event], key: str, kinds: tuple[str, ...]) -> list[Event]:
            return [e for e in events if e["key"] == key and e["event_type"] in kinds]

        flow_kinds, source_kinds = (
            ("flows/created", "flows/updated"),
            ("sources/created", "sources/updated"),
        )
        events = await reader.until(
            lambda evs: (
                len(mine(evs, flow_id, flow_kinds)) >= 40
                and len(mine(evs, source_id, source_kinds)) >= 21
            )
        )
    # Events of a key come in the order their changes were applied.
    flows = [e["event"]["flow"] for e in mine(events, flow_id, flow_kinds)]
    sources = [e["event"]["source"] for e in mine(events, source_id, source_kinds)]
    flow_times = [f["metadata_updated"] for f in flows]
    source_times = [s["updated"] for s in sources]
    assert flow_times == sorted(flow_times)
    assert source_times == sorted(source_times)
    assert all(f["metadata_updated"] >= f["created"] for f in flows)
    assert all(s["updated"] >= s["created"] for s in sources)
    stored = await get_json(http, f"/flows/{flow_id}")
    assert stored["metadata_updated"] == flow_times[-1]
    assert (await get_json(http, f"/sources/{source_id}"))["updated"] == source_times[-1]
