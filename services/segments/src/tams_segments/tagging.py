"""Segment tags (docs/ext-segment-tags.md): `segments.tag.set` and `segments.tag.delete`.

Both act on the segments of one flow lying wholly inside `timerange` (default `_`), only
those of `object_id` if given, the same selection as a segment DELETE. They are keyed by the
flow id, so they are ordered with the flow's registrations and deletions, and applied once
(the recorded outcome answers a redelivery). A request touching more than
`segment_tag_limit` segments is refused whole (400): nothing is half-tagged.
"""

from __future__ import annotations

from typing import Any

from tams_runtime import deletion
from tams_runtime.media import MAX_SEGMENT_TAGS_BYTES, tags_size
from tams_runtime.settings import MediaSettings
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_schema.timerange import TimeRange
from tams_segments.deletion import now_of
from tams_store import WriteTx

SET_COMMAND = "segments.tag.set"
DELETE_COMMAND = "segments.tag.delete"


class SegmentTagging:
    """The handler of both commands: `value` in the payload sets, its absence removes."""

    def __init__(self, media: MediaSettings) -> None:
        self.limit = media.segment_tag_limit

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        payload = command.payload
        flow_id: str = payload["flow_id"]
        name: str = payload["name"]
        value: str | list[str] | None = payload.get("value")
        timerange = TimeRange.parse(payload.get("timerange") or "_")
        flow = tx.get_flow(flow_id)
        if flow is None:
            return Outcome.error(404, "NotFound", f"flow {flow_id} does not exist")
        if flow.get("read_only"):
            return Outcome.error(403, "Forbidden", f"flow {flow_id} is read-only")
        segments = tx.segments_within(
            flow_id, timerange, object_id=payload.get("object_id"), limit=self.limit + 1
        )
        if len(segments) > self.limit:
            return Outcome.error(
                400,
                "BadRequest",
                f"the request touches more than {self.limit} segments of flow {flow_id}; "
                "narrow it with timerange (or object_id) and send it in parts",
            )
        changed: dict[int, dict[str, Any]] = {}
        for segment in segments:
            tags: dict[str, Any] = dict(segment.tags)
            if value is None:
                tags.pop(name, None)
            else:
                tags[name] = value
            if tags != segment.tags:
                if value is not None and (size := tags_size(tags)) > MAX_SEGMENT_TAGS_BYTES:
                    return Outcome.error(
                        400,
                        "BadRequest",
                        f"segment {segment.timerange} of flow {flow_id} would have {size} "
                        f"bytes of tags (JSON); at most {MAX_SEGMENT_TAGS_BYTES}: nothing was "
                        "changed",
                    )
                changed[segment.start] = tags
        if changed:
            # What a segment listing shows changed: `segments_updated` says so.
            changed_at = deletion.segments_change_time(flow, now_of(command))
            tx.replace_segment_tags(flow_id, changed, deletion.stamp(changed_at))
        return Outcome(status=204)
