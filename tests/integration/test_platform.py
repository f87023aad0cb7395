"""The platform through the gateway: service info, probes, errors, a write through Kafka."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import aiohttp
import pytest

from tams_stack.stack import Stack
from tams_stack.testing import SpecValidator

from .helpers import get_json


async def test_root_lists_the_top_level_paths(http: aiohttp.ClientSession) -> None:
    async with http.get("/") as resp:
        assert resp.status == 200
        paths = await resp.json()
    assert {"service", "flows", "sources", "flow-delete-requests"} <= set(paths)


async def test_service_describes_a_tams_8_2_store(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    async with http.get("/service") as resp:
        assert resp.status == 200
        service = await resp.json()
    spec.validate(service, "service.json")
    assert service["api_version"] == "8.2"
    assert service["type"].startswith("urn:x-tams:service")
    object_timeout = int(service["min_object_timeout"].split(":")[0])
    presigned_timeout = int(service["min_presigned_url_timeout"].split(":")[0])
    assert object_timeout >= 300
    assert 30 <= presigned_timeout <= object_timeout
    assert service["event_stream_mechanisms"]


async def test_head_service_has_headers_and_no_body(http: aiohttp.ClientSession) -> None:
    async with http.head("/service") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert await resp.read() == b""


async def test_post_service_travels_through_kafka_and_is_read_back(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/service", json={"name": "Studio A", "description": "Ingest"}) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get("/service") as resp:
        service = await resp.json()
    assert service["name"] == "Studio A"
    assert service["description"] == "Ingest"


async def test_post_service_rejects_bad_bodies_with_a_json_error(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    cases = [
        (b"{not json", "not valid JSON"),
        # A lone surrogate can be neither stored nor sent on as UTF-8: malformed, not a 503.
        (b'{"name": "\\ud800"}', "not valid JSON"),
        (b'{"name": 5}', "name must be a string"),
        (b"[]", "JSON object"),
    ]
    for body, expected in cases:
        async with http.post(
            "/service", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
            error = await resp.json()
        spec.validate(error, "error.json")
        assert expected in error["summary"]


async def test_post_service_ignores_members_it_does_not_keep(
    http: aiohttp.ClientSession,
) -> None:
    # service-post.json allows other members; only name and description are kept.
    async with http.post("/service", json={"colour": "red", "name": "with colour"}) as resp:
        assert resp.status == 200
    service = await get_json(http, "/service")
    assert service["name"] == "with colour" and "colour" not in service


async def test_storage_backends_lists_the_default_backend(
    http: aiohttp.ClientSession, spec: SpecValidator
) -> None:
    async with http.get("/service/storage-backends") as resp:
        assert resp.status == 200
        backends = await resp.json()
        assert resp.headers["X-Paging-Count"] == str(len(backends))
        assert resp.headers["X-Paging-Reverse-Order"] == "false"
    spec.validate(backends, "storage-backends-list.json")
    assert [b["default_storage"] for b in backends if b.get("default_storage")] == [True]


async def test_unknown_path_and_method_get_json_errors(http: aiohttp.ClientSession) -> None:
    async with http.get("/no-such-thing") as resp:
        assert resp.status == 404
        assert "no-such-thing" in (await resp.json())["summary"]
    async with http.patch("/service", json={}) as resp:
        assert resp.status == 405
        assert "PATCH" in (await resp.json())["summary"]
        assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize(
    ("request_bytes", "fault"),
    [
        (b"GE T /flows HTTP/1.1\r\nHost: x\r\n\r\n", "Invalid method"),
        (b"GET /flows HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "Content-Length"),
        (b"GET /flows HTTP/1.1\r\nno colon here\r\n\r\n", "header"),
        (
            b"POST /service HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "chunk size",
        ),
        (b"GET /flows HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", "longer than"),
    ],
)
async def test_requests_that_are_not_http_get_json_errors(
    tams_stack: Stack, spec: SpecValidator, request_bytes: bytes, fault: str
) -> None:
    """aiohttp's parser answers these before any handler or middleware runs."""
    gateway = urlsplit(tams_stack.gateway_url)
    reader, writer = await asyncio.open_connection(gateway.hostname, gateway.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert status_line.split()[1] == "400", answer[:200]
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)
    spec.validate(error, "error.json")
    assert fault in error["summary"]
    # Counted, under labels that stay bounded whatever the request line held.
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{tams_stack.gateway_url}/metrics") as resp,
    ):
        metrics = await resp.text()
    assert (
        'tams_http_request_seconds_count{method="unparsed",route="unparsed",status="4xx"}'
        in metrics
    )


async def test_every_service_is_healthy_and_ready(tams_stack: Stack) -> None:
    async with aiohttp.ClientSession() as client:
        for name, service in tams_stack.services.items():
            for probe in ("health", "ready"):
                async with client.get(f"{service.url}/{probe}") as resp:
                    assert resp.status == 200, f"{name} /{probe}: {await resp.text()}"
                    body = await resp.json()
                    assert body["service"] == name


async def test_gateway_metrics_use_route_templates(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    async with http.get("/flows/5f3c7f0e-1111-4a2b-8c3d-000000000000") as resp:
        assert resp.status == 404
    async with http.get("/metrics") as resp:
        text = await resp.text()
    assert 'route="/flows/{flow_id}"' in text
    assert "5f3c7f0e-1111" not in text  # never a raw path: bounded label values


async def test_the_s3_servers_maintenance_worker_reaches_its_admin_server(
    tams_stack: Stack,
) -> None:
    """weed's worker dials the admin server's HTTP port + 10000; with the admin gRPC port
    anywhere else it logs a refused connection every few seconds for as long as it runs."""
    if tams_stack.object_store is None:
        pytest.skip("no local SeaweedFS (containers or an external S3)")
    log = (tams_stack.data_dir / "logs" / "seaweedfs.log").read_text(errors="replace")
    assert "connection to admin server failed" not in log
