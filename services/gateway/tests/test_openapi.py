"""The gateway's OpenAPI document, built from the real router (no services needed): valid
OpenAPI 3.1, every route in it, and every operation of the official TAMS 8.2 document served.
The same document over HTTP, anonymous, is checked in tests/integration/test_openapi.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tams_gateway.app import build_app
from tams_gateway.auth.gate import Gate
from tams_gateway.auth.scopes import ANYONE, required_scopes
from tams_gateway.context import Gateway
from tams_gateway.openapi.document import build_document, router_routes
from tams_gateway.settings import GatewaySettings
from tams_runtime.http import add_probe_routes
from tams_runtime.settings import HttpSettings
from tams_stack.testing import find_tams_api_dir

OFFICIAL = find_tams_api_dir() / "TimeAddressableMediaStore.yaml"
EXAMPLES = find_tams_api_dir() / "examples"
HTTP_METHODS = ("get", "head", "put", "post", "delete", "patch")


def gateway_app() -> web.Application:
    """The gateway's real app and router as `serve` completes it (probes included); nothing
    is started, so the parts the router does not need are absent."""
    absent = cast(Any, None)
    gateway = Gateway(
        settings=GatewaySettings(_env_file=None),
        kafka=absent,
        s3=absent,
        store=absent,
        bus=absent,
        backends=absent,
        urls=absent,
        playlist_urls=absent,
        egress=absent,
        secrets=absent,
        media=absent,
    )
    app = build_app(gateway, Gate())
    add_probe_routes(app, "gateway", {}, HttpSettings())
    return app


def shape(template: str) -> str:
    """A path template with its parameter names (and aiohttp patterns) erased."""
    return re.sub(r"{[^}]*}", "{}", template)


def official_operations() -> set[tuple[str, str]]:
    spec = yaml.safe_load(OFFICIAL.read_text())
    return {
        (method.upper(), shape(path))
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, route template) of every operation, by path or by `x-gateway-route`."""
    found = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found.add((method.upper(), operation.get("x-gateway-route", path)))
    return found


@pytest.fixture(scope="module")
def app() -> web.Application:
    return gateway_app()


@pytest.fixture(scope="module")
def document(app: web.Application) -> dict[str, Any]:
    return build_document(app, schemes=["basic_auth", "bearer_token_auth", "url_token_auth"])


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    OpenAPIV31SpecValidator(document).validate()
    assert document["openapi"] == "3.1.0"
    assert document["externalDocs"]["url"] == "https://github.com/bbc/tams/tree/8.2"
    assert set(document["components"]["securitySchemes"]) == {
        "basic_auth",
        "bearer_token_auth",
        "url_token_auth",
    }
    json.dumps(document)  # plain JSON, served as it is


def test_every_route_of_the_router_is_in_the_document(
    app: web.Application, document: dict[str, Any]
) -> None:
    listed = documented(document)
    routes = {(r.method, shape(r.template)) for r in router_routes(app)}
    assert routes, "the router has routes"
    missing = routes - {(method, shape(path)) for method, path in listed}
    assert not missing, f"routes missing from the document: {sorted(missing)}"
    # And nothing is documented that the router does not serve.
    assert {(m, shape(p)) for m, p in listed} <= routes


def test_every_served_operation_has_a_hand_written_entry(document: dict[str, Any]) -> None:
    """No route of this gateway falls back to the generic `2XX` answer (an extension that
    forgot its entry in `openapi/operations.py`)."""
    generic = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "2XX" in operation.get("responses", {})
    ]
    assert generic == []


def test_every_official_tams_operation_is_served(app: web.Application) -> None:
    served = {(r.method, shape(r.template)) for r in router_routes(app)}
    missing = official_operations() - served
    assert not missing, f"TAMS 8.2 operations the gateway does not serve: {sorted(missing)}"


