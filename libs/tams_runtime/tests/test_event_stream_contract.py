"""The public event stream's contract: its AsyncAPI document and the pinned payload schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tams_runtime.event_stream import EVENT_HEADERS, asyncapi_document
from tams_runtime.settings import KafkaSettings
from tams_schema.envelopes import EVENT_SCHEMA_VERSION, EVENT_TYPES

ROOT = Path(__file__).resolve().parents[3]
PINNED = Path(__file__).with_name(f"event_schema_v{EVENT_SCHEMA_VERSION}.json")


def generated() -> dict[str, Any]:
    # Defaults, not this process's environment: the committed document describes a default
    # deployment (`tams asyncapi` prints the one of the current configuration).
    return asyncapi_document(KafkaSettings.model_construct())


def event_schemas(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The payload schema of each event type, found by its `event_type` constant."""
    found = {}
    for schema in document["components"]["schemas"].values():
        event_type = schema.get("properties", {}).get("event_type", {}).get("const")
        if event_type:
            found[event_type] = schema
    return found


def field_paths(schema: dict[str, Any], schemas: dict[str, Any], prefix: str = "") -> set[str]:
    """Every property path a payload schema names (following $refs into components)."""
    if "$ref" in schema:
        return field_paths(schemas[schema["$ref"].rsplit("/", 1)[-1]], schemas, prefix)
    paths: set[str] = set()
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        paths |= field_paths(branch, schemas, prefix)
    if schema.get("type") == "array" and "items" in schema:
        paths |= field_paths(schema["items"], schemas, prefix + "[]")
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        paths |= field_paths(sub, schemas, path)
    return paths


def current_fields() -> dict[str, list[str]]:
    document = generated()
    schemas = document["components"]["schemas"]
    return {
        event_type: sorted(field_paths(schema, schemas))
        for event_type, schema in event_schemas(document).items()
    }


def test_the_asyncapi_document_lists_every_event_type_on_the_events_topic() -> None:
    document = generated()
    assert document["asyncapi"] == "3.0.0"
    assert list(document["channels"]) == ["tams.events"]
    assert set(event_schemas(document)) == set(EVENT_TYPES)
    description = document["channels"]["tams.events"]["description"]
    for header in EVENT_HEADERS:
        assert f"`{header}`" in description


def test_the_committed_document_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == generated(), "regenerate it: uv run tams asyncapi > docs/asyncapi.json"


def test_no_field_of_the_pinned_schema_version_was_removed_or_renamed() -> None:
    """Adding fields keeps the version; removing or renaming one needs a new version (and a
    new pinned file, event_schema_v<N>.json, next to this test)."""
    pinned = json.loads(PINNED.read_text())
    current = current_fields()
    for event_type, fields in pinned.items():
        missing = sorted(set(fields) - set(current.get(event_type, [])))
        assert not missing, f"{event_type} lost {missing}: bump EVENT_SCHEMA_VERSION"
