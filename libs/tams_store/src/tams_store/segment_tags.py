"""Segment tags (docs/ext-segment-tags.md): how a tag filter matches one segment's tags, for
adapters that filter segments in Python (VAST). The SQLite adapter says the same in SQL; the
contract tests hold both to it.

The semantics are the flows' (`tag.{name}=a,b`, `tag_exists.{name}=true|false`): a value
filter matches a string tag equal to one of the listed values, or an array tag with an
element equal to one of them; `exists` asks whether the tag is present at all (an empty
array is present). Filters are ANDed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tams_store import documents
from tams_store.port import TagFilter

SegmentTags = dict[str, str | list[str]]


def matches(tags: Mapping[str, Any], wanted: TagFilter) -> bool:
    for name, values in wanted.values.items():
        stored = tags.get(name)
        held = [stored] if isinstance(stored, str) else list(stored or [])
        if not any(value in values for value in held):
            return False
    return all((name in tags) == present for name, present in wanted.exists.items())


def filters(wanted: TagFilter | None) -> bool:
    """Whether a listing filters by segment tags at all."""
    return wanted is not None and bool(wanted.values or wanted.exists)


def decode(text: str | None) -> SegmentTags:
    """A stored tags cell (JSON object text, NULL for none)."""
    return documents.loads(text) if text else {}


def encode(tags: Mapping[str, Any]) -> str | None:
    """The stored cell of these tags: NULL when there are none, so untagged rows stay small."""
    return json.dumps(tags, separators=(",", ":"), sort_keys=True) if tags else None
