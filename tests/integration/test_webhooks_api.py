"""`/service/webhooks` over real HTTP: status codes, bodies, listing, the status state machine."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import list_all, new_id, video_flow
from .receivers import Webhooks, receiving


@pytest_asyncio.fixture
async def hooks(http: aiohttp.ClientSession) -> AsyncIterator[Webhooks]:
    webhooks = Webhooks(http)
    yield webhooks
    await webhooks.delete_all()


async def test_service_advertises_webhooks(http: aiohttp.ClientSession) -> None:
    async with http.get("/service") as resp:
        mechanisms = (await resp.json())["event_stream_mechanisms"]
    assert "webhooks" in [m["name"] for m in mechanisms]


async def test_register_read_and_delete(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    body = json.loads((spec.api_dir / "examples" / "webhook-post.json").read_text())
    body["status"] = "disabled"  # the example's receiver is not ours: send it nothing
    async with http.post("/service/webhooks", json=body) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    hooks.ids.append(created["id"])
    spec.validate(created, "webhook-get.json")
    assert uuid.UUID(created["id"])
    assert "api_key_value" not in created
    assert created["status"] == "disabled"
    assert {k: v for k, v in created.items() if k not in ("id", "status")} == {
        k: v for k, v in body.items() if k not in ("api_key_value", "status")
    }

    got = await hooks.get(created["id"])
    assert got == created
    async with http.head(f"/service/webhooks/{created['id']}") as resp:
        assert resp.status == 200
        assert await resp.read() == b""

    async with http.delete(f"/service/webhooks/{created['id']}") as resp:
        assert resp.status == 204
    for method in ("GET", "DELETE"):
        async with http.request(method, f"/service/webhooks/{created['id']}") as resp:
            assert resp.status == 404
            spec.validate(await resp.json(), "error.json")
    async with http.get("/service/webhooks/not-a-uuid") as resp:
        assert resp.status == 404


async def test_listing_sorts_by_url_filters_by_tag_and_pages(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    run = new_id()  # this test's webhooks carry this tag, so others' do not interfere
    urls = [f"https://{host}.example/hook" for host in ("charlie", "alpha", "bravo")]
    for i, url in enumerate(urls):
        await hooks.register(
            url, ["flows/created"], status="disabled", tags={"run": run, "n": [str(i), "any"]}
        )
    mine = f"/service/webhooks?tag.run={run}"
    listed = await list_all(http, f"{mine}&limit=1")
    spec.validate_list(listed, "webhook-get.json")
    assert [w["url"] for w in listed] == sorted(urls)
    assert all("api_key_value" not in w for w in listed)

    async with http.get(f"{mine}&reverse_order=true&limit=2") as resp:
        assert resp.status == 200
        page = await resp.json()
        assert [w["url"] for w in page] == sorted(urls, reverse=True)[:2]
        assert resp.headers["X-Paging-Limit"] == "2"
        assert resp.headers["X-Paging-Count"] == "2"
        assert resp.headers["X-Paging-Reverse-Order"] == "true"
        assert "X-Paging-NextKey" in resp.headers and 'rel="next"' in resp.headers["Link"]
    async with http.head(f"{mine}&limit=2") as resp:
        assert resp.status == 200
        assert resp.headers["X-Paging-Count"] == "2"
        assert await resp.read() == b""

    async with http.get(f"{mine}&tag.n=0,2") as resp:
        assert sorted(w["url"] for w in await resp.json()) == sorted([urls[0], urls[2]])
    async with http.get(f"{mine}&tag.n=any") as resp:
        assert len(await resp.json()) == 3
    async with http.get(f"{mine}&tag_exists.n=false") as resp:
        assert await resp.json() == []
    async with http.get("/service/webhooks?page=garbage") as resp:
        assert resp.status == 400


async def test_replace_and_the_status_state_machine(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    created = await hooks.register("https://a.example/hook", ["flows/created"], status="disabled")
    resp = await hooks.put(created, url="https://b.example/hook", tags={"k": "v"})
    assert resp.status == 201
    replaced = await hooks.get(created["id"])
    spec.validate(replaced, "webhook-get.json")
    assert replaced["url"] == "https://b.example/hook"
    assert replaced["tags"] == {"k": "v"} and replaced["status"] == "disabled"
    # Full replacement: what the PUT leaves out is gone.
    resp = await hooks.put({k: v for k, v in replaced.items() if k != "tags"})
    assert resp.status == 201
    assert "tags" not in await hooks.get(created["id"])

    # disabled -> created (enabled): the worker picks it up and it is `started`.
    assert (await hooks.put(replaced, status="created")).status == 201
    await hooks.wait_status(created["id"], "started")
    # created|started -> disabled
    assert (await hooks.put(replaced, status="disabled")).status == 201
    assert (await hooks.get(created["id"]))["status"] == "disabled"

    async with http.put(f"/service/webhooks/{new_id()}", json={**replaced, "id": None}) as r:
        assert r.status == 400  # body id does not match the path
    unknown = new_id()
    async with http.put(f"/service/webhooks/{unknown}", json={**replaced, "id": unknown}) as r:
        assert r.status == 404
        spec.validate(await r.json(), "error.json")
    without_status = {k: v for k, v in replaced.items() if k != "status"}
    async with http.put(f"/service/webhooks/{created['id']}", json=without_status) as r:
        assert r.status == 400
    async with http.put(
        f"/service/webhooks/{created['id']}", json={**replaced, "status": "started"}
    ) as r:
        assert r.status == 400


async def test_error_cannot_be_disabled_but_can_be_re_enabled(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    async with receiving() as receiver:
        url = receiver.url
    # Nothing listens there now: every attempt is refused at once, so it goes to `error`.
    flow_id = new_id()
    created = await hooks.register(url, ["flows/created"], flow_ids=[flow_id])
    async with http.put(f"/flows/{flow_id}", json=video_flow(flow_id)) as resp:
        assert resp.status == 201
    failed = await hooks.wait_status(created["id"], "error")
    spec.validate(failed, "webhook-get.json")
    spec.validate(failed["error"], "error.json")
    assert "could not connect" in failed["error"]["summary"]

    resp = await hooks.put(failed, status="disabled")
    assert resp.status == 400
    assert (await hooks.get(created["id"]))["status"] == "error"
    # A client may send back what it read, `error` included (the server's to set): ignored.
    async with http.put(
        f"/service/webhooks/{created['id']}", json={**failed, "status": "created"}
    ) as resp:
        assert resp.status == 201, await resp.text()
        spec.validate(await resp.json(), "webhook-get.json")
    enabled = await hooks.get(created["id"])
    assert enabled["status"] in ("created", "started") and "error" not in enabled


BAD_BODIES: list[tuple[Any, str]] = [
    ({"url": "https://a.example/", "events": ["flows/renamed"]}, "flows/renamed"),
    ({"url": "https://a.example/", "events": "flows/created"}, "events"),
    ({"url": "https://a.example/", "events": ["flows/created"], "flow_ids": ["x"]}, "flow_ids"),
    (
        {"url": "https://a.example/", "events": [], "source_collected_by_ids": ["nope"]},
        "source_collected_by_ids",
    ),
    (
        {"url": "https://a.example/", "events": [], "accept_storage_ids": ["1"]},
        "accept_storage_ids",
    ),
    ({"url": "https://a.example/", "events": [], "accept_get_urls": "a,b"}, "accept_get_urls"),
    ({"url": "https://a.example/", "events": [], "presigned": "yes"}, "presigned"),
    ({"url": "https://a.example/", "events": [], "tags": {"a": 1}}, "tags"),
    ({"url": "https://a.example/", "events": [], "batch_size": 10}, "batch_size"),
    ({"url": "https://a.example/", "events": [], "status": "started"}, "status"),
    ({"url": "ftp://a.example/", "events": []}, "http or https"),
    ({"url": "not a url", "events": []}, "url"),
    ({"url": "https://user:pw@a.example/", "events": []}, "user info"),
    ({"url": "http://10.1.2.3/hook", "events": []}, "not a public address"),
    ({"url": "http://[::ffff:192.168.0.1]/", "events": []}, "not a public address"),
    ({"url": "http://169.254.169.254/latest/meta-data/", "events": []}, "metadata"),
    ({"url": "http://metadata.google.internal/", "events": []}, "metadata"),
    ({"url": "https://a.example/", "events": [], "api_key_value": "v"}, "api_key_name"),
    ({"url": "https://a.example/", "events": [], "api_key_name": "X-Key"}, "api_key_value"),
    (
        {"url": "https://a.example/", "events": [], "api_key_name": "Host", "api_key_value": "v"},
        "api_key_name",
    ),
    *(
        (
            {"url": "https://a.example/", "events": [], "api_key_name": n, "api_key_value": "v"},
            "api_key_name",
        )
        for n in ("traceparent", "Expect")
    ),
    (
        {"url": "https://a.example/", "events": [], "api_key_name": "X", "api_key_value": "a\nb"},
        "printable ASCII",
    ),
    ({"events": ["flows/created"]}, "url"),
    ({"url": "https://a.example/"}, "events"),
    (["https://a.example/"], "JSON object"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
async def test_bad_registrations_are_400_and_create_nothing(
    http: aiohttp.ClientSession, spec: SpecValidator, body: Any, named: str
) -> None:
    before = await list_all(http, "/service/webhooks?limit=1000")
    async with http.post("/service/webhooks", json=body) as resp:
        assert resp.status == 400, await resp.text()
        error = await resp.json()
    spec.validate(error, "error.json")
    assert named in error["summary"]
    assert await list_all(http, "/service/webhooks?limit=1000") == before


async def test_the_local_stack_s_own_servers_are_no_receivers(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    """Loopback receivers are allowed on the local stack, but not its broker's or S3
    server's other ports: weed's master API has no authentication, and a webhook there could
    delete every object (a security audit did). The S3 API checks signatures, and copies
    read presigned URLs of it (test_instances)."""
    if tams_stack.object_store is None or tams_stack.broker is None:
        pytest.skip("the broker and S3 server are not this stack's own")
    master, filer = tams_stack.object_store.ports[0], tams_stack.object_store.ports[4]
    for url in (
        f"http://127.0.0.1:{master}/col/delete?collection=tams-media",
        f"http://127.0.0.1:{filer}/buckets/tams-media/",
        f"http://127.0.0.1:{tams_stack.broker.port}/",
    ):
        body = {"url": url, "events": ["flows/created"]}
        async with http.post("/service/webhooks", json=body) as resp:
            assert resp.status == 400
            assert "own servers" in (await resp.json())["summary"]
