"""Every example in the official spec round-trips through its model, and the models' output
validates against the official JSON schemas (loaded from ../shared, never copied here)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from tams_schema import models as m
from tams_schema.timerange import TimeRange
from tams_stack.testing import SpecValidator, find_tams_api_dir

API_DIR = find_tams_api_dir()
EXAMPLES = sorted((API_DIR / "examples").glob("*.json"))

# example file name prefix → (model or type adapter, schema file); a list example is a list of it
Target = tuple[Any, str | None]
FLOW: Target = (m.FlowAdapter, "flow-get.json")
MAPPING: list[tuple[str, Target]] = [
    ("deletion-requests-get-200", (m.DeletionRequest, "deletion-request.json")),
    ("deletion-request-get-200", (m.DeletionRequest, "deletion-request.json")),
    ("flow-collection-", (m.FlowCollectionItem, "collection-item.json")),
    ("flows-get-200", FLOW),
    ("flow-get-200", FLOW),
    ("flow-put-profile", (m.ProfileLinkedFlow, "flow-put.json")),
    ("flow-put", FLOW),
    ("flow-segment-partial-failure", (m.FailedSegments, "flow-segment-bulk-failure.json")),
    ("flow-segment-post", (m.FlowSegmentPost, "flow-segment-post.json")),
    ("flow-segments-get-200", (m.FlowSegment, "flow-segment.json")),
    ("flow-storage-post-201", (m.StorageResponse, "flow-storage.json")),
    ("flow-storage-post", (m.StorageRequest, "flow-storage-post.json")),
    ("flow-tags-get-200", (TypeAdapter(m.Tags), "tags.json")),
    ("objects-get-200", (m.MediaObjectRecord, "object.json")),
    (
        "objects-instances-controlled-post",
        (m.ControlledInstanceRequest, "objects-instances-post.json"),
    ),
    (
        "objects-instances-uncontrolled-post",
        (m.UncontrolledInstanceRequest, "objects-instances-post.json"),
    ),
    ("profiles-get-200", (m.Profile, "profile.json")),
    ("profile-", (m.Profile, "profile.json")),
    ("service-get-200", (m.Service, None)),  # the example's own timeouts break the spec's rule
    ("service-post", (m.ServicePost, "service-post.json")),
    ("sources-get-200", (m.Source, "source.json")),
    ("source-get-200", (m.Source, "source.json")),
    ("storage-backends-get-200", (m.StorageBackend, "storage-backend.json")),
    ("webhook-get-200", (m.WebhookGet, "webhook-get.json")),
    ("webhook-post", (m.WebhookPost, "webhook-post.json")),
    ("webhook-put", (m.WebhookPut, "webhook-put.json")),
]


def target_for(path: Path) -> Target:
    for prefix, target in MAPPING:
        if path.name.startswith(prefix):
            return target
    raise AssertionError(f"no model is mapped for example {path.name}: add one to MAPPING")


def validate(model: Any, value: Any) -> Any:
    if isinstance(model, TypeAdapter):
        return model.validate_python(value)
    return model.model_validate(value)


def to_json(model: Any, value: Any) -> Any:
    if isinstance(model, TypeAdapter):
        return model.dump_python(value, mode="json", by_alias=True, exclude_none=True)
    assert isinstance(value, BaseModel)
    return m.dump(value)


def normalised(value: Any) -> Any:
    """Timeranges and date-times compare by meaning (`10:0` is `[10:0]`, `Z` is `+00:00`)."""
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, str) and value and value[0] in "[(_" and ":" in value:
        try:
            return str(TimeRange.parse(value))
        except ValueError:
            return value
    return value


@pytest.fixture(scope="module")
def spec() -> SpecValidator:
    return SpecValidator(API_DIR)


def test_examples_exist() -> None:
    assert len(EXAMPLES) > 40


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips_and_validates(path: Path, spec: SpecValidator) -> None:
    model, schema = target_for(path)
    data = json.loads(path.read_text())
    items = data if isinstance(data, list) else [data]
    for item in items:
        dumped = to_json(model, validate(model, item))
        assert normalised(dumped) == normalised(item)
        if schema is not None:
            spec.validate(dumped, schema)


def test_video_flow_rules() -> None:
    base = json.loads((API_DIR / "examples" / "flow-get-200-video-h264.json").read_text())
    essence = dict(base["essence_parameters"])
    with pytest.raises(ValidationError, match="not allowed when vfr"):
        m.FlowAdapter.validate_python({**base, "essence_parameters": {**essence, "vfr": True}})
    essence.pop("frame_rate")
    with pytest.raises(ValidationError, match="required unless vfr"):
        m.FlowAdapter.validate_python({**base, "essence_parameters": essence})
    with pytest.raises(ValidationError, match="extra"):
        m.FlowAdapter.validate_python(
            {**base, "essence_parameters": {**base["essence_parameters"], "smell": 1}}
        )
    with pytest.raises(ValidationError):
        m.FlowAdapter.validate_python({**base, "format": "urn:x-nmos:format:smell"})


def test_storage_rules(spec: SpecValidator) -> None:
    with pytest.raises(ValidationError, match="either limit or object_ids"):
        m.StorageRequest.model_validate({"limit": 2, "object_ids": ["a"]})
    response = m.StorageResponse.model_validate(
        {
            "media_objects": [
                {
                    "object_id": "x",
                    "presigned": True,
                    "put_url": {"url": "http://s3/x", "content-type": "video/mp2t"},
                }
            ]
        }
    )
    dumped = m.dump(response)
    assert dumped["media_objects"][0]["put_url"]["content-type"] == "video/mp2t"
    spec.validate(dumped, "flow-storage.json")
    with pytest.raises(ValidationError):
        m.StorageResponse.model_validate({"media_objects": [], "extra": 1})


@pytest.mark.parametrize(
    ("event_type", "event"),
    [
        ("flows/deleted", {"flow_id": "1a6f6d8e-4c6b-4c05-9a0e-4e7f3d2b7c10"}),
        ("sources/deleted", {"source_id": "1a6f6d8e-4c6b-4c05-9a0e-4e7f3d2b7c10"}),
        (
            "flows/segments_deleted",
            {"flow_id": "1a6f6d8e-4c6b-4c05-9a0e-4e7f3d2b7c10", "timerange": "[0:0_10:0)"},
        ),
        (
            "flows/segments_added",
            {
                "flow_id": "1a6f6d8e-4c6b-4c05-9a0e-4e7f3d2b7c10",
                "segments": [{"object_id": "o", "timerange": "[0:0_1:0)"}],
            },
        ),
        (
            "sources/created",
            {
                "source": {
                    "id": "1a6f6d8e-4c6b-4c05-9a0e-4e7f3d2b7c10",
                    "format": "urn:x-nmos:format:video",
                }
            },
        ),
    ],
)
def test_event_payloads(event_type: str, event: dict[str, Any]) -> None:
    payload = {"event_timestamp": "2026-11-24T10:00:00Z", "event_type": event_type, "event": event}
    parsed = TypeAdapter(m.Notification).validate_python(payload)
    assert parsed.event_type == event_type
    with pytest.raises(ValidationError):
        TypeAdapter(m.Notification).validate_python({**payload, "event_type": "flows/exploded"})
