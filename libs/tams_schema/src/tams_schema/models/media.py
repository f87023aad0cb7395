"""Segments, storage allocation, objects and their instances, deletion requests."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from tams_schema.models.common import (
    AbsoluteHttpUrl,
    ClosedModel,
    Count,
    Error,
    GetUrl,
    HttpRequest,
    MimeType,
    TamsModel,
    Uuid,
)
from tams_schema.timerange import TimeRangeField, Timestamp, TimestampField

# An empty id names no object: a 400 that says so, not "object  is unknown".
ObjectId = Annotated[str, StringConstraints(min_length=1)]
# An uncontrolled instance's label, and how many such instances an object may have: every
# listing shows each segment with all of its object's URLs, so what one object carries is
# multiplied by the segments that reuse it (an audit made a 1 GB page of 1,000 segments
# from five 200 KB URLs).
MAX_LABEL_LENGTH = 256
MAX_UNCONTROLLED_URLS = 16
Label = Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH)]


class SegmentInitObject(TamsModel):
    object_id: str
    get_urls: list[GetUrl] | None = None


class FlowSegment(TamsModel):
    """A segment as `GET /flows/{id}/segments` shows it."""

    object_id: str
    timerange: TimeRangeField
    ts_offset: TimestampField | None = None
    last_duration: TimestampField | None = None
    object_timerange: TimeRangeField | None = None
    sample_offset: int | None = None
    sample_count: int | None = None
    key_frame_count: int | None = None
    init_object: SegmentInitObject | None = None
    get_urls: list[GetUrl] | None = None


class ExternalUrl(TamsModel):
    url: AbsoluteHttpUrl
    label: Label


class FlowSegmentPost(TamsModel):
    """One segment in `POST /flows/{id}/segments`."""

    object_id: ObjectId
    timerange: TimeRangeField
    init_object_id: ObjectId | None = None
    ts_offset: TimestampField | None = None
    object_timerange: TimeRangeField | None = None
    last_duration: TimestampField | None = None
    sample_offset: Count | None = None
    sample_count: Count | None = None
    key_frame_count: Count | None = None
    get_urls: list[ExternalUrl] | None = Field(default=None, max_length=MAX_UNCONTROLLED_URLS)

    @field_validator("last_duration")
    @classmethod
    def last_duration_not_negative(cls, value: Timestamp | None) -> Timestamp | None:
        # flow-segment-post.json: "cannot be negative".
        if value is not None and value.ns < 0:
            raise ValueError(f"last_duration {value} cannot be negative")
        return value


class FailedSegment(TamsModel):
    object_id: str
    timerange: TimeRangeField | None = None
    error: Error | None = None


class FailedSegments(TamsModel):
    failed_segments: list[FailedSegment]


CLIENT_OBJECT_ID = re.compile(r"[A-Za-z0-9._~/-]{1,256}")


class StorageRequest(TamsModel):
    """`POST /flows/{id}/storage`: `content_type` with an underscore, as the schema spells it;
    the spec's prose spells it `content-type`, so that is read too (checklist §10, item 3).
    Left in the extra members, it would be ignored and an init object stored under the flow's
    container type."""

    limit: int | None = Field(default=None, ge=1)
    object_ids: list[str] | None = None
    storage_id: Uuid | None = None
    content_type: MimeType | None = Field(
        default=None, validation_alias=AliasChoices("content_type", "content-type")
    )
    presigned: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_content_type(cls, body: Any) -> Any:
        both = isinstance(body, dict) and "content_type" in body and "content-type" in body
        if both and body["content_type"] != body["content-type"]:
            raise ValueError("content_type and content-type differ: give one")
        return body

    @field_validator("object_ids")
    @classmethod
    def _safe_object_ids(cls, ids: list[str] | None) -> list[str] | None:
        # A client's id becomes part of an S3 key (`objects/{id[:2]}/{id}`) and of URLs
        # (`/objects/{id}`): URL-unreserved characters and `/` only, and no empty, `.` or
        # `..` steps between the slashes, which a store could read as a path.
        for object_id in ids or []:
            steps = object_id.split("/")
            if not CLIENT_OBJECT_ID.fullmatch(object_id) or any(
                step in ("", ".", "..") for step in steps
            ):
                raise ValueError(
                    f"object id {object_id[:80]!r} is not allowed: use up to 256 letters, "
                    "digits and . _ ~ - /, with no empty, '.' or '..' steps between slashes "
                    "(it becomes part of an S3 key and of URLs)"
                )
        return ids

    @model_validator(mode="after")
    def limit_or_ids(self) -> StorageRequest:
        if self.limit is not None and self.object_ids is not None:
            raise ValueError("give either limit or object_ids, not both")
        return self


class MediaObject(TamsModel):
    object_id: str
    put_url: HttpRequest
    presigned: bool | None = None


class StorageResponse(ClosedModel):
    media_objects: list[MediaObject]


class ObjectInitObject(TamsModel):
    id: str
    get_urls: list[GetUrl] | None = None


class MediaObjectRecord(ClosedModel):
    """`GET /objects/{id}`."""

    id: str
    referenced_by_flows: list[Uuid]
    first_referenced_by_flow: Uuid | None = None
    timerange: TimeRangeField | None = None
    key_frame_count: int | None = None
    init_object: ObjectInitObject | None = None
    get_urls: list[GetUrl] | None = None


class ControlledInstanceRequest(TamsModel):
    storage_id: Uuid


class UncontrolledInstanceRequest(TamsModel):
    url: AbsoluteHttpUrl
    label: Label


InstanceRequest = ControlledInstanceRequest | UncontrolledInstanceRequest


class DeletionRequest(TamsModel):
    id: Uuid
    flow_id: Uuid
    timerange_to_delete: TimeRangeField
    delete_flow: bool
    status: Literal["created", "started", "done", "error"]
    timerange_remaining: TimeRangeField | None = None
    created: str | None = None
    created_by: str | None = None
    updated: str | None = None
    expiry: str | None = None
    error: Error | None = None
