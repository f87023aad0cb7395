"""The gateway's OpenAPI 3.1 document, generated from its router (docs/ext-openapi.md).

Every route the router holds becomes an operation: method and path template from the route,
summary from `operations.OPERATIONS` or else the first sentence of the handler's docstring,
description from the docstring. So a route added anywhere (an extension merged later) is
documented without touching this module: it gets a generic answer until someone writes its
entry. Extension APIs with their own document (analytics) are merged in: their paths replace
the catch-all route that forwards them (`/analytics/{path}`), marked `x-gateway-route`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import yaml
from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from tams_gateway.auth.scopes import required_scopes
from tams_gateway.openapi.operations import (
    OPERATIONS,
    QUERIES,
    Operation,
    Query,
    Schema,
    ref,
)
from tams_runtime.http import PROBE_PATHS
from tams_schema import models
from tams_schema.openapi import ANALYTICS_OPENAPI

Document = dict[str, Any]

SPEC_URL = "https://github.com/bbc/tams/tree/8.2"
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH")
# Request and answer bodies that have a `tams_schema` model; components are named after them.
MODELS: dict[str, Any] = {
    "Service": models.Service,
    "ServicePost": models.ServicePost,
    "StorageBackend": models.StorageBackend,
    "Profile": models.Profile,
    "Webhook": models.Webhook,
    "WebhookGet": models.WebhookGet,
    "WebhookPost": models.WebhookPost,
    "WebhookPut": models.WebhookPut,
    "Source": models.Source,
    "Flow": models.Flow,
    "ProfileLinkedFlow": models.ProfileLinkedFlow,
    "FlowCollectionItem": models.FlowCollectionItem,
    "FlowSegment": models.FlowSegment,
    "FlowSegmentPost": models.FlowSegmentPost,
    "FailedSegments": models.FailedSegments,
    "StorageRequest": models.StorageRequest,
    "StorageResponse": models.StorageResponse,
    "MediaObjectRecord": models.MediaObjectRecord,
    "InstanceRequest": models.InstanceRequest,
    "DeletionRequest": models.DeletionRequest,
    "Error": models.Error,
}
PAGING_HEADERS = (
    "Link",
    "X-Paging-Limit",
    "X-Paging-NextKey",
    "X-Paging-Count",
    "X-Paging-Reverse-Order",
    "X-Paging-Timerange",
)


@dataclass(frozen=True)
class ExtensionApi:
    """An extension's own OpenAPI document, merged with its components renamed `{prefix}X`."""

    prefix: str
    document: Document


@dataclass(frozen=True)
class RouteInfo:
    method: str
    template: str
    pattern: re.Pattern[str] | None
    handler: Callable[..., Any]

    def serves(self, method: str, path: str) -> bool:
        return self.method == method and (
            self.pattern.fullmatch(path) is not None if self.pattern else path == self.template
        )


def router_routes(app: web.Application) -> list[RouteInfo]:
    """Every (method, template) the router serves; `*` routes (none here) are skipped."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method not in METHODS:
            continue
        pattern = resource.get_info().get("pattern")
        found.append(RouteInfo(route.method, resource.canonical, pattern, route.handler))
    return found


def extension_apis() -> list[ExtensionApi]:
    analytics = yaml.safe_load(ANALYTICS_OPENAPI.read_text(encoding="utf-8"))
    return [ExtensionApi("Analytics", analytics)]


# --- small pieces --------------------------------------------------------------------------


def docstring_summary(doc: str | None) -> str | None:
    """The first sentence of a docstring (up to its first period or blank line)."""
    if not doc:
        return None
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<=[.:;])\s", paragraph, maxsplit=1)[0].rstrip(".:;")
    return sentence[:120] or None


def operation_id(method: str, template: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", template).strip("_") or "root"
    return f"{method.lower()}_{words}"


def path_parameters(template: str) -> list[Schema]:
    params = []
    for name in re.findall(r"{([^}:]+)", template):
        schema: Schema = {"type": "string"}
        if name.endswith("_id") and name not in ("object_id", "request_id"):
            schema["format"] = "uuid"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def queries_of(entry: Operation) -> list[Query]:
    return [item if isinstance(item, Query) else QUERIES[item] for item in entry.query]


def query_parameters(entry: Operation) -> list[Schema]:
    """Parameters with fixed names; those named by a pattern (`tag.{name}`) cannot be
    OpenAPI parameters and are described in the operation's description instead."""
    params = []
    for query in queries_of(entry):
        if "{" in query.name:
            continue
        params.append(
            {
                "name": query.name,
                "in": "query",
                "schema": query.schema,
                "description": query.description,
            }
        )
    return params


