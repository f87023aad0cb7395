"""`GET /openapi.json` on the running gateway (authentication on): any signed-in caller may
fetch it (strangers get 401), it is valid OpenAPI 3.1, and every path and method of the
official TAMS 8.2 document is both in it and answered by the gateway (not a 404 "no
resource" nor a 405)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator

from tams_stack.testing import find_tams_api_dir

OFFICIAL = find_tams_api_dir() / "TimeAddressableMediaStore.yaml"
HTTP_METHODS = ("get", "head", "put", "post", "delete", "patch")


def shape(template: str) -> str:
    return re.sub(r"{[^}]*}", "{}", template)


def official_paths() -> dict[str, list[str]]:
    spec = yaml.safe_load(OFFICIAL.read_text())
    return {
        path: [m.upper() for m in item if m in HTTP_METHODS] for path, item in spec["paths"].items()
    }


def concrete(template: str) -> str:
    """A real URL for a template: unknown uuids, so nothing existing is touched."""
    return re.sub(
        r"{([^}]*)}", lambda m: "genre" if m.group(1) == "name" else str(uuid.uuid4()), template
    )


async def fetch_document(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/openapi.json") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        document: dict[str, Any] = await resp.json()
    async with http.head("/openapi.json") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    return document


async def test_anyone_gets_a_valid_openapi_3_1_document(
    gateway_url: str, http: aiohttp.ClientSession
) -> None:
    document = await fetch_document(http)
    OpenAPIV31SpecValidator(document).validate()
    assert document["externalDocs"]["url"] == "https://github.com/bbc/tams/tree/8.2"
    # The session stack signs in with Basic users only: that is what the document offers.
    assert document["security"] == [{"basic_auth": []}]
    assert "/analytics/flow-usage" in document["paths"]
    # Strangers are not shown the route map.
    async with aiohttp.ClientSession(base_url=gateway_url) as anonymous:
        for method in ("GET", "HEAD"):
            async with anonymous.request(method, "/openapi.json") as resp:
                assert resp.status == 401
                assert "WWW-Authenticate" in resp.headers


async def test_every_official_operation_is_documented_and_served(
    http: aiohttp.ClientSession,
) -> None:
    document = await fetch_document(http)
    documented = {
        (method.upper(), shape(path)) for path, item in document["paths"].items() for method in item
    }
    official = official_paths()
    missing = sorted(
        f"{method} {path}"
        for path, methods in official.items()
        for method in methods
        if (method, shape(path)) not in documented
    )
    assert not missing, f"official operations missing from /openapi.json: {missing}"
    unserved = []
    for path, methods in official.items():
        url = concrete(path)
        for method in methods:
            # No body: every write is refused (400) or finds no resource (404); nothing changes.
            async with http.request(method, url) as resp:
                body = await resp.read()
                if resp.status == 405 or (resp.status == 404 and b"no resource at" in body):
                    unserved.append(f"{method} {path}: {resp.status}")
    assert not unserved, f"official operations the gateway does not serve: {unserved}"


async def test_the_document_declares_the_query_parameters_the_handlers_read(
    http: aiohttp.ClientSession,
) -> None:
    """Schemathesis, fuzzing from `/openapi.json`, found `GET /service/profiles?reverse_order=
    banana` answered 200: the document offered a parameter the handler never reads (and left
    out `codec` and `label`, which it does read)."""
    document = await fetch_document(http)

    def names(path: str) -> set[str]:
        parameters = document["paths"][path]["get"].get("parameters", [])
        return {p["name"] for p in parameters if p["in"] == "query"}

    assert names("/service/profiles") == {"limit", "page", "format", "codec", "label"}
    assert {"collected_by_ids", "sort_by"} <= names("/sources")
    assert "include_object_timerange" in names("/flows/{flow_id}/segments")
    assert "reverse_order" not in names("/objects/{object_id}")
    # Each declared parameter is read: a value of the wrong kind is refused.
    for url in (
        "/service/profiles?codec=not-a-mime-type",
        "/sources?sort_by=banana",
        f"/flows/{uuid.uuid4()}/segments?include_object_timerange=banana",
    ):
        async with http.get(url) as resp:
            assert resp.status == 400, (url, await resp.text())
            assert (await resp.json())["type"] == "BadRequest"
