"""Soft delete with restore (docs/ext-soft-delete.md), over real HTTP on a stack of its own
with `TAMS_SOFT_DELETE_RETENTION_S` on (the session stack keeps the spec's plain delete)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from tams_stack.stack import Stack
from tams_stack.testing import TEST_SYNC_DELETE_LIMIT, SpecValidator

from .auth_support import IDENTITIES, basic, users_json
from .helpers import (
    EventReader,
    allocate_and_upload,
    eventually,
    get_json,
    list_all,
    multi_flow,
    new_id,
    post,
    put_flow,
    send_json,
    stack_store,
    stored_bytes,
    video_flow,
)

SERVICES = ("catalog", "segments", "analytics", "gateway")


@pytest_asyncio.fixture(scope="module")
async def soft(tams_stack: Stack) -> AsyncIterator[Stack]:
    from .standalone import standalone

    env = {
        "TAMS_SOFT_DELETE_RETENTION_S": "3600",
        # The authorisation tests' identities, beside the local admin.
        "TAMS_AUTH_USERS": users_json(),
    }
    async with standalone(tams_stack, SERVICES, env) as stack:
        yield stack


@pytest_asyncio.fixture
async def client(
    soft: Stack, admin_headers: dict[str, str]
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=soft.gateway_url,
        headers=admin_headers,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield session


async def flow_with_segments(
    http: aiohttp.ClientSession, count: int, **extra: Any
) -> tuple[dict[str, Any], list[str]]:
    flow = video_flow(**extra)
    await put_flow(http, flow)
    objects = await allocate_and_upload(http, flow["id"], [f"m{i}".encode() for i in range(count)])
    body = [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)]
    status, result = await post(http, flow["id"], body)
    assert status == 201, result
    return flow, objects


async def test_hidden_at_once_listed_restored_whole(
    client: aiohttp.ClientSession, soft: Stack, spec: SpecValidator
) -> None:
    flow, objects = await flow_with_segments(client, 3, tags={"genre": "news"})
    flow_id, source_id = flow["id"], flow["source_id"]
    other = video_flow()
    await put_flow(client, other)
    # Another flow reuses the first object: it must stay referenced by that flow alone.
    assert (await post(client, other["id"], {"object_id": objects[0], "timerange": "[0:0_1:0)"}))[
        0
    ] == 201
    collector = multi_flow([flow_id, other["id"]])
    await put_flow(client, collector)

    status, _, _ = await send_json(client, "DELETE", f"/flows/{flow_id}")
    assert status == 204
    # Gone from every TAMS endpoint.
    await get_json(client, f"/flows/{flow_id}", 404)
    await get_json(client, f"/sources/{source_id}", 404)
    assert await get_json(client, f"/flows/{flow_id}/segments") == []
    assert flow_id not in [f["id"] for f in await list_all(client, "/flows")]
    assert await get_json(client, "/flows?tag.genre=news") == []
    assert (await get_json(client, f"/objects/{objects[0]}"))["referenced_by_flows"] == [
        other["id"]
    ]
    assert (await get_json(client, f"/objects/{objects[1]}"))["referenced_by_flows"] == []
    members = (await get_json(client, f"/flows/{collector['id']}"))["flow_collection"]
    assert [m["id"] for m in members] == [other["id"]]
    await get_json(client, f"/analytics/flow-usage?flow_id={flow_id}", 404)
    # A new flow may not take the hidden flow's id (its segments are kept under it).
    status, error, _ = await send_json(client, "PUT", f"/flows/{flow_id}", flow)
    assert status == 409 and "soft-deleted" in error["summary"]

    # Kept whole: its objects are not collected, their bytes stay.
    async with stack_store(soft) as store:
        assert await store.read(lambda tx: tx.media_jobs_of(objects)) == []
        assert set(await store.read(lambda tx: tx.get_objects(objects))) == set(objects)
    for object_id in objects:
        assert await stored_bytes(soft, object_id) is not None

    listed = await list_all(client, "/deleted-flows")
    assert flow_id in [d["flow"]["id"] for d in listed]
    one = await get_json(client, f"/deleted-flows/{flow_id}")
    assert one["deleted_by"] == "admin" and one["purge_after"] > one["deleted"]
    assert one["flow"]["timerange"] == "[0:0_3:0)" and one["source_deleted_with_flow"] is True
    spec.validate(one["flow"], "flow-get.json")

    status, restored, _ = await send_json(client, "POST", f"/deleted-flows/{flow_id}/restore")
    assert status == 200, restored
    assert restored["id"] == flow_id and restored["tags"] == {"genre": "news"}
    spec.validate(restored, "flow-get.json")
    await get_json(client, f"/sources/{source_id}")
    segments = await list_all(client, f"/flows/{flow_id}/segments")
    assert [s["timerange"] for s in segments] == ["[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)"]
    assert (await get_json(client, f"/objects/{objects[1]}"))["referenced_by_flows"] == [flow_id]
    usage = await get_json(client, f"/analytics/flow-usage?flow_id={flow_id}")
    assert usage["totals"]["segments"] == 3
    await get_json(client, f"/deleted-flows/{flow_id}", 404)
    status, _, _ = await send_json(client, "POST", f"/deleted-flows/{flow_id}/restore")
    assert status == 404

    # Purged now: its own objects' bytes go, the reused one stays (the other flow uses it).
    assert (await send_json(client, "DELETE", f"/flows/{flow_id}"))[0] == 204
    assert (await send_json(client, "DELETE", f"/deleted-flows/{flow_id}"))[0] == 204
    await get_json(client, f"/deleted-flows/{flow_id}", 404)
    for object_id in objects[1:]:
        await eventually(
            lambda o=object_id: _gone(soft, o), f"bytes of purged object {object_id} deleted"
        )
    assert await stored_bytes(soft, objects[0]) is not None
    status, _, _ = await send_json(client, "POST", f"/deleted-flows/{flow_id}/restore")
    assert status == 404


async def test_a_source_comes_back_whole_whichever_of_its_flows_is_restored_first(
    client: aiohttp.ClientSession,
) -> None:
    """The source goes with its last flow hidden, and its copy is kept on that flow's
    record; restoring its other flow first must bring that copy back, not a bare source."""
    first = video_flow()
    await put_flow(client, first)
    source_id = first["source_id"]
    second = {**video_flow(), "source_id": source_id}
    await put_flow(client, second)
    for path, value in (("label", "Studio 1"), ("tags/owner", "news desk")):
        status, _, _ = await send_json(client, "PUT", f"/sources/{source_id}/{path}", value)
        assert status == 204
    before = await get_json(client, f"/sources/{source_id}")

    for flow in (second, first):  # the first goes last, with the source
        assert (await send_json(client, "DELETE", f"/flows/{flow['id']}"))[0] == 204
    await get_json(client, f"/sources/{source_id}", 404)
    for flow in (second, first):
        status, body, _ = await send_json(client, "POST", f"/deleted-flows/{flow['id']}/restore")
        assert status == 200, body
    after = await get_json(client, f"/sources/{source_id}")
    assert after["label"] == "Studio 1" and after["tags"]["owner"] == "news desk"
    assert after["created"] == before["created"]


async def _gone(stack: Stack, object_id: str) -> bool:
    return await stored_bytes(stack, object_id) is None


async def test_a_large_purge_runs_as_a_deletion_request(
    client: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    flow, _ = await flow_with_segments(client, TEST_SYNC_DELETE_LIMIT + 5)
    flow_id = flow["id"]
    # Hiding costs the same whatever the size: 204 at once.
    assert (await send_json(client, "DELETE", f"/flows/{flow_id}"))[0] == 204
    status, body, headers = await send_json(client, "DELETE", f"/deleted-flows/{flow_id}")
    assert status == 202, body
    spec.validate(body, "deletion-request.json")
    location = headers["Location"]
    assert location.endswith(f"/flow-delete-requests/{body['id']}")

    async def done() -> bool:
        async with client.get(location) as resp:
            return resp.status == 200 and (await resp.json())["status"] == "done"

    await eventually(done, "the purge's deletion request done")
    await get_json(client, f"/deleted-flows/{flow_id}", 404)
    assert await get_json(client, f"/flows/{flow_id}/segments") == []


async def test_bad_requests(client: aiohttp.ClientSession) -> None:
    unknown = new_id()
    for method, path in (
        ("GET", f"/deleted-flows/{unknown}"),
        ("POST", f"/deleted-flows/{unknown}/restore"),
        ("DELETE", f"/deleted-flows/{unknown}"),
    ):
        status, error, _ = await send_json(client, method, path)
        assert status == 404 and error["type"] == "NotFound", (method, path)
    status, error, _ = await send_json(client, "GET", "/deleted-flows/not-a-uuid")
    assert status == 400 and "not-a-uuid" in error["summary"]
    status, error, _ = await send_json(client, "GET", "/deleted-flows?page=garbage")
    assert status == 400


async def test_scopes_and_the_deleted_flows_own_classes(
    client: aiohttp.ClientSession, soft: Stack
) -> None:
    flow = video_flow(tags={"auth_classes": ["news", "copyedit"]})
    await put_flow(client, flow)
    flow_id = flow["id"]
    assert (await send_json(client, "DELETE", f"/flows/{flow_id}"))[0] == 204

    async def call(who: str, method: str, path: str) -> int:
        async with (
            aiohttp.ClientSession(
                base_url=soft.gateway_url, headers=basic(IDENTITIES[who])
            ) as http,
            http.request(method, path) as resp,
        ):
            return resp.status

    one, restore = f"/deleted-flows/{flow_id}", f"/deleted-flows/{flow_id}/restore"
    # No permission at all on its classes: as unknown, and not listed.
    assert await call("sport", "GET", one) == 404
    async with aiohttp.ClientSession(
        base_url=soft.gateway_url, headers=basic(IDENTITIES["sport"])
    ) as http:
        assert flow_id not in [d["flow"]["id"] for d in await list_all(http, "/deleted-flows")]
    # The read scope reads it, but restoring needs the delete scope...
    assert await call("reader", "GET", one) == 200
    assert await call("reader", "POST", restore) == 403
    # ...and delete permission on the flow: copy editors may read and write it, not delete.
    assert await call("copyed", "GET", one) == 200
    assert await call("copyed", "POST", restore) == 403
    assert await call("copyed", "DELETE", one) == 403
    assert await call("news", "POST", restore) == 200
    await get_json(client, f"/flows/{flow_id}")


async def test_pages_of_deleted_flows_fill_with_what_the_caller_may_read(
    client: aiohttp.ClientSession, soft: Stack
) -> None:
    """Deleted flows the caller may not read are skipped, not left as holes: a page reads on
    until it holds `limit` readable ones, so only the last page is short."""
    first = video_flow(tags={"auth_classes": ["news"]})
    sport = [video_flow(tags={"auth_classes": ["sport"]}) for _ in range(4)]
    last = video_flow(tags={"auth_classes": ["news"]})
    for flow in (first, *sport, last):
        await put_flow(client, flow)
        assert (await send_json(client, "DELETE", f"/flows/{flow['id']}"))[0] == 204

    async def pages(who: str) -> list[list[str]]:
        found: list[list[str]] = []
        url: str | None = "/deleted-flows?limit=2"
        async with aiohttp.ClientSession(
            base_url=soft.gateway_url, headers=basic(IDENTITIES[who])
        ) as http:
            while url is not None:
                async with http.get(url) as resp:
                    assert resp.status == 200, await resp.text()
                    found.append([d["flow"]["id"] for d in await resp.json()])
                    link = resp.headers.get("Link")
                    url = None if link is None else link[1 : link.index(">")]
        return found

    news_pages = await pages("news")
    # Most recently deleted first: the four sport flows between the two are skipped.
    assert news_pages[0] == [last["id"], first["id"]]
    assert all(len(page) == 2 for page in news_pages[:-1])
    assert not {f["id"] for f in sport} & {i for page in news_pages for i in page}
    sport_pages = await pages("sport")
    assert sport_pages[:2] == [[sport[3]["id"], sport[2]["id"]], [sport[1]["id"], sport[0]["id"]]]
    assert all(len(page) == 2 for page in sport_pages[:-1])


async def test_events_of_a_soft_delete_and_a_restore(
    client: aiohttp.ClientSession, soft: Stack
) -> None:
    """A soft delete publishes what a deletion does; a restore what a creation does."""
    flow, _ = await flow_with_segments(client, 2)
    flow_id, source_id = flow["id"], flow["source_id"]
    topic = f"{soft.env['TAMS_KAFKA_TOPIC_PREFIX']}.events"

    def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["key"] in (flow_id, source_id)]

    def kinds(events: list[dict[str, Any]]) -> list[str]:
        return [e["event_type"] for e in mine(events)]

    async with EventReader(soft.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"], topic) as reader:
        assert (await send_json(client, "DELETE", f"/flows/{flow_id}"))[0] == 204
        # (a flow's events are in order; its source's are keyed, so partitioned, apart)
        seen = await reader.until(lambda events: len(kinds(events)) == 3)
        assert sorted(kinds(seen)) == ["flows/deleted", "flows/segments_deleted", "sources/deleted"]
        flow_kinds = [k for k in kinds(seen) if k.startswith("flows/")]
        assert flow_kinds == ["flows/segments_deleted", "flows/deleted"]
        deleted = next(e for e in mine(seen) if e["event_type"] == "flows/segments_deleted")
        assert deleted["event"] == {"flow_id": flow_id, "timerange": "[0:0_2:0)"}
        status, _, _ = await send_json(client, "POST", f"/deleted-flows/{flow_id}/restore")
        assert status == 200
        seen = await reader.until(lambda events: len(kinds(events)) == 5)
        assert sorted(kinds(seen)[3:]) == ["flows/created", "sources/created"]
        created = next(e for e in mine(seen) if e["event_type"] == "flows/created")
        assert created["event"]["flow"]["id"] == flow_id


async def test_a_hidden_and_restored_collector_announces_what_it_changes(
    client: aiohttp.ClientSession, soft: Stack
) -> None:
    """A flow that collects others changes its members' sources' `collected_by` when it is
    hidden and when it is restored (each a `sources/updated`), and its source comes back with
    its `source_collection` (in `sources/created`), as the sources read afterwards."""
    member = video_flow()
    await put_flow(client, member)
    collector = multi_flow([member["id"]])
    topic = f"{soft.env['TAMS_KAFKA_TOPIC_PREFIX']}.events"

    def of(events: list[dict[str, Any]], kind: str, source_id: str) -> list[dict[str, Any]]:
        return [
            e["event"]["source"]
            for e in events
            if e["event_type"] == f"sources/{kind}" and e["key"] == source_id
        ]

    # (each source's events are in order: they are keyed by its id)
    async with EventReader(soft.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"], topic) as reader:
        await put_flow(client, collector)
        assert (await send_json(client, "DELETE", f"/flows/{collector['id']}"))[0] == 204
        seen = await reader.until(
            lambda events: len(of(events, "updated", member["source_id"])) == 2
        )
        hidden = of(seen, "updated", member["source_id"])[-1]
        assert "collected_by" not in hidden
        assert hidden == await get_json(client, f"/sources/{member['source_id']}")

        path = f"/deleted-flows/{collector['id']}/restore"
        assert (await send_json(client, "POST", path))[0] == 200
        seen = await reader.until(
            lambda events: (
                len(of(events, "created", collector["source_id"])) == 2
                and len(of(events, "updated", member["source_id"])) == 3
            )
        )
    born = of(seen, "created", collector["source_id"])[-1]
    assert [s["id"] for s in born["source_collection"]] == [member["source_id"]]
    assert born == await get_json(client, f"/sources/{collector['source_id']}")
    changed = of(seen, "updated", member["source_id"])[-1]
    assert changed["collected_by"] == [collector["source_id"]]
    assert changed == await get_json(client, f"/sources/{member['source_id']}")


async def test_an_object_only_hidden_flows_use_is_nobody_elses(
    soft: Stack, client: aiohttp.ClientSession
) -> None:
    """An object released from a news flow (its grace decided by the news classes), then
    written into a sport flow, is sport's: once sport hides that flow, news may neither read
    it nor touch its instances."""
    news_flow = video_flow(tags={"auth_classes": ["news"]})
    sport_flow = video_flow(tags={"auth_classes": ["sport"]})
    for flow in (news_flow, sport_flow):
        await put_flow(client, flow)
    (object_id,) = await allocate_and_upload(client, news_flow["id"], [b"once news"])

    async def send(who: str, method: str, path: str, body: Any = None) -> int:
        async with (
            aiohttp.ClientSession(
                base_url=soft.gateway_url, headers=basic(IDENTITIES[who])
            ) as http,
            http.request(method, path, json=body) as resp,
        ):
            return resp.status

    segment = {"object_id": object_id, "timerange": "[0:0_1:0)"}
    assert await send("news", "POST", f"/flows/{news_flow['id']}/segments", segment) == 201
    assert await send("news", "DELETE", f"/flows/{news_flow['id']}") == 204  # hidden
    assert await send("news", "DELETE", f"/deleted-flows/{news_flow['id']}") == 204  # purged
    assert (await post(client, sport_flow["id"], segment))[0] == 201  # within the grace
    assert await send("sport", "DELETE", f"/flows/{sport_flow['id']}") == 204  # hidden
    assert await send("news", "GET", f"/objects/{object_id}") == 404
    instance = {"url": "https://cdn.example.com/x.ts", "label": "cdn"}
    assert await send("news", "POST", f"/objects/{object_id}/instances", instance) == 404
