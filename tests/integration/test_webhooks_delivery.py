"""Webhook delivery end to end: real receivers on loopback, real broker, store and services.

The stack is shared by the whole session, so a webhook here either filters on this test's own
flows and sources, or the assertions look only at this test's ids.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import eventually, multi_flow, new_id, put_flow, video_flow
from .receivers import Receiver, Request, Webhooks, receiving
from .test_segments import allocate_and_upload

ALL_EVENTS = [
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
]


@pytest_asyncio.fixture
async def hooks(http: aiohttp.ClientSession) -> AsyncIterator[Webhooks]:
    webhooks = Webhooks(http)
    yield webhooks
    await webhooks.delete_all()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as found:
        yield found


@contextlib.asynccontextmanager
async def own_services(
    session: Stack, admin_headers: dict[str, str], env: dict[str, str]
) -> AsyncIterator[tuple[Stack, aiohttp.ClientSession]]:
    """The services that make and deliver events, with settings of their own, beside the
    session stack; and an admin client of their gateway."""
    from .standalone import standalone

    services = ("catalog", "segments", "webhooks", "gateway")
    async with (
        standalone(session, services, env) as stack,
        aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
    ):
        yield stack, http


async def ok(resp_cm: Any, status: int = 204) -> None:
    async with resp_cm as resp:
        assert resp.status == status, await resp.text()


def subject(request: Request) -> str:
    """The flow or source id an event is about."""
    event = request.event
    for key in ("flow", "source"):
        if key in event:
            return str(event[key]["id"])
    return str(event.get("flow_id") or event.get("source_id"))


def about(*ids: str) -> Any:
    return lambda request: subject(request) in ids


async def test_every_event_type_with_the_spec_payload(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, spec: SpecValidator
) -> None:
    flow = video_flow()
    source_id = flow["source_id"]
    webhook = await hooks.register(
        receiver.url,
        ALL_EVENTS,
        source_ids=[source_id],
        api_key_name="X-Api-Key",
        api_key_value="s3cret",
    )
    await hooks.wait_status(webhook["id"], "started")
    await put_flow(http, flow)
    await ok(http.put(f"/flows/{flow['id']}/label", json="renamed"))
    await ok(http.put(f"/sources/{source_id}/label", json="camera"))
    (object_id,) = await allocate_and_upload(http, flow["id"], [b"media"])
    segment = {"object_id": object_id, "timerange": "[0:0_2:0)"}
    await ok(http.post(f"/flows/{flow['id']}/segments", json=segment), 201)
    await ok(http.delete(f"/flows/{flow['id']}"))

    got = await receiver.wait_for(8, about(flow["id"], source_id))
    flow_events = [r for r in got if r.event_type.startswith("flows/")]
    source_events = [r for r in got if r.event_type.startswith("sources/")]
    # Each subject's events arrive in the order they happened.
    assert [r.event_type for r in flow_events] == [
        "flows/created",
        "flows/updated",
        "flows/segments_added",
        "flows/segments_deleted",
        "flows/deleted",
    ]
    assert [r.event_type for r in source_events] == [
        "sources/created",
        "sources/updated",
        "sources/deleted",
    ]
    created, updated, added, deleted_segments, deleted = flow_events
    for request in got:
        assert set(request.body) == {"event_timestamp", "event_type", "event"}
        assert request.body["event_timestamp"].endswith("Z")
        assert request.headers["X-Api-Key"] == "s3cret"
        assert request.headers["Content-Type"] == "application/json"
    spec.validate(created.event["flow"], "flow-get.json")
    assert created.event["flow"]["id"] == flow["id"]
    assert updated.event["flow"]["label"] == "renamed"
    assert added.event["flow_id"] == flow["id"]
    spec.validate_list(added.event["segments"], "flow-segment.json")
    assert [s["object_id"] for s in added.event["segments"]] == [object_id]
    assert deleted_segments.event == {"flow_id": flow["id"], "timerange": "[0:0_2:0)"}
    assert deleted.event == {"flow_id": flow["id"]}
    spec.validate(source_events[0].event["source"], "source.json")
    assert source_events[1].event["source"]["label"] == "camera"
    assert source_events[2].event == {"source_id": source_id}


async def test_filters_on_flows_sources_and_collections(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    member, loose = video_flow(), video_flow()
    await put_flow(http, member)
    await put_flow(http, loose)
    collector = multi_flow([member["id"]])
    events = ["flows/updated", "sources/updated"]
    async with receiving() as settle:
        # The collection makes its own sources/updated: let them pass before the webhooks
        # under test exist, so that those see only the changes below.
        settling = await hooks.register(settle.url, events)
        await put_flow(http, collector)
        await settle.wait_for(1, about(member["source_id"]))
        await ok(http.delete(f"/service/webhooks/{settling['id']}"))
    cases: dict[str, dict[str, Any]] = {
        "flow_ids": {"flow_ids": [member["id"]]},
        "source_ids": {"source_ids": [loose["source_id"]]},
        "flow_collected": {"flow_collected_by_ids": [collector["id"]]},
        "flow_uncollected": {"flow_collected_by_ids": []},
        "source_collected": {"source_collected_by_ids": [collector["source_id"]]},
        "source_uncollected": {"source_collected_by_ids": []},
        "anded": {"flow_ids": [member["id"]], "source_ids": [loose["source_id"]]},
    }
    receivers: dict[str, Receiver] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, filters in cases.items():
            receivers[name] = await stack.enter_async_context(receiving())
            await hooks.register(receivers[name].url, events, **filters)
        # A witness that takes everything: once it has seen the last event, so have the others.
        await hooks.register(receiver.url, events)
        for flow in (member, loose):
            await ok(http.put(f"/flows/{flow['id']}/label", json="x"))
            await ok(http.put(f"/sources/{flow['source_id']}/label", json="y"))
        ours = about(member["id"], loose["id"], member["source_id"], loose["source_id"])
        await receiver.wait_for(4, ours)

        expected = {
            # flow_ids limits flow events only; source events pass.
            "flow_ids": {member["id"], member["source_id"], loose["source_id"]},
            "source_ids": {loose["id"], loose["source_id"]},
            # flow_collected_by_ids limits flow events only.
            "flow_collected": {member["id"], member["source_id"], loose["source_id"]},
            "flow_uncollected": {loose["id"], member["source_id"], loose["source_id"]},
            # source_collected_by_ids limits flow and source events by the flow's source.
            "source_collected": {member["id"], member["source_id"]},
            "source_uncollected": {loose["id"], loose["source_id"]},
            "anded": {loose["source_id"]},
        }
        for name, wanted in expected.items():
            got = await receivers[name].wait_for(len(wanted), ours)
            assert {subject(r) for r in got} == wanted, name
            assert len(got) == len(wanted), name


async def test_url_options_shape_segments_added(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    async with http.get("/service/storage-backends") as resp:
        backend = next(b for b in await resp.json() if b.get("default_storage"))
    variants: dict[str, dict[str, Any]] = {
        "default": {},
        "no_urls": {"accept_get_urls": []},
        "by_label": {"accept_get_urls": [backend["label"]]},
        "other_label": {"accept_get_urls": ["elsewhere"]},
        "not_presigned": {"presigned": False},
        "verbose": {"verbose_storage": True},
        "object_timerange": {"include_object_timerange": True},
        "by_storage": {"accept_storage_ids": [backend["id"]]},
        "other_storage": {"accept_storage_ids": [new_id()]},
    }
    receivers: dict[str, Receiver] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, options in variants.items():
            receivers[name] = await stack.enter_async_context(receiving())
            await hooks.register(
                receivers[name].url, ["flows/segments_added"], flow_ids=[flow["id"]], **options
            )
        payload = b"segment bytes " * 100
        (object_id,) = await allocate_and_upload(http, flow["id"], [payload])
        segment = {"object_id": object_id, "timerange": "[10:0_12:0)", "ts_offset": "10:0"}
        await ok(http.post(f"/flows/{flow['id']}/segments", json=segment), 201)
        got: dict[str, dict[str, Any]] = {}
        for name, found in receivers.items():
            (request,) = await found.wait_for(1)
            (got[name],) = request.event["segments"]
            spec.validate(got[name], "flow-segment.json")

    default_urls = got["default"]["get_urls"]
    assert default_urls and all(set(u) == {"url", "presigned", "label"} for u in default_urls)
    assert "object_timerange" not in got["default"]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(default_urls[0]["url"]) as r:
        assert r.status == 200 and await r.read() == payload  # signed at delivery, and works
    assert got["no_urls"]["get_urls"] == []
    assert got["by_label"]["get_urls"] == default_urls
    assert got["other_label"]["get_urls"] == []
    assert got["not_presigned"]["get_urls"] == []
    assert [u["storage_id"] for u in got["verbose"]["get_urls"]] == [backend["id"]]
    assert got["verbose"]["get_urls"][0]["controlled"] is True
    assert got["object_timerange"]["object_timerange"] == "[0:0_2:0)"
    assert got["by_storage"]["get_urls"] == default_urls
    assert got["other_storage"]["get_urls"] == []
    assert all(s["ts_offset"] == "10:0" for s in got.values())


async def test_a_failing_receiver_gets_the_event_again_in_order(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    receiver.fail_next = 3
    webhook = await hooks.register(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
    for label in ("a", "b", "c"):
        await ok(http.put(f"/flows/{flow['id']}/label", json=label))
    await receiver.wait_for(3)
    labels = [(r.event["flow"]["label"], r.status) for r in receiver.requests]
    assert labels == [("a", 500), ("a", 500), ("a", 500), ("a", 200), ("b", 200), ("c", 200)]
    assert [r.headers["Tams-Delivery-Attempt"] for r in receiver.requests[:4]] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert len({r.event_id for r in receiver.requests[:4]}) == 1
    assert (await hooks.get(webhook["id"]))["status"] == "started"


async def webhooks_metric(stack: Stack, name: str) -> float:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{stack.services['webhooks'].url}/metrics") as resp,
    ):
        text = await resp.text()
    (line,) = [x for x in text.splitlines() if x.startswith(f"{name} ")]
    return float(line.split()[1])


async def events_dropped(stack: Stack) -> float:
    return await webhooks_metric(stack, "tams_webhook_events_dropped_total")


async def test_a_receiver_that_never_answers_goes_to_error_and_can_be_re_enabled(
    http: aiohttp.ClientSession,
    hooks: Webhooks,
    receiver: Receiver,
    spec: SpecValidator,
    tams_stack: Stack,
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    receiver.hang = True
    dropped_before = await events_dropped(tams_stack)
    webhook = await hooks.register(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
    await ok(http.put(f"/flows/{flow['id']}/label", json="lost"))
    failed = await hooks.wait_status(webhook["id"], "error")
    # The event given up on is counted as dropped (it will never be delivered).
    assert await events_dropped(tams_stack) >= dropped_before + 1
    spec.validate(failed["error"], "error.json")
    assert "timeout" in failed["error"]["summary"]
    assert "flows/updated" in failed["error"]["summary"]

    receiver.hang = False
    assert (await hooks.put(failed, status="created")).status == 201
    await hooks.wait_status(webhook["id"], "started")
    await ok(http.put(f"/flows/{flow['id']}/label", json="after"))
    (got,) = await receiver.wait_for(1)
    # Re-enabled webhooks start with new events: the one that failed is not sent again.
    assert got.event["flow"]["label"] == "after"


async def test_a_dead_receiver_does_not_delay_the_others(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    async with receiving() as dead:
        dead.hang = True
        await hooks.register(dead.url, ["flows/updated"], flow_ids=[flow["id"]])
        await hooks.register(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
        for n in range(5):
            await ok(http.put(f"/flows/{flow['id']}/label", json=str(n)))
        got = await receiver.wait_for(5)
        assert [r.event["flow"]["label"] for r in got] == ["0", "1", "2", "3", "4"]
        # The dead one got its first event and is still waiting for its own answer.
        assert dead.arrived >= 1 and dead.requests == []


async def test_key_value_is_kept_on_replace_and_sealed_at_rest(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    webhook = await hooks.register(
        receiver.url,
        ["flows/created"],
        flow_ids=[flow["id"]],
        api_key_name="Authorization",
        api_key_value="Bearer 21238dksdjqwpqscj9",
    )
    # Replaced without the (write-only) value: the stored one is kept.
    assert (await hooks.put(webhook, events=["flows/updated"], status="created")).status == 201
    await ok(http.put(f"/flows/{flow['id']}/label", json="x"))
    (got,) = await receiver.wait_for(1)
    assert got.headers["Authorization"] == "Bearer 21238dksdjqwpqscj9"
    with sqlite3.connect(tams_stack.data_dir / "tams.db") as db:
        (stored,) = db.execute(
            "SELECT api_key_value FROM webhooks WHERE id = ?", (webhook["id"],)
        ).fetchone()
    assert stored.startswith("fernet:") and "21238dksdjqwpqscj9" not in stored

    # The stored key goes only to the receiver it was given for: moving the webhook to
    # another origin needs the key again (else anyone who may edit it could take the key).
    elsewhere = "http://127.0.0.1:9/collect"
    refused = await hooks.put(webhook, url=elsewhere, status="created")
    assert refused.status == 400
    moved = await hooks.put(
        webhook, url=elsewhere, status="created", api_key_value="Bearer another"
    )
    assert moved.status == 201


def signed_by(secret: str, request: Request) -> bool:
    """A receiver's check, written from the Standard Webhooks text (not from the server's
    code): HMAC-SHA256 under the secret's bytes of `id.timestamp.body`, base64, after `v1,`."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.raw
    expected = "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode()
    return any(
        hmac.compare_digest(expected, given) for given in headers["webhook-signature"].split()
    )


