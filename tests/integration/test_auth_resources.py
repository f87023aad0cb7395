"""Fine-grained authorisation of resources, end to end: listings filtered in the query,
objects seen through the flows that use them, classes that cannot be used to escalate,
webhooks limited to what their owner may read, deletion requests, rate limits, the internal
token, and switching authentication off.

The admin (`http`, the stack's own gateway) sets things up; the identities of
`auth_support.IDENTITIES` act through the authentication gateway (`auth_url`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from tams_runtime.passwords import hash_password
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND, TEST_SYNC_DELETE_LIMIT, SpecValidator

from .auth_support import IDENTITIES, basic, extra_gateway
from .helpers import (
    allocate_and_upload,
    eventually,
    get_json,
    multi_flow,
    new_id,
    post,
    put_flow,
    send_json,
    video_flow,
)
from .receivers import Receiver, receiving
from .test_deletion import flow_with_segments

ARCHIVE = ARCHIVE_BACKEND["id"]


class As:
    """Requests through the authentication gateway as one identity."""

    def __init__(self, http: aiohttp.ClientSession, who: str) -> None:
        self.http = http
        self.headers = basic(IDENTITIES[who])

    async def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, path, json=body, headers=self.headers) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def all(self, path: str) -> list[Any]:
        """Every page (following Link) of a listing."""
        items: list[Any] = []
        url: str | None = path
        while url is not None:
            async with self.http.get(url, headers=self.headers) as resp:
                assert resp.status == 200, await resp.text()
                items.extend(await resp.json())
                link = resp.headers.get("Link")
                url = link[1 : link.index(">")] if link else None
        return items


@pytest_asyncio.fixture
async def client(auth_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auth_url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield http


async def classed_flow(
    http: aiohttp.ClientSession, classes: list[str] | None, **tags: str
) -> dict[str, Any]:
    all_tags: dict[str, Any] = dict(tags)
    if classes is not None:
        all_tags["auth_classes"] = classes
    flow = video_flow(tags=all_tags)
    await put_flow(http, flow)
    return flow


async def ok(http: aiohttp.ClientSession, method: str, path: str, body: Any, status: int) -> Any:
    found, answer, _ = await send_json(http, method, path, body)
    assert found == status, answer
    return answer


# --- listings ------------------------------------------------------------------------------


async def test_listings_hold_only_what_the_caller_may_read_and_page_fully(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    marker = new_id()
    flows = {
        name: await classed_flow(http, classes, marker=marker)
        for name, classes in (
            ("news", ["news"]),
            ("sport", ["sport"]),
            ("shared", ["news", "news_ro"]),
            ("open", None),
            ("public", ["public"]),
            ("desk", ["desk_write"]),
        )
    }
    ids = {name: flow["id"] for name, flow in flows.items()}
    expected = {
        "news": {"news", "shared", "open", "public"},
        "sport": {"sport", "shared", "open", "public"},
        "nobody": {"open", "public"},
        "intern": {"open", "public"},  # write-only on desk: not listed
        "boss": set(ids),
    }
    for who, names in expected.items():
        listed = await As(client, who).all(f"/flows?tag.marker={marker}&limit=2")
        assert {f["id"] for f in listed} == {ids[n] for n in names}, who
    # A caller's own tag.auth_classes filter is ANDed with what they may read.
    news = As(client, "news")
    assert [
        f["id"] for f in await news.all(f"/flows?tag.marker={marker}&tag.auth_classes=news_ro")
    ] == [ids["shared"]]
    assert await news.all(f"/flows?tag.marker={marker}&tag.auth_classes=sport") == []
    # Sources: the same (each source inherited its flow's classes).
    for flow in flows.values():
        await ok(http, "PUT", f"/sources/{flow['source_id']}/tags/marker", marker, 204)
    listed = await As(client, "sport").all(f"/sources?tag.marker={marker}&limit=1")
    assert {s["id"] for s in listed} == {
        flows[n]["source_id"] for n in ("sport", "shared", "open", "public")
    }


async def test_webhook_and_storage_backend_listings_are_filtered(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    marker = new_id()
    made = []
    for classes in (["news"], ["sport"], None):
        tags: dict[str, Any] = {"marker": marker}
        if classes:
            tags["auth_classes"] = classes
        body = {"url": f"https://r.example.com/{new_id()}", "events": ["flows/created"]}
        made.append(await ok(http, "POST", "/service/webhooks", {**body, "tags": tags}, 201))
    try:
        listed = await As(client, "news").all(f"/service/webhooks?tag.marker={marker}")
        assert {w["id"] for w in listed} == {made[0]["id"], made[2]["id"]}
        status, _ = await As(client, "news").send("GET", f"/service/webhooks/{made[1]['id']}")
        assert status == 404
        status, _ = await As(client, "news").send("DELETE", f"/service/webhooks/{made[1]['id']}")
        assert status == 404
    finally:
        for webhook in made:
            await ok(http, "DELETE", f"/service/webhooks/{webhook['id']}", None, 204)
    # The archive backend is classed `archive` (deploy-time tags): archivists only.
    _, backends = await As(client, "news").send("GET", "/service/storage-backends")
    assert ARCHIVE not in {b["id"] for b in backends}
    _, backends = await As(client, "archivist").send("GET", "/service/storage-backends")
    archive = next(b for b in backends if b["id"] == ARCHIVE)
    assert archive["tags"] == {"auth_classes": ["archive"]}


# --- objects --------------------------------------------------------------------------------


async def test_objects_show_only_readable_flows_and_backends(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    news_flow = await classed_flow(http, ["news"])
    sport_flow = await classed_flow(http, ["sport"])
    shared, private = await allocate_and_upload(http, news_flow["id"], [b"shared", b"private"])
    for object_id, start in ((shared, 0), (private, 1)):
        body = {"object_id": object_id, "timerange": f"[{start}:0_{start + 1}:0)"}
        assert (await post(http, news_flow["id"], body))[0] == 201
    assert (await post(http, sport_flow["id"], {"object_id": shared, "timerange": "[0:0_1:0)"}))[
        0
    ] == 201
    sport, news = As(client, "sport"), As(client, "news")
    status, found = await sport.send("GET", f"/objects/{shared}")
    assert status == 200 and found["referenced_by_flows"] == [sport_flow["id"]]
    # The news flow registered it first; sport may not know that flow exists.
    assert "first_referenced_by_flow" not in found
    status, found = await news.send("GET", f"/objects/{shared}")
    assert status == 200 and found["referenced_by_flows"] == [news_flow["id"]]
    assert found["first_referenced_by_flow"] == news_flow["id"]
    admin_view = await get_json(http, f"/objects/{shared}")
    assert set(admin_view["referenced_by_flows"]) == {news_flow["id"], sport_flow["id"]}
    # No readable flow uses it: as if it did not exist.
    assert (await sport.send("GET", f"/objects/{private}"))[0] == 404
    # Readable, but the caller's own flow_tag filter leaves nothing: an empty list.
    status, found = await sport.send("GET", f"/objects/{shared}?flow_tag.auth_classes=news")
    assert status == 200 and found["referenced_by_flows"] == []
    # Reusing an object needs read access to it.
    body = {"object_id": private, "timerange": "[5:0_6:0)", "ts_offset": "4:0"}
    status, answer = await sport.send("POST", f"/flows/{sport_flow['id']}/segments", body)
    assert status == 403, answer
    status, answer = await news.send("POST", f"/flows/{news_flow['id']}/segments", body)
    assert status == 201, answer
    # Instances: write on the object (through a flow) and on the backend.
    copy = {"storage_id": ARCHIVE}
    assert (await sport.send("POST", f"/objects/{shared}/instances", copy))[0] == 403
    assert (await As(client, "nobody").send("POST", f"/objects/{shared}/instances", copy))[0] == 404
    status, answer = await As(client, "archivist").send(
        "POST", f"/objects/{shared}/instances", copy
    )
    assert status == 201, answer

    async def copied() -> bool:
        found = await get_json(http, f"/objects/{shared}?verbose_storage=true")
        return ARCHIVE in {u.get("storage_id") for u in found["get_urls"]}

    await eventually(copied, "the copy to the archive backend")
    # Only archivists see URLs on the archive backend (ADR 0055), in objects and segments.
    for who, sees_archive in (("news", False), ("archivist", True)):
        caller = As(client, who)
        _, found = await caller.send("GET", f"/objects/{shared}?verbose_storage=true")
        assert (ARCHIVE in {u.get("storage_id") for u in found["get_urls"]}) == sees_archive
        assert found["get_urls"], who  # the default backend's URL stays
        _, segments = await caller.send(
            "GET", f"/flows/{news_flow['id']}/segments?verbose_storage=true&object_id={shared}"
        )
        urls = {u.get("storage_id") for u in segments[0]["get_urls"]}
        assert (ARCHIVE in urls) == sees_archive, who


async def test_client_chosen_ids_of_another_group_are_taken_not_already_there(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """An id another group allocated (or registered) first is refused as taken: "already
    exist" tells a client (the AWS TAMS tools) that it uploaded the object itself before, and
    it would go on to register a segment of what the other group put there."""
    news_flow = await classed_flow(http, ["news"])
    sport_flow = await classed_flow(http, ["sport"])
    news, sport = As(client, "news"), As(client, "sport")
    squatted, own = f"news/interview-{new_id()}.ts", f"news/{new_id()}.ts"
    allocation = {"object_ids": [squatted]}
    status, _ = await sport.send("POST", f"/flows/{sport_flow['id']}/storage", allocation)
    assert status == 201
    status, error = await news.send("POST", f"/flows/{news_flow['id']}/storage", allocation)
    assert status == 400
    assert "taken" in error["summary"] and "already exist" not in error["summary"]
    # Once registered by sport, still taken for news.
    (uploaded,) = await allocate_and_upload(http, sport_flow["id"], [b"sport"])
    status, _ = await sport.send(
        "POST",
        f"/flows/{sport_flow['id']}/segments",
        {"object_id": uploaded, "timerange": "[0:0_1:0)"},
    )
    assert status == 201
    status, error = await news.send(
        "POST", f"/flows/{news_flow['id']}/storage", {"object_ids": [uploaded]}
    )
    assert status == 400 and "taken" in error["summary"]
    # The caller's own id asked for again: the spec's answer, as before.
    for expected in (201, 400):
        status, answer = await news.send(
            "POST", f"/flows/{news_flow['id']}/storage", {"object_ids": [own]}
        )
        assert status == expected, answer
    assert "already exist" in answer["summary"]


async def test_an_owner_writes_a_deleted_segment_again_within_the_release_grace(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """The spec's way to correct a segment (delete it, write it again) under a fine-grained
    policy: used by no flow meanwhile, the object is its owner's through the flow it came
    from, and nobody else's."""
    flow = await classed_flow(http, ["news"])
    (object_id,) = await allocate_and_upload(http, flow["id"], [b"to correct"])
    news, sport = As(client, "news"), As(client, "sport")
    segment = {"object_id": object_id, "timerange": "[0:0_2:0)", "key_frame_count": 1}
    path = f"/flows/{flow['id']}/segments"
    assert (await news.send("POST", path, segment))[0] == 201
    assert (await news.send("DELETE", f"{path}?timerange=[0:0_2:0)"))[0] == 204

    status, found = await news.send("GET", f"/objects/{object_id}")
    assert status == 200 and found["referenced_by_flows"] == []
    assert (await sport.send("GET", f"/objects/{object_id}"))[0] == 404
    sport_flow = await classed_flow(http, ["sport"])
    reuse = {**segment, "key_frame_count": 9}
    status, _ = await sport.send("POST", f"/flows/{sport_flow['id']}/segments", reuse)
    assert status == 403
    status, answer = await news.send("POST", path, {**segment, "key_frame_count": 2})
    assert status == 201, answer
    assert (await get_json(http, f"/objects/{object_id}"))["key_frame_count"] == 2

    # The flow it came from gone (ingest retention), then the segment using it modified:
    # it is the owner's by the classes of the flow it left.
    edit = await classed_flow(http, ["news"])
    reused = {"object_id": object_id, "timerange": "[10:0_12:0)", "ts_offset": "10:0"}
    assert (await news.send("POST", f"/flows/{edit['id']}/segments", reused))[0] == 201
    assert (await news.send("DELETE", f"/flows/{flow['id']}"))[0] == 204
    edit_path = f"/flows/{edit['id']}/segments"
    assert (await news.send("DELETE", f"{edit_path}?timerange=[10:0_12:0)"))[0] == 204
    assert (await sport.send("GET", f"/objects/{object_id}"))[0] == 404
    status, answer = await news.send("POST", edit_path, {**reused, "key_frame_count": 3})
    assert status == 201, answer
    # And an object whose whole flow was deleted, written into another flow of the owner.
    gone = await classed_flow(http, ["news"])
    (moved,) = await allocate_and_upload(http, gone["id"], [b"moved"])
    first = {"object_id": moved, "timerange": "[0:0_1:0)"}
    assert (await news.send("POST", f"/flows/{gone['id']}/segments", first))[0] == 201
    assert (await news.send("DELETE", f"/flows/{gone['id']}"))[0] == 204
    status, answer = await news.send(
        "POST", edit_path, {**first, "timerange": "[20:0_21:0)", "ts_offset": "20:0"}
    )
    assert status == 201, answer
    status, answer = await sport.send("POST", f"/flows/{sport_flow['id']}/segments", first)
    assert status == 403, answer


