"""Analytics through the gateway: figures compared with what the test built through the API."""

from __future__ import annotations

from typing import Any

import aiohttp
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from yarl import URL

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import AUDIO, VIDEO, audio_flow, get_json, new_id, put_flow, video_flow
from .test_segments import allocate_and_upload, post

S = 1_000_000_000


class OpenApi:
    """Validates bodies against the schemas of the served analytics OpenAPI document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=_draft())
        self.registry: Registry[Any] = Registry().with_resource("openapi.yaml", resource)

    def validate(self, body: Any, schema: str) -> None:
        ref = {"$ref": f"openapi.yaml#/components/schemas/{schema}"}
        Draft202012Validator(ref, registry=self.registry).validate(body)


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


async def openapi(http: aiohttp.ClientSession) -> OpenApi:
    async with http.get("/analytics/openapi.yaml") as resp:
        assert resp.status == 200
        return OpenApi(yaml.safe_load(await resp.text()))


async def ingest(
    http: aiohttp.ClientSession, flow: dict[str, Any], slots: list[int], size: int
) -> None:
    """Upload one object of `size` bytes per slot and register it as the segment
    [slot, slot+1) seconds."""
    payloads = [bytes([n % 256]) * size for n in range(len(slots))]
    object_ids = await allocate_and_upload(http, flow["id"], payloads)
    body = [
        {"object_id": oid, "timerange": f"[{slot}:0_{slot + 1}:0)"}
        for oid, slot in zip(object_ids, slots, strict=True)
    ]
    status, answer = await post(http, flow["id"], body)
    assert status == 201, answer


async def test_flow_usage_counts_exactly_what_was_registered(http: aiohttp.ClientSession) -> None:
    api = await openapi(http)
    source_id = new_id()
    video = video_flow(source_id=source_id)
    audio = audio_flow(source_id=new_id())
    await put_flow(http, video)
    await put_flow(http, audio)
    await ingest(http, video, [0, 1, 2, 5, 6], size=1000)
    await ingest(http, audio, [0, 1], size=300)

    usage = await get_json(http, f"/analytics/flow-usage?source_id={source_id}")
    api.validate(usage, "FlowUsagePage")
    assert usage["totals"] == {
        "flows": 1,
        "segments": 5,
        "duration_ns": 5 * S,
        "bytes": 5000,
        "segments_without_size": 0,
    }
    (row,) = usage["flows"]
    assert row["flow_id"] == video["id"] and row["format"] == VIDEO
    assert row["codec"] == "video/h264"
    assert row["timerange"] == "[0:0_7:0)"
    one = await get_json(http, f"/analytics/flow-usage?flow_id={audio['id']}")
    assert (one["totals"]["segments"], one["totals"]["bytes"]) == (2, 600)


async def test_a_codec_reaches_analytics_as_the_client_encoded_it(
    http: aiohttp.ClientSession,
) -> None:
    """`codec=application%2Fx%2Bmxf`: the `+` is part of the value (decoded once, by the
    analytics service), not a space."""
    source_id = new_id()
    flow = video_flow(source_id=source_id, codec="application/x+mxf")
    await put_flow(http, flow)
    url = URL(
        f"/analytics/flow-usage?source_id={source_id}&codec=application%2Fx%2Bmxf", encoded=True
    )
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        usage = await resp.json()
    assert [row["flow_id"] for row in usage["flows"]] == [flow["id"]]


async def test_catalog_and_storage_figures_move_by_what_was_added(
    http: aiohttp.ClientSession,
) -> None:
    api = await openapi(http)
    catalog_before = await get_json(http, "/analytics/catalog-summary")
    storage_before = await get_json(http, "/analytics/storage-usage")
    video, audio = video_flow(), audio_flow()
    await put_flow(http, video)
    await put_flow(http, audio)
    await ingest(http, video, [10, 11, 12], size=2048)
    # Allocated but never uploaded nor registered.
    async with http.post(f"/flows/{audio['id']}/storage", json={"limit": 2}) as resp:
        assert resp.status == 201

    catalog = await get_json(http, "/analytics/catalog-summary")
    api.validate(catalog, "CatalogSummary")
    by_format = catalog["flows"]["by_format"]
    before_by_format = catalog_before["flows"]["by_format"]
    assert by_format[VIDEO] - before_by_format.get(VIDEO, 0) == 1
    assert by_format[AUDIO] - before_by_format.get(AUDIO, 0) == 1
    assert catalog["sources"]["count"] - catalog_before["sources"]["count"] == 2
    assert catalog["usage"]["segments"] - catalog_before["usage"]["segments"] == 3
    assert catalog["usage"]["duration_ns"] - catalog_before["usage"]["duration_ns"] == 3 * S
    codecs = {(c["format"], c["codec"]): c["flows"] for c in catalog["codecs"]}
    assert codecs[(AUDIO, "audio/aac")] >= 1
    only_audio = await get_json(http, f"/analytics/catalog-summary?format={AUDIO}")
    assert set(only_audio["flows"]["by_format"]) == {AUDIO}

    storage = await get_json(http, "/analytics/storage-usage")
    api.validate(storage, "StorageUsage")
    assert storage["totals"]["objects"] - storage_before["totals"]["objects"] == 3
    assert storage["totals"]["bytes"] - storage_before["totals"]["bytes"] == 3 * 2048
    allocated = storage["totals"]["allocated_unregistered"]
    assert allocated - storage_before["totals"]["allocated_unregistered"] == 2
    (backend,) = [b for b in storage["backends"] if b["label"] == "local-s3"]
    (backend_before,) = [b for b in storage_before["backends"] if b["label"] == "local-s3"]
    assert backend["bytes"] - backend_before["bytes"] == 3 * 2048
    mine = await get_json(http, f"/analytics/storage-usage?flow_id={video['id']}")
    assert mine["segments"]["bytes"] == 3 * 2048


async def test_time_range_analysis_finds_the_gaps(http: aiohttp.ClientSession) -> None:
    api = await openapi(http)
    flow = video_flow()
    await put_flow(http, flow)
    # Covered: [0,3) [5,6) [8,10); registered out of order.
    await ingest(http, flow, [8, 1, 5], size=10)
    await ingest(http, flow, [0, 9, 2], size=10)

    whole = await get_json(http, f"/analytics/time-range-analysis?flow_id={flow['id']}")
    api.validate(whole, "TimeRangeAnalysis")
    (cov,) = whole["flows"]
    assert cov["timerange"] == "[0:0_10:0)"
    assert (cov["segments"], cov["covered_ns"]) == (6, 6 * S)
    assert cov["gaps"] == ["[3:0_5:0)", "[6:0_8:0)"]
    assert (cov["gap_count"], cov["gap_ns"], cov["gaps_truncated"]) == (2, 4 * S, False)

    window = await get_json(
        http,
        f"/analytics/time-range-analysis?flow_id={flow['id']}&timerange=[2:500000000_9:0)&gap_limit=1",
    )
    (cov,) = window["flows"]
    assert window["timerange"] == "[2:500000000_9:0)"
    assert cov["timerange"] == "[2:500000000_9:0)"
    assert cov["segments"] == 3  # [2,3) [5,6) [8,9)
    assert cov["covered_ns"] == S // 2 + S + S
    assert cov["gaps"] == ["[3:0_5:0)"] and cov["gaps_truncated"] is True
    assert cov["gap_count"] == 2


async def test_paging_follows_link_through_the_gateway(http: aiohttp.ClientSession) -> None:
    source_id = new_id()
    flows = [video_flow(source_id=source_id) for _ in range(3)]
    for flow in flows:
        await put_flow(http, flow)
    seen: list[str] = []
    url: str | None = f"/analytics/flow-usage?source_id={source_id}&limit=2"
    while url is not None:
        async with http.get(url) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["totals"]["flows"] == 3
            seen += [f["flow_id"] for f in body["flows"]]
            link = resp.headers.get("Link")
            url = None if link is None else link[1 : link.index(">")]
            if link is not None:
                assert f"source_id={source_id}" in url and "limit=2" in url
    assert seen == sorted(f["id"] for f in flows)


async def test_deleting_a_flow_removes_its_figures(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    await ingest(http, flow, [0, 1], size=100)
    async with http.delete(f"/flows/{flow['id']}") as resp:
        assert resp.status == 204
    usage = await get_json(http, f"/analytics/flow-usage?source_id={flow['source_id']}")
    assert usage["totals"]["flows"] == 0 and usage["flows"] == []
    await get_json(http, f"/analytics/flow-usage?flow_id={flow['id']}", status=404)


async def test_the_index_lists_the_reports_the_document_describes(
    http: aiohttp.ClientSession,
) -> None:
    index = await get_json(http, "/analytics")
    document = await get_json(http, "/openapi.json")
    assert {f"/analytics/{name}" for name in index} | {"/analytics"} == {
        path for path in document["paths"] if path.startswith("/analytics")
    }
    for name in index:
        async with http.get(f"/analytics/{name}") as resp:
            assert resp.status == 200, name


async def test_bad_parameters_get_tams_errors(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    cases = [
        ("/analytics/time-range-analysis?timerange=[5:0_x)", 400, "timerange"),
        ("/analytics/time-range-analysis?timerange=()", 400, "empty"),
        ("/analytics/flow-usage?limit=0", 400, "limit"),
        ("/analytics/flow-usage?limit=many", 400, "many"),
        ("/analytics/flow-usage?page=garbage", 400, "page"),
        ("/analytics/time-range-analysis?gap_limit=-1", 400, "gap_limit"),
        ("/analytics/flow-usage?flow_id=nope", 400, "flow_id"),
        ("/analytics/flow-usage?source_id=nope", 400, "source_id"),
        ("/analytics/storage-usage?storage_id=nope", 400, "storage_id"),
        # A format that is not a TAMS URN matches nothing: a typo, not an empty store.
        ("/analytics/catalog-summary?format=video", 400, "'video'"),
        ("/analytics/flow-usage?format=bogus", 400, "bogus"),
        ("/analytics/flow-usage?codec=h264", 400, "MIME"),
        (f"/analytics/time-range-analysis?flow_id={new_id()}", 404, "does not exist"),
        (f"/analytics/storage-usage?storage_id={new_id()}", 404, "storage"),
        ("/analytics/no-such-report", 404, "no-such-report"),
    ]
    for path, status, expected in cases:
        async with http.get(path) as resp:
            assert resp.status == status, (path, await resp.text())
            error = await resp.json()
        spec.validate(error, "error.json")
        assert expected in error["summary"], (path, error)


async def test_gateway_answers_503_when_analytics_is_down(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    """A second gateway whose analytics address is dead: a JSON 503, the API unaffected."""
    from .standalone import standalone

    async with (
        standalone(
            tams_stack, ("gateway",), {"TAMS_GATEWAY_ANALYTICS_URL": "http://127.0.0.1:9"}
        ) as stack,
        aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as client,
    ):
        async with client.get("/analytics/flow-usage") as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "5"
            error = await resp.json()
        assert error["type"] == "ServiceUnavailable" and "analytics" in error["summary"]
        async with client.get("/service") as resp:
            assert resp.status == 200


async def test_a_refused_service_token_is_a_bad_gateway(
    tams_stack: Stack, admin_headers: dict[str, str], spec: SpecValidator
) -> None:
    """A gateway whose TAMS_INTERNAL_TOKEN differs from the analytics service's: a 502 the
    operator can act on, not the analytics service's 401, which no client could fix."""
    from .standalone import standalone

    async with (
        standalone(
            tams_stack,
            ("gateway",),
            {
                "TAMS_GATEWAY_ANALYTICS_URL": tams_stack.services["analytics"].url,
                "TAMS_INTERNAL_TOKEN": "not-the-token",
            },
        ) as stack,
        aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as client,
        client.get("/analytics/flow-usage") as resp,
    ):
        assert resp.status == 502
        error = await resp.json()
    spec.validate(error, "error.json")
    assert "TAMS_INTERNAL_TOKEN" in error["summary"]
