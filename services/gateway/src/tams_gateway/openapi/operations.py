"""Hand-written details of the gateway's known operations: summary, query parameters, request
body and success response, by (method, route template).

The document lists every route of the router whether or not it has an entry here: a route
without one (a new extension, say) appears with its handler's docstring as summary and a
generic answer (`2XX`, errors as the TAMS error object). Schemas come from `tams_schema`'s
Pydantic models (components named after the model), or are written inline where no model
exists. The official TAMS 8.2 spec remains the reference for every TAMS route; these entries
describe what this gateway serves, without copying it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]


def ref(model: str) -> Schema:
    return {"$ref": f"#/components/schemas/{model}"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STRING: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
TAG_VALUE: Schema = {"oneOf": [STRING, array(STRING)]}
TAGS: Schema = {"type": "object", "additionalProperties": TAG_VALUE}
BIT_RATE: Schema = {"type": "integer", "minimum": 0, "description": "Bits per second"}


@dataclass(frozen=True)
class Query:
    name: str
    schema: Schema
    description: str


# Query parameters by name, shared between operations.
QUERIES = {
    q.name: q
    for q in (
        Query("limit", {"type": "integer", "minimum": 1}, "Page size (capped by the server)."),
        Query("page", STRING, "The page key from `X-Paging-NextKey` (or follow `Link`)."),
        Query("reverse_order", {"type": "boolean"}, "List in reverse order."),
        Query("label", STRING, "Only resources with this label."),
        Query("format", STRING, "Only resources of this format URN."),
        Query("codec", STRING, "Only flows of this codec."),
        Query("source_id", UUID, "Only flows of this source."),
        Query("profile_id", UUID, "Only flows made with this profile."),
        Query("status", STRING, "Only flows with this status."),
        Query("frame_width", {"type": "integer", "minimum": 0}, "Only video of this width."),
        Query("frame_height", {"type": "integer", "minimum": 0}, "Only video of this height."),
        Query("init_segments", {"type": "boolean"}, "Only flows with (or without) init."),
        Query("collected_by_ids", STRING, "Only those collected by these (comma-separated)."),
        Query("timerange", STRING, "A TAMS timerange, e.g. `[0:0_10:0)`."),
        Query("sort_by", STRING, "Sort key."),
        Query("include_timerange", {"type": "boolean"}, "Include the flow's timerange."),
        Query(
            "include_object_timerange",
            {"type": "boolean"},
            "Give each segment its object's `object_timerange`.",
        ),
        Query("object_id", STRING, "Only segments of this media object."),
        Query("presigned", {"type": "boolean"}, "Only presigned (or only other) get_urls."),
        Query("accept_get_urls", STRING, "Labels of the get_urls to include (comma-separated)."),
        Query("accept_storage_ids", STRING, "Storage ids of the get_urls to include."),
        Query("verbose_storage", {"type": "boolean"}, "Describe each get_url's storage."),
        Query("storage_ids", STRING, "Only these storage backends."),
        Query("url", STRING, "Only webhooks with this URL."),
        Query(
            "tag.{name}",
            STRING,
            "Tag filter: resources whose tag `{name}` has one of "
            "these values (comma-separated). Repeat with any tag name.",
        ),
        Query(
            "tag_exists.{name}",
            {"type": "boolean"},
            "Resources with (or without) the tag `{name}`. Repeat with any tag name.",
        ),
    )
}

LISTING = ("limit", "page", "reverse_order")
TAG_FILTERS = ("tag.{name}", "tag_exists.{name}")
GET_URL_FILTERS = ("presigned", "accept_get_urls", "accept_storage_ids", "verbose_storage")


@dataclass(frozen=True)
class Operation:
    summary: str
    status: int = 200
    returns: Schema | None = None
    body: Schema | None = None
    # Names in QUERIES, or parameters of this operation alone.
    query: tuple[str | Query, ...] = ()
    paged: bool = False
    # Further answers than the success one and the errors every operation may give.
    also: dict[int, str] = field(default_factory=dict)
    # The media type of the success answer's `returns`.
    media_type: str = "application/json"


def _property(what: str, schema: Schema, deletable: bool) -> dict[tuple[str, str], Operation]:
    resource, prop = what.split("/")
    template = f"/{resource}s/{{{resource}_id}}/{prop}"
    ops = {
        ("GET", template): Operation(f"The {resource}'s {prop}", returns=schema),
        ("PUT", template): Operation(f"Set the {resource}'s {prop}", 204, body=schema),
    }
    if deletable:
        ops[("DELETE", template)] = Operation(f"Remove the {resource}'s {prop}", 204)
    return ops


def _tags(resource: str) -> dict[tuple[str, str], Operation]:
    base = f"/{resource}s/{{{resource}_id}}/tags"
    return {
        ("GET", base): Operation(f"The {resource}'s tags", returns=TAGS),
        ("GET", f"{base}/{{name}}"): Operation(f"One tag of the {resource}", returns=TAG_VALUE),
        ("PUT", f"{base}/{{name}}"): Operation(f"Set a tag of the {resource}", 204, body=TAG_VALUE),
        ("DELETE", f"{base}/{{name}}"): Operation(f"Remove a tag of the {resource}", 204),
    }


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/"): Operation("The API's root paths", returns=array(STRING)),
    ("GET", "/service"): Operation("Service information", returns=ref("Service")),
    ("POST", "/service"): Operation(
        "Set the service's name and description", 200, body=ref("ServicePost")
    ),
    ("GET", "/service/storage-backends"): Operation(
        "The storage backends",
        returns=array(ref("StorageBackend")),
        query=LISTING,
        paged=True,
    ),
    ("GET", "/service/profiles"): Operation(
        "The flow profiles",
        returns=array(ref("Profile")),
        # No `reverse_order`: the spec gives profiles no order to reverse.
        query=("limit", "page", "format", "codec", "label"),
        paged=True,
    ),
    ("GET", "/service/profiles/{profile_id}"): Operation("One profile", returns=ref("Profile")),
    ("POST", "/service/profiles/{profile_id}"): Operation(
        "Create a profile", 201, returns=ref("Profile"), body=ref("Profile")
    ),
    ("GET", "/service/webhooks"): Operation(
        "The webhooks",
        returns=array(ref("WebhookGet")),
        query=(*LISTING, "url", *TAG_FILTERS),
        paged=True,
    ),
    ("POST", "/service/webhooks"): Operation(
        "Register a webhook", 201, returns=ref("WebhookGet"), body=ref("WebhookPost")
    ),
    ("GET", "/service/webhooks/{webhook_id}"): Operation("One webhook", returns=ref("WebhookGet")),
    ("PUT", "/service/webhooks/{webhook_id}"): Operation(
        "Replace a webhook", 201, returns=ref("WebhookGet"), body=ref("WebhookPut")
    ),
    ("DELETE", "/service/webhooks/{webhook_id}"): Operation("Delete a webhook", 204),
    ("GET", "/sources"): Operation(
        "List sources",
        returns=array(ref("Source")),
        query=(*LISTING, "label", "format", "collected_by_ids", "sort_by", *TAG_FILTERS),
        paged=True,
    ),
    ("GET", "/sources/{source_id}"): Operation("One source", returns=ref("Source")),
    **_tags("source"),
    **_property("source/label", STRING, True),
    **_property("source/description", STRING, True),
    ("GET", "/flows"): Operation(
        "List flows",
        returns=array(ref("Flow")),
        query=(
            *LISTING,
            "source_id",
            "format",
            "codec",
            "label",
            "profile_id",
            "status",
            "frame_width",
            "frame_height",
            "init_segments",
            "collected_by_ids",
            "timerange",
            "sort_by",
            *TAG_FILTERS,
        ),
        paged=True,
    ),
    ("GET", "/flows/{flow_id}"): Operation(
        "One flow", returns=ref("Flow"), query=("include_timerange", "timerange")
    ),
    ("PUT", "/flows/{flow_id}"): Operation(
        "Create (201) or replace (204) a flow",
        201,
        returns=ref("Flow"),
        body=ref("FlowPut"),
        also={204: "Replaced"},
    ),
    ("DELETE", "/flows/{flow_id}"): Operation(
        "Delete a flow and its segments",
        204,
        also={202: "Deletion continues in the background: a flow delete request"},
    ),
    **_tags("flow"),
    **_property("flow/label", STRING, True),
    **_property("flow/description", STRING, True),
    **_property("flow/read_only", {"type": "boolean"}, False),
    **_property("flow/flow_collection", array(ref("FlowCollectionItem")), True),
    **_property("flow/max_bit_rate", BIT_RATE, True),
    **_property("flow/avg_bit_rate", BIT_RATE, True),
    ("GET", "/flows/{flow_id}/segments"): Operation(
        "List a flow's segments",
        returns=array(ref("FlowSegment")),
        query=(
            *LISTING,
            "timerange",
            "object_id",
            "include_object_timerange",
            *GET_URL_FILTERS,
            *TAG_FILTERS,
        ),
        paged=True,
    ),
    ("PUT", "/flows/{flow_id}/segments/tags/{name}"): Operation(
        "Set a tag on the segments wholly inside a timerange (extension, docs/ext-segment-tags.md)",
        204,
        body=TAG_VALUE,
        query=("timerange", "object_id"),
    ),
    ("DELETE", "/flows/{flow_id}/segments/tags/{name}"): Operation(
        "Remove a tag from the segments wholly inside a timerange (extension)",
        204,
        query=("timerange", "object_id"),
    ),
    ("GET", "/flows/{flow_id}/playlist.m3u8"): Operation(
        "The flow's segments as an HLS media playlist (extension, docs/ext-hls.md)",
        returns={
            "type": "string",
            "description": "An RFC 8216 media playlist: VOD, or EVENT with `live=true`",
        },
        query=(
            "timerange",
            Query(
                "live",
                {"type": "boolean"},
                "An EVENT playlist without `#EXT-X-ENDLIST`: a player reloads it and plays "
                "the segments registered since (default false: VOD).",
            ),
            *GET_URL_FILTERS,
        ),
        media_type="application/vnd.apple.mpegurl",
    ),
    ("POST", "/flows/{flow_id}/segments"): Operation(
        "Register segments (one or an array)",
        201,
        body={"oneOf": [ref("FlowSegmentPost"), array(ref("FlowSegmentPost"))]},
        also={200: "Some segments of the array failed: `failed_segments`"},
    ),
    ("DELETE", "/flows/{flow_id}/segments"): Operation(
        "Delete a flow's segments in a timerange",
        204,
        query=("timerange", "object_id"),
        also={202: "Deletion continues in the background: a flow delete request"},
    ),
    ("POST", "/flows/{flow_id}/storage"): Operation(
        "Allocate media objects to upload",
        201,
        returns=ref("StorageResponse"),
        body=ref("StorageRequest"),
    ),
    ("GET", "/objects/{object_id}"): Operation(
        "A media object, its instances and the flows that use it",
        returns=ref("MediaObjectRecord"),
        # Its `referenced_by_flows` are paged, in one order only.
        query=("limit", "page", *GET_URL_FILTERS),
        paged=True,
    ),
    ("POST", "/objects/{object_id}/instances"): Operation(
        "Add an instance of a media object", 201, body=ref("InstanceRequest")
    ),
    ("DELETE", "/objects/{object_id}/instances"): Operation(
        "Remove an instance of a media object",
        204,
        query=(
            Query("storage_id", UUID, "The controlled instance on this storage backend."),
            Query("label", STRING, "The uncontrolled instance with this label."),
        ),
    ),
    ("GET", "/flow-delete-requests"): Operation(
        "List flow delete requests",
        returns=array(ref("DeletionRequest")),
        query=(*LISTING, "sort_by"),
        paged=True,
    ),
    ("GET", "/flow-delete-requests/{request_id}"): Operation(
        "One flow delete request", returns=ref("DeletionRequest")
    ),
    ("GET", "/deleted-flows"): Operation(
        "Soft-deleted flows, most recently deleted first (extension, docs/ext-soft-delete.md)",
        returns=array({"type": "object"}),
        query=("limit", "page"),
        paged=True,
    ),
    ("GET", "/deleted-flows/{flow_id}"): Operation(
        "One soft-deleted flow: `{flow, deleted, deleted_by, purge_after}`",
        returns={"type": "object"},
    ),
    ("POST", "/deleted-flows/{flow_id}/restore"): Operation(
        "Restore a soft-deleted flow, with its segments and tags",
        returns=ref("Flow"),
        also={409: "Its source has changed format meanwhile, or a live flow has its id"},
    ),
    ("DELETE", "/deleted-flows/{flow_id}"): Operation(
        "Purge a soft-deleted flow now",
        204,
        also={202: "Purged in the background: a deletion request (`Location`)"},
    ),
    ("GET", "/openapi.json"): Operation("This document (OpenAPI 3.1)", returns={"type": "object"}),
    ("GET", "/health"): Operation("Liveness probe", returns={"type": "object"}),
    ("GET", "/ready"): Operation(
        "Readiness probe: the store and the broker answer",
        returns={"type": "object"},
        also={503: "Not ready"},
    ),
    ("GET", "/metrics"): Operation("Prometheus metrics (text exposition format)"),
}
