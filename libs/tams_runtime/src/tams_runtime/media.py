"""How segments and objects look in the API: `get_urls`, the URL filters, segment documents.

The gateway (segment listings, `/objects/{id}`) and the webhooks service (`flows/segments_added`
deliveries) show the same segment the same way, so both build it here.

Controlled instances get a presigned GET URL signed locally at read time (no S3 request);
uncontrolled instances are the URLs clients registered. URL filters (checklist §0 "UF"):
`accept_get_urls` absent = no filter, empty = no URLs, else labels; `accept_storage_ids`
absent or empty = no filter; `presigned` true/false/absent; `storage_backend_tag.*` and
`storage_backend_tag_exists.*` on the tags of the URL's backend; all ANDed.
`verbose_storage` false keeps only url, presigned and label.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tams_runtime.s3 import object_key
from tams_runtime.storage import StorageBackends
from tams_store import ReadTx
from tams_store.port import ObjectRecord, SegmentRecord, TagFilter

BRIEF_KEYS = ("url", "presigned", "label")
# Segment fields recorded per registration (the rest belong to the object).
SEGMENT_FIELDS = ("ts_offset", "last_duration", "sample_offset", "sample_count")

# The most bytes of JSON a segment's tags (docs/ext-segment-tags.md) may take, all names and
# values together: one tag request writes them into up to TAMS_MEDIA_SEGMENT_TAG_LIMIT
# segments, and every listing of those segments carries them.
MAX_SEGMENT_TAGS_BYTES = 16 * 1024


def tags_size(tags: Mapping[str, Any]) -> int:
    """The bytes of a tag set as compact JSON, what `MAX_SEGMENT_TAGS_BYTES` counts."""
    return len(json.dumps(tags, separators=(",", ":"), ensure_ascii=False).encode())


def tags_match(tags: Mapping[str, Any], wanted: TagFilter) -> bool:
    """Tag filter semantics on one tag set: any stored value (or array element) equal to any
    wanted value, and presence or absence for `*_exists`."""
    for name, values in wanted.values.items():
        stored = tags.get(name)
        stored_values = stored if isinstance(stored, list) else [stored]
        if not any(v in values for v in stored_values if v is not None):
            return False
    return all((name in tags) == present for name, present in wanted.exists.items())


@dataclass(frozen=True)
class UrlFilter:
    accept_get_urls: list[str] | None = None
    accept_storage_ids: list[str] | None = None
    presigned: bool | None = None
    verbose_storage: bool = False
    backend_tags: TagFilter = field(default_factory=TagFilter)
    # Fine-grained authorisation (ADR 0055): the backends whose instances the caller may
    # read; None: all. URLs of uncontrolled instances (no backend) are not affected.
    readable_storage_ids: frozenset[str] | None = None

    def keep(self, url: Mapping[str, Any]) -> bool:
        storage_id = url.get("storage_id")
        if (
            self.readable_storage_ids is not None
            and storage_id is not None
            and storage_id not in self.readable_storage_ids
        ):
            return False
        if self.accept_get_urls is not None and url.get("label") not in self.accept_get_urls:
            return False
        if self.accept_storage_ids and url.get("storage_id") not in self.accept_storage_ids:
            return False
        if self.presigned is not None and bool(url.get("presigned")) != self.presigned:
            return False
        if self.backend_tags.values or self.backend_tags.exists:
            return tags_match(url.get("tags") or {}, self.backend_tags)
        return True

    def shape(self, url: dict[str, Any]) -> dict[str, Any]:
        if self.verbose_storage:
            return url
        return {k: url[k] for k in BRIEF_KEYS if k in url}


class UrlBuilder:
    """Every instance of an object as `get_urls` entries, preferred first."""

    def __init__(self, backends: StorageBackends) -> None:
        self.backends = backends

    def instances(self, obj: ObjectRecord) -> list[dict[str, Any]]:
        urls: list[dict[str, Any]] = []
        for storage_id in obj.controlled_storage_ids:
            backend = self.backends.get(storage_id)
            if backend is None:
                continue  # a backend removed from the configuration serves nothing
            url = self.backends.presigner(storage_id).presign_get(object_key(obj.object_id))
            urls.append(
                {"url": url, "presigned": True, "label": backend.label, **backend.url_fields()}
            )
        urls.extend(obj.doc.get("get_urls", []))
        return urls

    def get_urls(self, obj: ObjectRecord, filters: UrlFilter) -> list[dict[str, Any]]:
        return [filters.shape(u) for u in self.instances(obj) if filters.keep(u)]


def segment_view(
    record: SegmentRecord,
    objects: Mapping[str, ObjectRecord],
    *,
    urls: UrlBuilder | None = None,
    filters: UrlFilter | None = None,
    include_object_timerange: bool = False,
) -> dict[str, Any]:
    """A segment as the API shows it (`schemas/flow-segment.json`).

    `objects` holds the segment's object and its init object. Without `urls` the segment has
    no `get_urls` (the public Kafka events: presigned URLs would expire in the topic).
    """
    view: dict[str, Any] = {"object_id": record.object_id, "timerange": record.timerange}
    for key in SEGMENT_FIELDS:
        if key in record.doc:
            view[key] = record.doc[key]
    obj = objects.get(record.object_id)
    if obj is not None:
        if "key_frame_count" in obj.doc:
            view["key_frame_count"] = obj.doc["key_frame_count"]
        if include_object_timerange and "timerange" in obj.doc:
            view["object_timerange"] = obj.doc["timerange"]
        if urls is not None:
            view["get_urls"] = urls.get_urls(obj, filters or UrlFilter())
    init_id = (obj.doc.get("init_object_id") if obj else None) or record.doc.get("init_object_id")
    if init_id is not None:
        init: dict[str, Any] = {"object_id": init_id}
        if urls is not None:
            init_obj = objects.get(init_id)
            init["get_urls"] = urls.get_urls(init_obj, filters or UrlFilter()) if init_obj else []
        view["init_object"] = init
    if record.tags:
        # The segment tags extension (docs/ext-segment-tags.md): only on tagged segments, so
        # a plain TAMS client sees exactly the spec's segment.
        view["tags"] = record.tags
    return view


def objects_of(tx: ReadTx, records: Sequence[SegmentRecord]) -> dict[str, ObjectRecord]:
    """The objects of these segments and the init objects they point at (two reads at most)."""
    objects = tx.get_objects(sorted({r.object_id for r in records}))
    inits = {r.object_id for r in records}
    for record in records:
        obj = objects.get(record.object_id)
        init_id = (obj.doc.get("init_object_id") if obj else None) or record.doc.get(
            "init_object_id"
        )
        if init_id:
            inits.add(init_id)
    missing = inits - set(objects)
    if missing:
        objects.update(tx.get_objects(sorted(missing)))
    return objects


def event_object_ids(segments: list[dict[str, Any]]) -> set[str]:
    """The objects (and init objects) that the segments of a `flows/segments_added` event use."""
    ids = {s["object_id"] for s in segments}
    ids.update(s["init_object"]["object_id"] for s in segments if "init_object" in s)
    return ids


def event_segment_view(
    segment: Mapping[str, Any],
    objects: Mapping[str, ObjectRecord],
    *,
    urls: UrlBuilder,
    filters: UrlFilter,
    include_object_timerange: bool = False,
) -> dict[str, Any]:
    """A segment of a `flows/segments_added` event (built by `segment_view` without URLs) as a
    webhook delivers it: the same document a segments GET with these filters shows, with
    `get_urls` signed now. Fields of the event are kept if the object has gone meanwhile."""
    doc = {k: segment[k] for k in SEGMENT_FIELDS if k in segment}
    if "init_object" in segment:
        doc["init_object_id"] = segment["init_object"]["object_id"]
    record = SegmentRecord(0, 0, segment["object_id"], segment["timerange"], doc, 0)
    view = segment_view(
        record,
        objects,
        urls=urls,
        filters=filters,
        include_object_timerange=include_object_timerange,
    )
    return {**segment, **view}