# --- no escalation --------------------------------------------------------------------------


async def test_auth_classes_cannot_grant_what_the_caller_does_not_hold(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    copy_flow = await classed_flow(http, ["copyedit"])
    copyed = As(client, "copyed")
    path = f"/flows/{copy_flow['id']}/tags/auth_classes"
    # Copy editors may read and write, not delete: no class that grants delete...
    status, answer = await copyed.send("PUT", path, ["copyedit", "copyedit_full"])
    assert status == 403 and "delete" in answer["summary"], answer
    # ...and no dropping the class, which would leave it open to everyone.
    assert (await copyed.send("DELETE", path))[0] == 403
    replaced = {**copy_flow, "tags": {}}
    assert (await copyed.send("PUT", f"/flows/{copy_flow['id']}", replaced))[0] == 403
    # Other tags are theirs to change.
    assert (await copyed.send("PUT", f"/flows/{copy_flow['id']}/tags/genre", "news"))[0] == 204
    # Interns write without reading: no making it public (that grants read).
    desk = await classed_flow(http, ["desk_write"])
    status, _ = await As(client, "intern").send(
        "PUT", f"/flows/{desk['id']}/tags/auth_classes", ["desk_write", "public"]
    )
    assert status == 403
    # Sport may read a shared flow, not reclassify it.
    shared = await classed_flow(http, ["news", "news_ro"])
    status, _ = await As(client, "sport").send(
        "PUT", f"/flows/{shared['id']}/tags/auth_classes", ["sport"]
    )
    assert status == 403
    # News may share its own flow read-only with sport: it holds read.
    news = As(client, "news")
    news_flow = await classed_flow(http, ["news"])
    status, _ = await news.send(
        "PUT", f"/flows/{news_flow['id']}/tags/auth_classes", ["news", "news_ro"]
    )
    assert status == 204
    assert (await As(client, "sport").send("GET", f"/flows/{news_flow['id']}"))[0] == 200
    # Creating: no flow the creator could not write, nor on a source they may not touch.
    born_sport = video_flow(tags={"auth_classes": ["sport"]})
    assert (await news.send("PUT", f"/flows/{born_sport['id']}", born_sport))[0] == 403
    sport_flow = await classed_flow(http, ["sport"])
    sibling = video_flow(source_id=sport_flow["source_id"], tags={"auth_classes": ["news"]})
    assert (await news.send("PUT", f"/flows/{sibling['id']}", sibling))[0] == 404
    mine = video_flow(tags={"auth_classes": ["news", "news_ro"]})
    assert (await news.send("PUT", f"/flows/{mine['id']}", mine))[0] == 201
    # Classes are names: a list of non-empty strings without commas.
    for bad in ("news,sport", [""], ["a,b"]):
        status, answer = await news.send("PUT", f"/flows/{mine['id']}/tags/auth_classes", bad)
        assert status == 400, answer
    # Webhooks: the same rules.
    hook = {"url": "https://r.example.com/x", "events": ["flows/created"]}
    status, _ = await news.send(
        "POST", "/service/webhooks", {**hook, "tags": {"auth_classes": ["sport"]}}
    )
    assert status == 403


# --- webhooks -------------------------------------------------------------------------------


async def test_webhook_filters_must_name_readable_flows_and_sources(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    sport_flow = await classed_flow(http, ["sport"])
    news_flow = await classed_flow(http, ["news"])
    news = As(client, "news")
    hook = {"url": "https://r.example.com/y", "events": ["flows/updated"]}
    for filters in (
        {"flow_ids": [sport_flow["id"]]},
        {"source_ids": [sport_flow["source_id"]]},
        {"flow_collected_by_ids": [new_id()]},  # unknown: refused like unreadable
    ):
        status, answer = await news.send("POST", "/service/webhooks", {**hook, **filters})
        assert status == 400 and "may not read" in answer["summary"], answer
    mine = {**hook, "flow_ids": [news_flow["id"]], "tags": {"auth_classes": ["news"]}}
    status, created = await news.send("POST", "/service/webhooks", mine)
    assert status == 201, created
    sport = As(client, "sport")
    path = f"/service/webhooks/{created['id']}"
    assert (await sport.send("GET", path))[0] == 404
    assert (await sport.send("PUT", path, {**created, "status": "disabled"}))[0] == 404
    status, replaced = await news.send("PUT", path, {**created, "status": "disabled"})
    assert status == 201 and replaced["status"] == "disabled", replaced
    await ok(http, "DELETE", path, None, 204)


async def test_collections_may_name_only_readable_flows(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    sport_flow = await classed_flow(http, ["sport"])
    news_flow = await classed_flow(http, ["news"])
    sport = As(client, "sport")
    path = f"/flows/{sport_flow['id']}/flow_collection"
    # An unreadable flow is refused exactly like one that does not exist.
    answers = []
    for member in (news_flow["id"], new_id()):
        status, answer = await sport.send("PUT", path, [{"id": member, "role": "x"}])
        answers.append((status, answer["summary"].replace(member, "<id>")))
    assert answers[0] == answers[1] and answers[0][0] == 400, answers
    status, whole = await sport.send(
        "PUT",
        f"/flows/{sport_flow['id']}",
        {**sport_flow, "flow_collection": [{"id": news_flow["id"], "role": "x"}]},
    )
    assert status == 400 and "does not exist" in whole["summary"], whole
    assert "collected_by" not in await get_json(http, f"/flows/{news_flow['id']}")
    own = await classed_flow(http, ["sport"])
    status, _ = await sport.send("PUT", path, [{"id": own["id"], "role": "x"}])
    assert status == 204


async def test_collected_by_names_only_collections_the_caller_may_read(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """A flow others may read, collected by one they may not: the collection's id (and its
    source's) is not disclosed by `collected_by`, nor by a `collected_by_ids` filter."""
    marker = new_id()
    shared = await classed_flow(http, ["news", "public"], marker=marker)
    hidden = multi_flow([shared["id"]], tags={"auth_classes": ["news"]})
    await put_flow(http, hidden)
    sport, news = As(client, "sport"), As(client, "news")
    status, flow = await sport.send("GET", f"/flows/{shared['id']}")
    assert status == 200 and "collected_by" not in flow, flow
    status, source = await sport.send("GET", f"/sources/{shared['source_id']}")
    assert status == 200 and "collected_by" not in source, source
    (listed,) = await sport.all(f"/flows?tag.marker={marker}")
    assert "collected_by" not in listed, listed
    assert await sport.all(f"/flows?collected_by_ids={hidden['id']}") == []
    assert await sport.all(f"/sources?collected_by_ids={hidden['source_id']}") == []
    # Whoever may read the collection still sees it.
    status, flow = await news.send("GET", f"/flows/{shared['id']}")
    assert flow["collected_by"] == [hidden["id"]], flow
    status, source = await news.send("GET", f"/sources/{shared['source_id']}")
    assert source["collected_by"] == [hidden["source_id"]], source
    found = await news.all(f"/flows?collected_by_ids={hidden['id']}")
    assert [f["id"] for f in found] == [shared["id"]]


async def test_top_level_listings_count_only_collections_the_caller_may_read(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """`collected_by_ids=` (empty: top-level flows/sources) agrees with `collected_by` as the
    caller sees it: an item collected only by a collection the caller may not read is listed
    (it shows no `collected_by`), one also collected by a readable collection is not."""
    marker = new_id()
    shared = await classed_flow(http, ["news", "public"], marker=marker)
    both = await classed_flow(http, ["news", "public"], marker=marker)
    hidden = multi_flow(
        [shared["id"], both["id"]], tags={"auth_classes": ["sport"], "marker": marker}
    )
    visible = multi_flow([both["id"]], tags={"auth_classes": ["news"], "marker": marker})
    await put_flow(http, hidden)
    await put_flow(http, visible)
    flows = (shared, both, hidden, visible)
    for flow in flows:
        await ok(http, "PUT", f"/sources/{flow['source_id']}/tags/marker", marker, 204)
    expected = {
        "news": (shared, visible),
        "sport": (hidden,),
        "boss": (hidden, visible),  # unrestricted: collected by nothing at all
    }
    for who, tops in expected.items():
        caller = As(client, who)
        listed = await caller.all(f"/flows?tag.marker={marker}&collected_by_ids=&limit=1")
        assert {f["id"] for f in listed} == {f["id"] for f in tops}, who
        assert all("collected_by" not in f for f in listed), listed
        listed = await caller.all(f"/sources?tag.marker={marker}&collected_by_ids=&limit=1")
        assert {s["id"] for s in listed} == {f["source_id"] for f in tops}, who
        assert all("collected_by" not in s for s in listed), listed
    news = As(client, "news")
    status, flow = await news.send("GET", f"/flows/{shared['id']}")
    assert status == 200 and "collected_by" not in flow, flow
    status, source = await news.send("GET", f"/sources/{shared['source_id']}")
    assert status == 200 and "collected_by" not in source, source


async def test_deliveries_follow_the_owners_permission_at_event_time(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """A webhook registered by `news` gets a flow's events only while the flow is readable by
    news. One flow, so its events are in order: when the later, readable events have arrived,
    an earlier unreadable one would have arrived before them."""
    flow = await classed_flow(http, ["sport"])
    flow_id = flow["id"]
    receiver: Receiver
    async with receiving() as receiver:
        news = As(client, "news")
        status, webhook = await news.send(
            "POST", "/service/webhooks", {"url": receiver.url, "events": ["flows/updated"]}
        )
        assert status == 201, webhook
        try:
            await ok(http, "PUT", f"/flows/{flow_id}/label", "while sport", 204)
            await ok(http, "PUT", f"/flows/{flow_id}/tags/auth_classes", ["news"], 204)
            await ok(http, "PUT", f"/flows/{flow_id}/label", "while news", 204)
            delivered = await receiver.wait_for(
                2, keep=lambda r: r.event.get("flow", {}).get("id") == flow_id
            )
            # The reclassification (to news) and the label set after it; not the label set
            # while the flow was sport's.
            seen = [
                (r.event["flow"]["tags"]["auth_classes"], r.event["flow"].get("label"))
                for r in delivered
            ]
            assert seen == [(["news"], "while sport"), (["news"], "while news")]
        finally:
            await ok(http, "DELETE", f"/service/webhooks/{webhook['id']}", None, 204)


async def test_a_webhook_replaced_by_another_owner_gets_none_of_what_was_queued_for_the_last(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """news's webhook is stuck retrying a news flow's event when sport, who may replace the
    (unclassified) webhook but may not read that flow, points it at its own receiver. The
    retried event, and anything else queued, was matched for news: sport must get only the
    events that happen after, here a label set on a flow of its own."""
    news_flow = await classed_flow(http, ["news"])
    sport_flow = await classed_flow(http, ["sport"])
    events = ["flows/updated"]
    news, sport = As(client, "news"), As(client, "sport")
    first: Receiver
    second: Receiver
    async with receiving() as first, receiving() as second:
        # Each attempt waits out the delivery timeout (1 s here): seconds of retrying.
        first.hang = True
        status, webhook = await news.send(
            "POST", "/service/webhooks", {"url": first.url, "events": events}
        )
        assert status == 201, webhook
        try:
            await ok(http, "PUT", f"/flows/{news_flow['id']}/label", "news only", 204)

            async def attempted() -> bool:
                return first.arrived >= 1

            await eventually(attempted, "the first delivery attempt")
            # Still retrying, not given up (which would empty the queue anyway).
            status, current = await news.send("GET", f"/service/webhooks/{webhook['id']}")
            assert current["status"] == "started", current
            status, replaced = await sport.send(
                "PUT",
                f"/service/webhooks/{webhook['id']}",
                {"id": webhook["id"], "url": second.url, "events": events, "status": "created"},
            )
            assert status == 201, replaced
            await ok(http, "PUT", f"/flows/{sport_flow['id']}/label", "sport", 204)
            # One webhook's deliveries are in order: had the news event been kept, it would
            # have come first.
            (delivered,) = await second.wait_for(1)
            assert delivered.event["flow"]["id"] == sport_flow["id"]
            assert all(r.event["flow"]["id"] == sport_flow["id"] for r in second.requests)
        finally:
            await ok(http, "DELETE", f"/service/webhooks/{webhook['id']}", None, 204)


async def test_moving_a_flow_off_its_source_needs_delete_when_the_source_goes_with_it(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    """A source is deleted with its last flow, so moving that flow elsewhere deletes it: that
    needs the delete scope and delete permission on the source, not just write on the flow."""
    flow = await classed_flow(http, ["news"])
    old_source = flow["source_id"]
    moved = {**flow, "source_id": new_id()}
    # The source is sport's now: news may write the flow, but not delete sport's source.
    await ok(http, "PUT", f"/sources/{old_source}/tags/auth_classes", ["sport"], 204)
    status, answer = await As(client, "news").send("PUT", f"/flows/{flow['id']}", moved)
    assert status == 403, answer
    assert f"last flow of source {old_source}" in answer["summary"]
    # A caller without the delete scope may not either, even on a source of its own class.
    await ok(http, "PUT", f"/sources/{old_source}/tags/auth_classes", ["news"], 204)
    status, answer = await As(client, "writer").send("PUT", f"/flows/{flow['id']}", moved)
    assert status == 403, answer
    await ok(http, "GET", f"/sources/{old_source}", None, 200)
    # A source that keeps another flow is not deleted: write on the flow is enough.
    other = {**video_flow(tags={"auth_classes": ["news"]}), "source_id": old_source}
    await put_flow(http, other)
    status, answer = await As(client, "writer").send("PUT", f"/flows/{flow['id']}", moved)
    assert status == 204, answer
    status, answer = await As(client, "news").send(
        "PUT", f"/flows/{other['id']}", {**other, "source_id": new_id()}
    )
    assert status == 204, answer
    await ok(http, "GET", f"/sources/{old_source}", None, 404)


# --- deletion requests ----------------------------------------------------------------------


async def test_a_deletion_request_is_visible_with_delete_permission_on_its_flow(
    http: aiohttp.ClientSession, client: aiohttp.ClientSession
) -> None:
    flow, _, _ = await flow_with_segments(http, TEST_SYNC_DELETE_LIMIT + 5, objects=2)
    await ok(http, "PUT", f"/flows/{flow['id']}/tags/auth_classes", ["news"], 204)
    news = As(client, "news")
    status, request = await news.send("DELETE", f"/flows/{flow['id']}/segments")
    assert status == 202, request
    path = f"/flow-delete-requests/{request['id']}"
    assert request["created_by"] == "news"
    assert (await news.send("GET", path))[0] == 200
    assert (await As(client, "deleter").send("GET", path))[0] == 200
    assert (await As(client, "sport").send("GET", path))[0] == 404
    assert (await As(client, "reader").send("GET", path))[0] == 403  # no delete scope
    assert (await As(client, "news").send("GET", "/flow-delete-requests"))[0] == 403


# --- rate limits, the internal token, authentication off -------------------------------------


async def test_rate_limits_answer_429_with_retry_after_per_principal(tams_stack: Stack) -> None:
    env = {
        "TAMS_AUTH_USERS": json.dumps({}),
        "TAMS_GATEWAY_RATE_LIMIT_PER_S": "0.5",
        "TAMS_GATEWAY_RATE_LIMIT_BURST": "3",
    }
    admin = tams_stack.client_headers()
    async with (
        extra_gateway(tams_stack, env, "gateway-limited") as url,
        aiohttp.ClientSession(url) as http,
    ):
        statuses = []
        for _ in range(5):
            async with http.get("/service", headers=admin) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
                    assert (await resp.json())["type"] == "TooManyRequests"
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        # Failed sign-ins count against the address, so guessing is slowed down too.
        wrong = {"Authorization": "Basic YWRtaW46d3Jvbmc="}
        failures = []
        for _ in range(5):
            async with http.get("/service", headers=wrong) as resp:
                failures.append(resp.status)
        assert failures[:3] == [401, 401, 401] and failures[3:] == [429, 429]


async def test_a_throttled_address_gets_429_even_with_the_right_password(
    tams_stack: Stack,
) -> None:
    # While failed sign-ins have emptied an address's bucket, no credentials from it are
    # checked at all: a guesser cannot tell a right password from the 429s.
    user = {"password": hash_password("right-one"), "scopes": ["read"]}
    env = {
        "TAMS_AUTH_USERS": json.dumps({"guessed": user}),
        "TAMS_GATEWAY_RATE_LIMIT_PER_S": "0.2",
        "TAMS_GATEWAY_RATE_LIMIT_BURST": "3",
    }
    async with (
        extra_gateway(tams_stack, env, "gateway-guessed") as url,
        aiohttp.ClientSession(url) as http,
    ):
        statuses = []
        for password in ("a", "b", "c", "d", "right-one"):
            token = base64.b64encode(f"guessed:{password}".encode()).decode()
            async with http.get("/service", headers={"Authorization": f"Basic {token}"}) as resp:
                statuses.append(resp.status)
        assert statuses == [401, 401, 401, 429, 429]


async def test_internal_service_apis_need_the_internal_token(
    tams_stack: Stack, spec: SpecValidator
) -> None:
    analytics = tams_stack.services["analytics"].url
    token = tams_stack.env["TAMS_INTERNAL_TOKEN"]
    async with aiohttp.ClientSession(analytics) as http:
        async with http.get("/health") as resp:
            assert resp.status == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get("/analytics/flow-usage", headers=headers) as resp:
                assert resp.status == 401
                error = await resp.json()
                spec.validate(error, "error.json")
                assert "TAMS_INTERNAL_TOKEN" in error["summary"]
        good = {"Authorization": f"Bearer {token}"}
        async with http.get("/no-such-route", headers=good) as resp:
            assert resp.status == 404  # past the token check


async def test_authentication_can_be_switched_off_explicitly(tams_stack: Stack) -> None:
    async with (
        extra_gateway(tams_stack, {"TAMS_AUTH_DISABLED": "true"}, "gateway-open") as url,
        aiohttp.ClientSession(url) as http,
        http.get("/service") as resp,
    ):
        assert resp.status == 200
    log = (tams_stack.data_dir / "logs" / "gateway-open.log").read_text()
    assert "AUTHENTICATION IS DISABLED" in log