def test_a_route_without_an_entry_gets_its_docstring_and_a_generic_answer() -> None:
    async def shelve(request: web.Request) -> web.Response:
        """Put the thing on a shelf. Then more words that are not the summary."""
        raise AssertionError("never called")

    app = gateway_app()
    app.router.add_post("/things/{thing_id}/shelve", shelve)
    document = build_document(app, schemes=["basic_auth"])
    OpenAPIV31SpecValidator(document).validate()
    operation = document["paths"]["/things/{thing_id}/shelve"]["post"]
    assert operation["summary"] == "Put the thing on a shelf"
    assert "more words" in operation["description"]
    assert "2XX" in operation["responses"] and "default" in operation["responses"]
    assert operation["x-required-scopes"] == ["write"]
    assert [p["name"] for p in operation["parameters"]] == ["thing_id"]


def test_analytics_are_merged_in_place_of_the_forwarding_route(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    assert "/analytics/{path}" not in paths
    usage = paths["/analytics/flow-usage"]["get"]
    assert usage["x-gateway-route"] == "/analytics/{path}"
    assert usage["x-required-scopes"] == ["read"]
    schema = usage["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/AnalyticsFlowUsagePage"}
    assert "head" in paths["/analytics/flow-usage"]
    # The analytics error schema and the TAMS one do not collide.
    assert "AnalyticsError" in document["components"]["schemas"]
    assert "Error" in document["components"]["schemas"]


def test_only_the_probes_need_no_credentials(document: dict[str, Any]) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert document["paths"][path]["get"]["security"] == []
    # The document itself: any signed-in caller, whatever its scopes.
    own = document["paths"]["/openapi.json"]["get"]
    assert "security" not in own and own["x-required-scopes"] == []
    assert required_scopes("HEAD", "/openapi.json") == ANYONE
    assert document["security"] == [
        {"basic_auth": []},
        {"bearer_token_auth": []},
        {"url_token_auth": []},
    ]
    assert document["paths"]["/flows"]["get"]["x-required-scopes"] == ["read"]
    assert document["paths"]["/flows/{flow_id}"]["delete"]["x-required-scopes"] == ["delete"]


@pytest.mark.parametrize(
    ("pattern", "schema"),
    [
        ("flow-get-200-*.json", {"$ref": "#/components/schemas/Flow"}),
        ("flows-get-200.json", {"type": "array", "items": {"$ref": "#/components/schemas/Flow"}}),
        ("flow-put*.json", {"$ref": "#/components/schemas/FlowPut"}),
        (
            "flow-segments-get-200*.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/FlowSegment"}},
        ),
        ("flow-segment-post.json", {"$ref": "#/components/schemas/FlowSegmentPost"}),
        ("flow-storage-post.json", {"$ref": "#/components/schemas/StorageRequest"}),
        ("flow-storage-post-201*.json", {"$ref": "#/components/schemas/StorageResponse"}),
        ("objects-get-200*.json", {"$ref": "#/components/schemas/MediaObjectRecord"}),
        ("objects-instances-*-post.json", {"$ref": "#/components/schemas/InstanceRequest"}),
        ("deletion-request-get-200.json", {"$ref": "#/components/schemas/DeletionRequest"}),
        (
            "webhook*-get-200-list.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/WebhookGet"}},
        ),
        ("profile-get-200*.json", {"$ref": "#/components/schemas/Profile"}),
        ("profile-p*.json", {"$ref": "#/components/schemas/Profile"}),
        (
            "profiles-get-200.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/Profile"}},
        ),
        ("webhook-get-200.json", {"$ref": "#/components/schemas/WebhookGet"}),
        ("webhook-post.json", {"$ref": "#/components/schemas/WebhookPost"}),
        ("webhook-put.json", {"$ref": "#/components/schemas/WebhookPut"}),
        ("service-get-200.json", {"$ref": "#/components/schemas/Service"}),
        ("service-post.json", {"$ref": "#/components/schemas/ServicePost"}),
        ("source-get-200-*.json", {"$ref": "#/components/schemas/Source"}),
        (
            "sources-get-200.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/Source"}},
        ),
        (
            "flow-collection-*.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/FlowCollectionItem"}},
        ),
        (
            "deletion-requests-get-200.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/DeletionRequest"}},
        ),
        ("flow-segment-partial-failure.json", {"$ref": "#/components/schemas/FailedSegments"}),
        (
            "storage-backends-get-200.json",
            {"type": "array", "items": {"$ref": "#/components/schemas/StorageBackend"}},
        ),
    ],
)
def test_the_official_examples_fit_the_documented_schemas(
    document: dict[str, Any], pattern: str, schema: dict[str, Any]
) -> None:
    """The schemas come from our models: they must accept what the spec's examples show."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:gateway", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    rooted = json.loads(json.dumps(schema).replace('"#/components', '"urn:gateway#/components'))
    validator = Draft202012Validator(rooted, registry=registry)
    examples = sorted(Path(EXAMPLES).glob(pattern))
    assert examples, f"no official example matches {pattern}"
    for example in examples:
        body = json.loads(example.read_text())
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, f"{example.name}: {errors[:3]}"


def test_without_authentication_nothing_asks_for_credentials(app: web.Application) -> None:
    document = build_document(app, schemes=[])
    OpenAPIV31SpecValidator(document).validate()
    assert document["security"] == [] and document["components"]["securitySchemes"] == {}
    flows = document["paths"]["/flows"]["get"]
    assert flows["security"] == [] and "401" not in flows["responses"]


def test_tag_filters_are_described_not_declared_as_parameters(document: dict[str, Any]) -> None:
    flows = document["paths"]["/flows"]["get"]
    names = {p["name"] for p in flows["parameters"]}
    assert {"limit", "page", "format", "timerange"} <= names
    assert not any("{" in name for name in names)
    assert "`tag.{name}`" in flows["description"]
    assert "X-Paging-NextKey" in flows["responses"]["200"]["headers"]


def test_every_operation_that_takes_query_parameters_can_answer_400(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            # The analytics document's parameters are references to query parameters.
            if any(p.get("in") == "query" or "$ref" in p for p in parameters):
                assert "400" in operation["responses"], (method, path)
    deleted = document["paths"]["/deleted-flows"]["get"]
    assert {p["name"] for p in deleted["parameters"]} == {"limit", "page"}


# Query parameters the gateway documents beyond the official ones (docs/ext-*.md).
EXTRA_QUERY = {("GET", "/service/webhooks"): {"url"}}
PATTERNED = ("tag", "flow_tag", "storage_backend_tag")  # `tag.{name}`, `tag_exists.{name}`...


def test_official_operations_document_exactly_the_official_query_parameters(
    document: dict[str, Any],
) -> None:
    """A fuzzer (or a client generator) reading `/openapi.json` sends what it declares: a
    parameter the handler ignores (`reverse_order` on `/service/profiles` once) is accepted
    whatever its value, and one left out (`codec`, `label`, `sort_by`) is never tried."""
    spec = yaml.safe_load(OFFICIAL.read_text())

    def resolve(parameter: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in parameter:
            return cast(
                dict[str, Any], spec["components"]["parameters"][parameter["$ref"].split("/")[-1]]
            )
        return parameter

    ours = {
        (method.upper(), shape(operation.get("x-gateway-route", path))): {
            p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"
        }
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    wrong = {}
    for path, item in spec["paths"].items():
        for method in ("get", "put", "post", "delete"):
            if method not in item:
                continue
            parameters = [resolve(p) for p in item[method].get("parameters", [])]
            official = {
                p["name"]
                for p in parameters
                if p["in"] == "query" and not (p["name"].startswith(PATTERNED) and "{" in p["name"])
            }
            key = (method.upper(), shape(path))
            documented_names = ours[key] - EXTRA_QUERY.get(key, set())
            if documented_names != official:
                wrong[key] = (
                    sorted(documented_names - official),
                    sorted(official - documented_names),
                )
    assert wrong == {}, f"(extra, missing) query parameters: {wrong}"
