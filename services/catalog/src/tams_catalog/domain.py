"""Catalog rules of TAMS 8.2, as pure functions over JSON documents.

The gateway has already checked request bodies against the spec's models; what is left here
are the rules that need the store's state: sources born and removed with their flows, profile
links, collection membership, read-only protection, and the server-managed fields.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from tams_schema.auth import AUTH_CLASSES_TAG

Doc = dict[str, Any]

# Fields the server owns: whatever a client sends for them is ignored (checklist §2.4).
SERVER_FLOW_FIELDS = frozenset(
    {"created", "metadata_updated", "segments_updated", "timerange", "collected_by"}
)
# What a Profile's flow_metadata may hold; a PUT that links a profile may not also set these.
PROFILE_FIELDS = frozenset(
    {
        "format",
        "codec",
        "container",
        "avg_bit_rate",
        "segment_duration",
        "essence_parameters",
        "container_mapping",
    }
)


class CatalogError(Exception):
    """A rule violation, with the HTTP status and TAMS error type it is answered with."""

    def __init__(self, status: int, type_: str, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.type = type_
        self.summary = summary


def bad_request(summary: str) -> CatalogError:
    return CatalogError(400, "BadRequest", summary)


# Every change to a flow or source publishes the whole document in an event, which must fit
# a Kafka message (1 MiB by default) with its headers and the relay around it.
MAX_DOCUMENT_BYTES = 512 * 1024


def check_size(doc: dict[str, Any], what: str) -> None:
    """400 when a flow's or source's document would outgrow `MAX_DOCUMENT_BYTES` (a large
    description, many tags, a long collection): its events could not be published."""
    size = len(json.dumps(doc, separators=(",", ":")).encode())
    if size > MAX_DOCUMENT_BYTES:
        raise bad_request(
            f"{what} would be {size} bytes of JSON; at most {MAX_DOCUMENT_BYTES} "
            "(its events carry it whole)"
        )


def not_found(summary: str) -> CatalogError:
    return CatalogError(404, "NotFound", summary)


def read_only(flow_id: str) -> CatalogError:
    return CatalogError(
        403, "Forbidden", f"flow {flow_id} is read-only; set read_only to false first"
    )


def source_not_deletable(flow_id: str, source_id: str) -> CatalogError:
    return CatalogError(
        403,
        "Forbidden",
        f"you may not move flow {flow_id} to another source: it is the last flow of source "
        f"{source_id}, which would be deleted with it, and you may not delete it",
    )


def timestamp(now: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. `2026-11-24T22:15:52.123456Z`."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def change_stamp(now: datetime, *earlier: str | None) -> str:
    """The time stamp of a change applied after the changes stamped `earlier`: the command's
    time, or the latest of those if that is later. Commands of one flow or source are applied
    in order but not always issued in that order (concurrent requests, several gateways), and
    `created`, `metadata_updated` and `updated` must never go back."""
    latest = now.astimezone(UTC)
    for stamp in earlier:
        if not stamp:
            continue
        try:
            parsed = datetime.fromisoformat(stamp)
        except ValueError:
            continue  # a stamp this server did not write cannot stop the change
        latest = max(latest, parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return timestamp(latest)


def new_version() -> str:
    return str(uuid.uuid4())


def apply_profile(flow: Doc, profile: Doc | None) -> Doc:
    """Copy a linked profile's technical metadata into the flow (ADR 0047)."""
    profile_id = flow.get("profile_id")
    if profile_id == "":
        # `profile_id: ""` breaks the link (AppNote 0020).
        return {k: v for k, v in flow.items() if k != "profile_id"}
    if profile_id is None:
        return flow
    clash = sorted(PROFILE_FIELDS & set(flow))
    if clash:
        raise bad_request(
            f"a flow linked to profile {profile_id} may not also set {', '.join(clash)}"
        )
    if profile is None:
        raise bad_request(f"profile {profile_id} does not exist")
    return {**flow, **profile["flow_metadata"]}


def check_collection(flow_id: str, collection: list[Doc], existing_ids: set[str]) -> None:
    """Members must exist, appear once, and not include the collecting flow itself."""
    seen: set[str] = set()
    for item in collection:
        member = item["id"]
        if member == flow_id:
            raise bad_request(f"flow {flow_id} cannot collect itself")
        if member in seen:
            raise bad_request(f"flow {member} appears more than once in flow_collection")
        seen.add(member)
        if member not in existing_ids:
            raise bad_request(f"flow_collection member {member} does not exist")


SourceCollection = list[tuple[str, str | None]]


def implied_source_collection(collection: list[Doc], source_of: dict[str, str]) -> SourceCollection:
    """The sources a flow collection collects, with their roles, in order (a source whose
    flows appear twice counts at its first place)."""
    implied: SourceCollection = []
    seen: set[str] = set()
    for item in collection:
        source_id = source_of[item["id"]]
        if source_id not in seen:
            seen.add(source_id)
            implied.append((source_id, item.get("role")))
    return implied