async def test_signed_deliveries(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    webhook = await hooks.register(
        receiver.url, ["flows/updated"], flow_ids=[flow["id"]], signing_secret=secret
    )
    assert "signing_secret" not in webhook
    assert "signing_secret" not in await hooks.get(webhook["id"])
    await ok(http.put(f"/flows/{flow['id']}/label", json="a"))
    (first,) = await receiver.wait_for(1)
    assert signed_by(secret, first)
    headers = {k.lower(): v for k, v in first.headers.items()}
    assert headers["webhook-id"] == first.event_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    with sqlite3.connect(tams_stack.data_dir / "tams.db") as db:
        (stored,) = db.execute(
            "SELECT signing_secret FROM webhooks WHERE id = ?", (webhook["id"],)
        ).fetchone()
    assert stored.startswith("fernet:") and secret not in stored

    # A replacement that leaves the (write-only) secret out keeps it, wherever the URL goes:
    # the secret itself never leaves the server.
    assert (await hooks.put(webhook, status="created")).status == 201
    await ok(http.put(f"/flows/{flow['id']}/label", json="b"))
    second = (await receiver.wait_for(2))[-1]
    assert signed_by(secret, second)
    # `""` stops signing.
    assert (await hooks.put(webhook, status="created", signing_secret="")).status == 201
    await ok(http.put(f"/flows/{flow['id']}/label", json="c"))
    third = (await receiver.wait_for(3))[-1]
    assert "webhook-signature" not in {k.lower() for k in third.headers}

    for bad in ("s3cret", "whsec_not base64", "whsec_" + base64.b64encode(b"short").decode(), 7):
        body = {"url": receiver.url, "events": ["flows/updated"], "signing_secret": bad}
        async with http.post("/service/webhooks", json=body) as resp:
            assert resp.status == 400
            assert "signing_secret" in (await resp.json())["summary"]
    # Nor may the signature's headers be taken by the API key.
    body = {
        "url": receiver.url,
        "events": ["flows/updated"],
        "api_key_name": "Webhook-Signature",
        "api_key_value": "v1,forged",
    }
    async with http.post("/service/webhooks", json=body) as resp:
        assert resp.status == 400


async def test_nothing_is_lost_when_the_service_is_killed_mid_stream(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    receiver.delay_s = 0.02  # a backlog builds up in the queue
    await hooks.register(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
    labels = [f"label {n}" for n in range(30)]
    try:
        for label in labels[:20]:
            await ok(http.put(f"/flows/{flow['id']}/label", json=label))
        await receiver.wait_for(3)
        webhooks_service = tams_stack.services["webhooks"].process
        webhooks_service.popen.kill()  # SIGKILL: no chance to flush or commit anything
        webhooks_service.popen.wait(timeout=10)
        tams_stack.stop_service("webhooks")
        for label in labels[20:]:  # published while nobody delivers
            await ok(http.put(f"/flows/{flow['id']}/label", json=label))
    finally:
        if "webhooks" not in tams_stack.services:
            tams_stack.start_service("webhooks")
        await tams_stack.wait_ready(("webhooks",))
    got = await receiver.wait_for(30, timeout=30)
    # At least once: some may arrive twice, but every event arrives, in order.
    assert [r.event["flow"]["label"] for r in got] == labels


async def test_one_registration_many_webhooks_same_url(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    """Several webhooks may share a URL; each gets its own copy."""
    flow = video_flow()
    await put_flow(http, flow)
    for _ in range(3):
        await hooks.register(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
    await ok(http.put(f"/flows/{flow['id']}/label", json="x"))
    await receiver.wait_until(lambda: len(receiver.requests) >= 3)
    assert len({r.event_id for r in receiver.requests}) == 1


async def test_a_new_url_is_used_by_a_retry_waiting_for_a_send_slot(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A delivery waiting for a send slot (all taken) is not on the wire: a PUT that moves the
    webhook, answered meanwhile, sends it to the new URL, never to the old one."""
    env = {
        # One slot for first attempts and one for retries; a retry holds its slot until the
        # receiver lets go (the timeout is far off), so another waits as long as the test
        # needs; retries start at once.
        "TAMS_WEBHOOKS_MAX_CONCURRENT_DELIVERIES": "1",
        "TAMS_WEBHOOKS_TIMEOUT_S": "120",
        "TAMS_WEBHOOKS_RETRY_BASE_S": "0.001",
        "TAMS_WEBHOOKS_RETRY_MAX_S": "0.001",
    }
    async with (
        own_services(tams_stack, admin_headers, env) as (_stack, http),
        receiving() as holder,
        receiving() as old,
        receiving() as new,
    ):
        hooks = Webhooks(http)
        busy_flow, flow = video_flow(), video_flow()
        await put_flow(http, busy_flow)
        await put_flow(http, flow)
        holding = await hooks.register(holder.url, ["flows/updated"], flow_ids=[busy_flow["id"]])
        webhook = await hooks.register(old.url, ["flows/updated"], flow_ids=[flow["id"]])
        for created in (holding, webhook):
            await hooks.wait_status(created["id"], "started")
        # The holder fails its first attempt, then holds the retries' one slot.
        holder.fail_next, holder.hang = 1, True
        await ok(http.put(f"/flows/{busy_flow['id']}/label", json="busy"))
        await holder.wait_until(lambda: holder.arrived == 2)
        # The old receiver fails its first attempt: the retry waits for that slot.
        old.fail_next = 1
        await ok(http.put(f"/flows/{flow['id']}/label", json="moved"))
        await old.wait_until(lambda: len(old.requests) == 1)
        assert (await hooks.put(webhook, url=new.url)).status == 201
        await holder.stop()  # lets go of the slot
        (got,) = await new.wait_for(1)
        assert got.event["flow"]["label"] == "moved"
        assert [r.status for r in old.requests] == [500]


async def test_a_retry_waits_as_long_as_the_receiver_asks(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A 429 with `Retry-After: 1` is tried again no sooner than a second later, though the
    backoff alone would retry within milliseconds."""
    env = {"TAMS_WEBHOOKS_RETRY_BASE_S": "0.001", "TAMS_WEBHOOKS_RETRY_MAX_S": "5"}
    async with (
        own_services(tams_stack, admin_headers, env) as (_stack, http),
        receiving() as receiver,
    ):
        hooks = Webhooks(http)
        flow = video_flow()
        await put_flow(http, flow)
        await hooks.register_started(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
        receiver.fail_next = 1
        receiver.fail_status, receiver.fail_headers = 429, {"Retry-After": "1"}
        await ok(http.put(f"/flows/{flow['id']}/label", json="later"))
        (got,) = await receiver.wait_for(1)
        refused, delivered = receiver.requests
        assert (refused.status, delivered.status) == (429, 200)
        assert delivered.received_at - refused.received_at >= 1.0
        assert got.event["flow"]["label"] == "later"


async def test_a_slow_receivers_backlog_shows_in_the_metrics(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, tams_stack: Stack
) -> None:
    """A receiver that answers 2xx, too slowly, keeps its webhook `started` while events
    pile up: the backlog gauges show it, and go back down once it keeps up."""
    flow = video_flow()
    await put_flow(http, flow)
    webhook = await hooks.register_started(receiver.url, ["flows/updated"], flow_ids=[flow["id"]])
    before = await webhooks_metric(tams_stack, "tams_webhook_backlog_max_events")
    receiver.delay_s = 0.3
    for n in range(8):
        await ok(http.put(f"/flows/{flow['id']}/label", json=f"label {n}"))

    async def piled_up() -> bool:
        return await webhooks_metric(tams_stack, "tams_webhook_backlog_max_events") >= 5

    await eventually(piled_up, "the backlog to show")
    assert await webhooks_metric(tams_stack, "tams_webhook_backlog_events") >= 5
    assert (await hooks.get(webhook["id"]))["status"] == "started"
    receiver.delay_s = 0
    await receiver.wait_for(8)

    async def caught_up() -> bool:
        return await webhooks_metric(tams_stack, "tams_webhook_backlog_max_events") <= before

    await eventually(caught_up, "the backlog to go")


def labels_by_flow(requests: list[Request]) -> dict[str, list[str]]:
    """The labels of `flows/updated` deliveries, per flow, in order of receipt."""
    found: dict[str, list[str]] = {}
    for request in requests:
        found.setdefault(subject(request), []).append(request.event["flow"]["label"])
    return found


async def test_flows_are_delivered_at_the_same_time_each_in_order(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    """One webhook watching many flows is not held to one receiver round trip per event: the
    events of different flows are delivered at the same time, those of one flow one at a
    time, in order."""
    flows = [video_flow() for _ in range(4)]
    for flow in flows:
        await put_flow(http, flow)
    ids = [flow["id"] for flow in flows]
    await hooks.register_started(receiver.url, ["flows/updated"], flow_ids=ids)
    receiver.delay_s = 0.2
    labels = [f"label {n}" for n in range(4)]
    for label in labels:
        for flow_id in ids:
            await ok(http.put(f"/flows/{flow_id}/label", json=label))
    got = await receiver.wait_for(16, timeout=30)
    assert labels_by_flow(got) == {flow_id: labels for flow_id in ids}
    assert receiver.most_at_once > 1
    for flow_id in ids:
        times = sorted((r.arrived_at, r.received_at) for r in got if subject(r) == flow_id)
        # Each of a flow's events is sent only once the one before was answered.
        assert all(answered <= sent for (_, answered), (sent, _) in itertools.pairwise(times))


async def test_one_delivery_at_a_time_keeps_the_queue_order(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """`TAMS_WEBHOOKS_MAX_IN_FLIGHT_PER_WEBHOOK=1`: one event at a time, whatever flow it is
    about, in the order it was queued."""
    env = {"TAMS_WEBHOOKS_MAX_IN_FLIGHT_PER_WEBHOOK": "1"}
    async with (
        own_services(tams_stack, admin_headers, env) as (_stack, http),
        receiving() as receiver,
    ):
        hooks = Webhooks(http)
        flows = [video_flow() for _ in range(3)]
        for flow in flows:
            await put_flow(http, flow)
        ids = [flow["id"] for flow in flows]
        await hooks.register_started(receiver.url, ["flows/updated"], flow_ids=ids)
        receiver.delay_s = 0.05
        sent = [(flow_id, f"label {n}") for n in range(3) for flow_id in ids]
        for flow_id, label in sent:
            await ok(http.put(f"/flows/{flow_id}/label", json=label))
        got = await receiver.wait_for(len(sent))
        # (Events of different flows reach the queue in no defined order: Kafka's.)
        assert labels_by_flow(got) == {flow_id: [f"label {n}" for n in range(3)] for flow_id in ids}
        assert receiver.most_at_once == 1


async def test_a_receiver_that_falls_too_far_behind_goes_to_error(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A receiver that answers 2xx, but more slowly than its events come, would grow its queue
    in the store without bound: past `TAMS_WEBHOOKS_MAX_BACKLOG_EVENTS` its webhook goes to
    `error`, saying why, and re-enabling it brings new events again."""
    env = {"TAMS_WEBHOOKS_MAX_BACKLOG_EVENTS": "5"}
    async with (
        own_services(tams_stack, admin_headers, env) as (stack, http),
        receiving() as receiver,
    ):
        hooks = Webhooks(http)
        flow = video_flow()
        await put_flow(http, flow)
        webhook = await hooks.register_started(
            receiver.url, ["flows/updated"], flow_ids=[flow["id"]]
        )
        receiver.delay_s = 0.5
        for n in range(12):
            await ok(http.put(f"/flows/{flow['id']}/label", json=f"label {n}"))
        failed = await hooks.wait_status(webhook["id"], "error")
        assert failed["error"]["type"] == "BacklogExceeded"
        assert "more than the 5 allowed" in failed["error"]["summary"]
        dropped = int(await webhooks_metric(stack, "tams_webhook_events_dropped_total"))
        assert dropped >= 1

        receiver.delay_s = 0
        assert (await hooks.put(failed, status="created")).status == 201
        await hooks.wait_status(webhook["id"], "started")
        await ok(http.put(f"/flows/{flow['id']}/label", json="again"))
        await receiver.wait_until(
            lambda: any(r.event["flow"]["label"] == "again" for r in receiver.delivered())
        )


async def test_a_restart_resumes_queues_finished_out_of_order(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver, tams_stack: Stack
) -> None:
    """One flow's receiver hangs while another flow's events are all delivered: the queue
    left in the store has a long gap. After a crash every event left is delivered, each
    flow's in order."""
    stuck, busy = video_flow(), video_flow()
    for flow in (stuck, busy):
        await put_flow(http, flow)
    webhook = await hooks.register(
        receiver.url, ["flows/updated"], flow_ids=[stuck["id"], busy["id"]]
    )
    await hooks.wait_status(webhook["id"], "started")
    held: list[str] = []

    def hold_the_first_of_stuck(body: dict[str, Any]) -> bool:
        if body["event"]["flow"]["id"] == stuck["id"] and not held:
            held.append(body["event"]["flow"]["label"])
            return True
        return False

    receiver.hold = hold_the_first_of_stuck
    busy_labels = [f"busy {n}" for n in range(250)]  # more than two store reads' worth
    await ok(http.put(f"/flows/{stuck['id']}/label", json="stuck 0"))
    for label in busy_labels:
        await ok(http.put(f"/flows/{busy['id']}/label", json=label))
    await ok(http.put(f"/flows/{stuck['id']}/label", json="stuck 1"))
    await receiver.wait_for(len(busy_labels), about(busy["id"]), timeout=60)

    async def only_stuck_left() -> bool:
        with sqlite3.connect(tams_stack.data_dir / "tams.db") as db:
            (count,) = db.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = ?", (webhook["id"],)
            ).fetchone()
        # 2 unless the held attempt timed out first and its retry was answered.
        return int(count) <= 2

    await eventually(only_stuck_left, "the busy flow's deliveries to be finished")
    try:
        process = tams_stack.services["webhooks"].process
        process.popen.kill()
        process.popen.wait(timeout=10)
        tams_stack.stop_service("webhooks")
    finally:
        tams_stack.start_service("webhooks")
        await tams_stack.wait_ready(("webhooks",))
    got = await receiver.wait_for(len(busy_labels) + 2, timeout=30)
    assert held == ["stuck 0"]
    assert labels_by_flow(got) == {stuck["id"]: ["stuck 0", "stuck 1"], busy["id"]: busy_labels}


async def test_a_receiver_not_known_to_answer_gets_one_delivery_at_a_time(
    http: aiohttp.ClientSession, hooks: Webhooks, receiver: Receiver
) -> None:
    """Until a delivery to its receiver succeeds, and again after a failed attempt, a
    webhook's deliveries go one at a time: a receiver that hangs holds one send slot of the
    shared pool, not one per flow. Once it answers, the flows go at the same time again."""
    flows = [video_flow() for _ in range(4)]
    for flow in flows:
        await put_flow(http, flow)
    ids = [flow["id"] for flow in flows]
    await hooks.register_started(receiver.url, ["flows/updated"], flow_ids=ids)
    receiver.fail_next, receiver.delay_s = 1, 0.2
    for flow_id in ids:
        await ok(http.put(f"/flows/{flow_id}/label", json="one at a time"))
    await receiver.wait_for(len(ids))
    failed, retried, *others = receiver.requests
    assert (failed.status, retried.status) == (500, 200)
    assert retried.event_id == failed.event_id
    # Nothing else went while the receiver was failing, nor until it answered again.
    assert all(r.arrived_at >= retried.received_at for r in others)
    assert receiver.most_at_once > 1