def error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def json_content(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


# --- operations ----------------------------------------------------------------------------


def is_public(template: str) -> bool:
    return template in PROBE_PATHS


def common_errors(
    operation: Document, template: str, *, has_input: bool, public: bool
) -> dict[str, Any]:
    responses: dict[str, Any] = dict(operation.get("responses", {}))
    if has_input and "400" not in responses:
        responses["400"] = {"$ref": "#/components/responses/BadRequest"}
    if not public:
        responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
        responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
        responses.setdefault("429", {"$ref": "#/components/responses/TooManyRequests"})
    if "{" in template:
        responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
    responses.setdefault("default", {"$ref": "#/components/responses/Error"})
    return responses


def gateway_operation(route: RouteInfo, head_of: RouteInfo | None, auth: bool) -> Document:
    """One operation of a route the gateway answers itself."""
    method, template = route.method, route.template
    key_method = "GET" if method == "HEAD" else method
    entry = OPERATIONS.get((key_method, template))
    doc = inspect.getdoc((head_of or route).handler)
    summary = entry.summary if entry else docstring_summary(doc)
    summary = summary or f"{key_method} {template}"
    operation: Document = {
        "operationId": operation_id(method, template),
        "summary": f"Headers only: {summary}" if method == "HEAD" else summary,
        "tags": [tag_of(template)],
    }
    patterned = [q for q in queries_of(entry) if "{" in q.name] if entry else []
    notes = [f"Query `{q.name}`: {q.description}" for q in patterned]
    if doc or notes:
        operation["description"] = "\n\n".join([*([doc] if doc else []), *notes])
    params = path_parameters(template) + (query_parameters(entry) if entry else [])
    if params:
        operation["parameters"] = params
    if entry is None:
        operation["responses"] = {"2XX": {"description": "Success (no detailed entry yet)"}}
        has_input = method in ("PUT", "POST") or "{" in template
    else:
        operation["responses"] = success_responses(entry, method)
        if entry.body is not None:
            operation["requestBody"] = {"required": True, "content": json_content(entry.body)}
        has_input = entry.body is not None or bool(entry.query)
    public = is_public(template) or not auth
    operation["responses"] = common_errors(operation, template, has_input=has_input, public=public)
    secure(operation, method, template, public)
    return operation


def success_responses(entry: Operation, method: str) -> dict[str, Any]:
    answer: Document = {"description": entry.summary}
    if entry.returns is not None and method != "HEAD" and entry.status != 204:
        answer["content"] = {entry.media_type: {"schema": entry.returns}}
    if entry.paged:
        answer["headers"] = {
            name: {"$ref": f"#/components/headers/{name}"} for name in PAGING_HEADERS
        }
    responses: dict[str, Any] = {str(entry.status): answer}
    for status, description in entry.also.items():
        also: Document = {"description": description}
        if status == 200 and method == "POST" and "segments" in entry.summary:
            also["content"] = json_content(ref("FailedSegments"))
        if status == 202:
            also["content"] = json_content(ref("DeletionRequest"))
        responses[str(status)] = also
    return responses


def secure(operation: Document, method: str, template: str, public: bool) -> None:
    if public:
        operation["security"] = []
        return
    scopes = required_scopes(method, template)
    operation["x-required-scopes"] = list(scopes)
    if scopes:
        operation.setdefault("description", "")
        needs = " or ".join(f"`{scope}`" for scope in scopes)
        operation["description"] = (f"Needs scope {needs}.\n\n" + operation["description"]).strip()


def tag_of(template: str) -> str:
    first = template.strip("/").split("/", 1)[0]
    if template in PROBE_PATHS:
        return "probes"
    return first or "service"


# --- extension documents ---------------------------------------------------------------------


def renamed(value: Any, prefix: str) -> Any:
    """A copy with every local `$ref` pointing at the `{prefix}`-renamed component."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/components/"):
                kind, _, name = item[len("#/components/") :].partition("/")
                out[key] = f"#/components/{kind}/{prefix}{name}"
            else:
                out[key] = renamed(item, prefix)
        return out
    if isinstance(value, list):
        return [renamed(item, prefix) for item in value]
    return value


def merge_extension(
    document: Document, api: ExtensionApi, routes: list[RouteInfo], auth: bool
) -> set[tuple[str, str]]:
    """Adds the extension's paths the gateway serves; returns the routes (method, template)
    they document."""
    source = renamed(api.document, api.prefix)
    for kind, items in source.get("components", {}).items():
        target = document["components"].setdefault(kind, {})
        for name, item in items.items():
            target[f"{api.prefix}{name}"] = item
    covered: set[tuple[str, str]] = set()
    for path, item in source.get("paths", {}).items():
        concrete = re.sub(r"{[^}]+}", "x", path)
        for method in [m for m in METHODS if m.lower() in item]:
            serving = [r for r in routes if r.serves(method, concrete)]
            if not serving:
                continue  # not forwarded by this gateway: not advertised
            route = serving[0]
            covered.add((method, route.template))
            operation = dict(item[method.lower()])
            operation.setdefault("tags", [tag_of(path)])
            operation["x-gateway-route"] = route.template
            operation["responses"] = common_errors(
                operation, route.template, has_input=True, public=not auth
            )
            secure(operation, method, route.template, public=not auth)
            document["paths"].setdefault(path, {})[method.lower()] = operation
            head = next((r for r in routes if r.serves("HEAD", concrete)), None)
            if method == "GET" and head is not None:
                covered.add(("HEAD", head.template))
                document["paths"][path]["head"] = head_operation(operation, path)
    return covered


def head_operation(get: Document, path: str) -> Document:
    head = {k: v for k, v in get.items() if k not in ("operationId", "summary")}
    head["operationId"] = operation_id("HEAD", path)
    head["summary"] = f"Headers only: {get.get('summary', '')}".strip()
    head["responses"] = {
        status: {k: v for k, v in answer.items() if k != "content"}
        if isinstance(answer, dict) and "$ref" not in answer
        else answer
        for status, answer in get["responses"].items()
    }
    return head


# --- the document ------------------------------------------------------------------------------


def model_schemas() -> dict[str, Schema]:
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (name, "serialization", TypeAdapter(model)) for name, model in MODELS.items()
    ]
    keyed, defs = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
    schemas: dict[str, Schema] = dict(defs.get("$defs", {}))
    for (name, _), schema in keyed.items():
        if schema != ref(name):
            schemas[name] = schema  # unions (Flow, InstanceRequest) have no component yet
    # PUT /flows/{id}: a complete flow, or one whose technical details come from a profile.
    schemas["FlowPut"] = {"anyOf": [ref("Flow"), ref("ProfileLinkedFlow")]}
    return schemas


def security_schemes(schemes: Iterable[str]) -> dict[str, Schema]:
    known = {
        "basic_auth": {"type": "http", "scheme": "basic"},
        "bearer_token_auth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "url_token_auth": {"type": "apiKey", "in": "query", "name": "access_token"},
    }
    return {name: known[name] for name in schemes}


def build_document(
    app: web.Application,
    *,
    schemes: list[str],
    server_url: str | None = None,
    extensions: list[ExtensionApi] | None = None,
) -> Document:
    """The document for `app`'s router as it is now; `schemes` are the accepted security
    schemes (`basic_auth`, `bearer_token_auth`, `url_token_auth`), none without auth."""
    routes = router_routes(app)
    document: Document = {
        "openapi": "3.1.0",
        "info": {
            "title": "TAMS gateway",
            "version": metadata.version("tams-gateway"),
            "description": (
                "The HTTP API this Time-addressable Media Store serves: the TAMS 8.2 API and "
                "this server's extensions (analytics and others), generated from the "
                "gateway's routes. The TAMS API itself is specified by the official "
                "document (externalDocs); where they differ, that document is the contract."
            ),
            "x-tams-api-version": "8.2",
        },
        "externalDocs": {
            "description": "The TAMS 8.2 API specification (BBC R&D)",
            "url": SPEC_URL,
        },
        "servers": [{"url": server_url or "/"}],
        "paths": {},
        "components": {
            "schemas": model_schemas(),
            "responses": {
                "BadRequest": error("Bad request: the summary names the bad value"),
                "Unauthorized": error("Missing or bad credentials (with WWW-Authenticate)"),
                "Forbidden": error("Not allowed: scope or permission missing, or read-only"),
                "NotFound": error("No such resource (or no permission to know it exists)"),
                "TooManyRequests": error("Over the rate limit (with Retry-After)"),
                "Error": error("An error: the TAMS error object"),
            },
            "headers": {
                name: {"schema": {"type": "string"}, "description": description}
                for name, description in (
                    ("Link", 'The next page, `<url>; rel="next"`, when there is one'),
                    ("X-Paging-Limit", "The page size used"),
                    ("X-Paging-NextKey", "The key of the next page, when there is one"),
                    ("X-Paging-Count", "Items on this page"),
                    ("X-Paging-Reverse-Order", "Whether the order is reversed"),
                    ("X-Paging-Timerange", "The timerange this page covers (segments)"),
                )
            },
            "securitySchemes": security_schemes(schemes),
        },
        "security": [{name: []} for name in schemes],
    }
    covered: set[tuple[str, str]] = set()
    for api in extension_apis() if extensions is None else extensions:
        covered |= merge_extension(document, api, routes, auth=bool(schemes))
    gets = {r.template: r for r in routes if r.method == "GET"}
    for route in routes:
        if (route.method, route.template) in covered:
            continue
        head_of = gets.get(route.template) if route.method == "HEAD" else None
        path = re.sub(r"{([^}:]+):[^}]*}", r"{\1}", route.template)
        document["paths"].setdefault(path, {})[route.method.lower()] = gateway_operation(
            route, head_of, auth=bool(schemes)
        )
    document["paths"] = dict(sorted(document["paths"].items()))
    document["tags"] = [
        {"name": name}
        for name in sorted(
            {
                tag
                for item in document["paths"].values()
                for op in item.values()
                for tag in op.get("tags", [])
            }
        )
    ]
    return document
