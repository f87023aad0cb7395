"""Builders of realistic TAMS documents for the contract tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return str(uuid.uuid4())


def source(source_id: str | None = None, at: int = 0, **extra: Any) -> dict[str, Any]:
    doc = {
        "id": source_id or new_id(),
        "format": "urn:x-nmos:format:video",
        "created": stamp(at),
        "updated": stamp(at),
        "tags": {},
    }
    doc.update(extra)
    return doc


def flow(
    flow_id: str | None = None, source_id: str | None = None, at: int = 0, **extra: Any
) -> dict[str, Any]:
    doc = {
        "id": flow_id or new_id(),
        "source_id": source_id or new_id(),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 25, "denominator": 1},
        },
        "created": stamp(at),
        "metadata_updated": stamp(at),
        "metadata_version": new_id(),
        "tags": {},
    }
    doc.update(extra)
    return doc