def check_matches_source(
    flow_id: str, source_id: str, mine: SourceCollection, others: dict[str, SourceCollection]
) -> None:
    """The spec's conflict: a collection whose roles or order disagree with the
    `source_collection` its source has from its other flows (`others`, by flow). Each flow
    may collect fewer of the source's members; the ones it shares must agree."""
    for other_id, theirs in sorted(others.items()):
        their_roles = dict(theirs)
        shared = [(member, role) for member, role in mine if member in their_roles]
        for member, role in shared:
            if role != their_roles[member]:
                raise bad_request(
                    f"flow_collection of flow {flow_id} gives source {member} the role "
                    f"{role!r}, but flow {other_id} of source {source_id} gives it "
                    f"{their_roles[member]!r}"
                )
        mine_order = [member for member, _ in shared]
        their_order = [member for member, _ in theirs if member in set(mine_order)]
        if mine_order != their_order:
            raise bad_request(
                f"flow_collection of flow {flow_id} orders the sources {mine_order}, but flow "
                f"{other_id} of source {source_id} orders them {their_order}"
            )


def prepare_flow(body: Doc, existing: Doc | None, profile: Doc | None, now: datetime) -> Doc:
    """The document to store for a PUT /flows/{id}, given the stored flow if any."""
    flow = {k: v for k, v in body.items() if k not in SERVER_FLOW_FIELDS}
    flow = apply_profile(flow, profile)
    flow.setdefault("tags", {})
    if existing is None:
        flow["created"] = flow["metadata_updated"] = timestamp(now)
    else:
        flow["created"] = existing["created"]
        flow["metadata_updated"] = change_stamp(
            now, existing["created"], existing.get("metadata_updated")
        )
    client_version = body.get("metadata_version")
    if existing is None:
        flow["metadata_version"] = client_version or new_version()
    elif client_version and client_version != existing.get("metadata_version"):
        flow["metadata_version"] = client_version
    else:
        flow["metadata_version"] = new_version()
    return flow


def new_source(flow: Doc, now: datetime, principal: str | None = None) -> Doc:
    """The minimal Source created implicitly for a flow naming an unknown source_id. It
    inherits the flow's `auth_classes` (AppNote 0016: a new source gets the permissions of
    the first flow that references it)."""
    stamp = timestamp(now)
    source: Doc = {
        "id": flow["source_id"],
        "format": flow["format"],
        "created": stamp,
        "updated": stamp,
        "tags": {},
    }
    classes = (flow.get("tags") or {}).get(AUTH_CLASSES_TAG)
    if classes is not None:
        source["tags"] = {AUTH_CLASSES_TAG: classes}
    if principal is not None:
        source["created_by"] = source["updated_by"] = principal
    return source


def attribute(doc: Doc, existing: Doc | None, principal: str | None) -> Doc:
    """`created_by`/`updated_by` of a created or changed flow or source. With an
    authenticated caller they are the server's: `created_by` stays what it was (the caller,
    for a new resource) and `updated_by` is the caller. Without authentication a client's
    values are kept as the spec allows."""
    if principal is None:
        return doc
    attributed = {k: v for k, v in doc.items() if k not in ("created_by", "updated_by")}
    if existing is None:
        attributed["created_by"] = principal
    elif "created_by" in existing:
        attributed["created_by"] = existing["created_by"]
    attributed["updated_by"] = principal
    return attributed


def check_source_format(flow: Doc, source: Doc) -> None:
    if source["format"] != flow["format"]:
        raise bad_request(
            f"flow format {flow['format']} does not match the format {source['format']} "
            f"of its source {source['id']}"
        )


def touch_flow(flow: Doc, now: datetime) -> Doc:
    """A metadata change: bump `metadata_updated` and `metadata_version`."""
    stamp = change_stamp(now, flow.get("created"), flow.get("metadata_updated"))
    return {**flow, "metadata_updated": stamp, "metadata_version": new_version()}


def set_flow_property(flow: Doc, name: str, value: Any, now: datetime) -> Doc:
    if flow.get("read_only") and name != "read_only":
        raise read_only(flow["id"])
    if name == "avg_bit_rate" and flow.get("profile_id"):
        raise bad_request(
            f"avg_bit_rate of flow {flow['id']} comes from profile {flow['profile_id']}; "
            "unlink the profile first"
        )
    return touch_flow({**flow, name: value}, now)


def delete_flow_property(flow: Doc, name: str, now: datetime) -> Doc | None:
    """The flow without the property; None when it has none (nothing changes: the DELETE
    still succeeds, as the spec lists no error for it)."""
    if flow.get("read_only"):
        raise read_only(flow["id"])
    if name == "avg_bit_rate" and flow.get("profile_id"):
        raise bad_request(
            f"avg_bit_rate of flow {flow['id']} comes from profile {flow['profile_id']}; "
            "unlink the profile first"
        )
    if name not in flow:
        return None
    return touch_flow({k: v for k, v in flow.items() if k != name}, now)


def set_tag(doc: Doc, name: str, value: str | list[str]) -> Doc:
    return {**doc, "tags": {**doc.get("tags", {}), name: value}}


def delete_tag(doc: Doc, name: str, kind: str) -> Doc:
    tags = dict(doc.get("tags", {}))
    if name not in tags:
        raise not_found(f"{kind} {doc['id']} has no tag {name!r}")
    del tags[name]
    return {**doc, "tags": tags}


def touch_source(source: Doc, now: datetime) -> Doc:
    return {**source, "updated": change_stamp(now, source.get("created"), source.get("updated"))}
