"""`/service`, storage backends and event stream mechanisms."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tams_schema.models.common import StorageBackendFields, TamsModel, Uuid
from tams_schema.timerange import TimestampField


class EventStreamMechanism(TamsModel):
    name: str
    docs: str | None = None
    config: dict[str, Any] | None = None


class Service(TamsModel):
    type: str = Field(pattern=r"^urn:x-tams:service")
    api_version: str = Field(pattern=r"^(0|[1-9]\d*)\.(0|[1-9]\d*)$")
    min_object_timeout: TimestampField
    min_presigned_url_timeout: TimestampField | None = None
    name: str | None = None
    description: str | None = None
    service_version: str | None = None
    event_stream_mechanisms: list[EventStreamMechanism] | None = None


class ServicePost(TamsModel):
    name: str | None = None
    description: str | None = None


class StorageBackend(StorageBackendFields):
    id: Uuid
    label: str | None = None
    default_storage: bool | None = None
