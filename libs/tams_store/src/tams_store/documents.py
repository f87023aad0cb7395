"""TAMS documents as every adapter stores them: which fields are computed on read, tag rows,
and RFC 3339 stamps as integer nanoseconds for sorting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic_core import from_json, to_json

Doc = dict[str, Any]

# Filled in by the adapter on read from other records; never stored in a document.
COMPUTED_KEYS = ("collected_by", "source_collection", "timerange", "segments_updated")


def loads(text: str | bytes) -> Any:
    """Parse stored JSON. pydantic-core's parser gives the same values as `json.loads` in a
    fraction of the time (a registration parses its flow's and objects' documents)."""
    return from_json(text)


def dumps(value: Any) -> str:
    """Compact JSON text, serialised by pydantic-core (UTF-8, not \\u escapes)."""
    return to_json(value).decode()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(stamp: str) -> int:
    """RFC 3339 → integer nanoseconds since the epoch (microsecond precision), in integers
    throughout: a float's seconds, truncated, put `1969-12-31T23:59:59.5Z` a second late. A
    time without an offset is UTC, as every time this server writes."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - EPOCH
    return (since.days * 86_400 + since.seconds) * 1_000_000_000 + since.microseconds * 1000


def stored_doc(doc: Doc) -> str:
    """The document as stored: JSON without the computed fields."""
    return json.dumps({k: v for k, v in doc.items() if k not in COMPUTED_KEYS})


def tag_rows(owner: str, tags: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(owner, name, value) rows: one per value, one per array element, and one with a NULL
    value for an empty array (so `tag_exists` still sees the tag)."""
    rows: list[tuple[str, str, str | None]] = []
    for name, value in tags.items():
        if isinstance(value, list):
            rows.extend((owner, name, str(v)) for v in value)
            if not value:
                rows.append((owner, name, None))
        else:
            rows.append((owner, name, str(value)))
    return rows
