"""Building blocks shared by the TAMS models: ids, tags, URLs, errors, rationals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
MIME_PATTERN = r"^[^\s/]+/[^\s/]+$"

Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
MimeType = Annotated[str, StringConstraints(pattern=MIME_PATTERN)]
Tags = dict[str, str | list[str]]
ContentFormat = Literal[
    "urn:x-nmos:format:video",
    "urn:x-tam:format:image",
    "urn:x-nmos:format:audio",
    "urn:x-nmos:format:data",
    "urn:x-nmos:format:multi",
]
CONTENT_FORMATS: frozenset[str] = frozenset(get_args(ContentFormat))
VIDEO_FORMAT = "urn:x-nmos:format:video"
EventType = Literal[
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
]


# Strict: a JSON value must already have the schema's type. Lax validation would take "3" or
# true for an integer and "yes" for a boolean, and the gateway passes the client's own JSON on,
# so the store would keep, and serve back, values the schema forbids.
class TamsModel(BaseModel):
    """Open models: fields the schema does not name are kept and sent back unchanged."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)


class ClosedModel(BaseModel):
    """Models whose schema says `additionalProperties: false` (or unevaluated: false)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


# A date-time in JSON is a string: strict validation would take only a `datetime` object.
DateTime = Annotated[datetime, Field(strict=False)]
# Integers a store keeps in a 64-bit column: larger ones are a 400 at the edge, not an
# overflow in the store.
INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
# The schemas' `"type": "integer", "exclusiveMinimum": 0`.
PositiveInt = Annotated[int, Field(gt=0, le=INT64_MAX)]
# Counts and offsets the schemas leave as plain integers (`key_frame_count`, `sample_count`,
# `sample_offset`, a count of samples from the object's start): a negative one means nothing.
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]


# The longest URL a client may give for others to fetch (the segments service copies from
# none longer either, `tams_runtime.egress.MAX_URL_LENGTH`): it is shown in every listing of
# every segment of its object. 8 KiB, a server's usual request-line limit: presigned URLs
# that carry a session token (an AWS Lambda's, say) run past 2,000 characters.
MAX_URL_LENGTH = 8192


def _absolute_http_url(value: str) -> str:
    # A URL a client gives for others to fetch (an uncontrolled instance). Whitespace or a
    # control character in it would break the lines of an HLS playlist it is written into.
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"url is {len(value)} characters long; at most {MAX_URL_LENGTH}")
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError(f"url {value!r} contains whitespace or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {value!r} is not an absolute http(s) URL")
    return value


AbsoluteHttpUrl = Annotated[str, AfterValidator(_absolute_http_url)]


def dump(model: BaseModel) -> Any:
    """The JSON form the API sends: aliases, no unset optional fields."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Rational(TamsModel):
    """A rational whose denominator defaults to 1 (kept absent when the client left it out)."""

    numerator: PositiveInt
    denominator: PositiveInt | None = None


class StrictRational(TamsModel):
    """A rational whose denominator the schema requires."""

    numerator: PositiveInt
    denominator: PositiveInt


class Error(TamsModel):
    type: str
    summary: str
    time: DateTime
    traceback: list[str] | None = None


class HttpRequest(TamsModel):
    """How to make a request (`put_url`): note the hyphen in `content-type`."""

    url: str
    content_type: str | None = Field(default=None, alias="content-type")
    headers: dict[str, Any] | None = None
    body: str | None = None


class StorageBackendFields(TamsModel):
    store_type: Literal["http_object_store"] | None = None
    provider: str | None = None
    region: str | None = None
    availability_zone: str | None = None
    store_product: str | None = None
    tags: Tags | None = None


class GetUrl(StorageBackendFields):
    """One instance of an object: a URL and, when verbose, its storage backend."""

    url: str
    storage_id: Uuid | None = None
    presigned: bool | None = None
    label: str | None = None
    controlled: bool | None = None
