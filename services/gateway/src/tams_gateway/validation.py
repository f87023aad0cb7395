"""Request bodies checked against the spec's models before they become commands.

The models in `tams_schema.models` mirror the official JSON schemas; a body that does not fit
raises `ValidationError`, which the error middleware answers with a 400 naming each bad field.
The body that travels on is the client's own JSON (unknown fields kept as the spec allows).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from tams_gateway.errors import bad_request
from tams_schema.models import FlowAdapter, FlowCollectionItem, Profile, ProfileLinkedFlow

Doc = dict[str, Any]

_COLLECTION = TypeAdapter(list[FlowCollectionItem])


def _object(body: Any, what: str) -> Doc:
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    return without_nulls(body)


def without_nulls(doc: Doc) -> Doc:
    """A member whose value is JSON null is treated as absent, at any depth of objects (no
    TAMS schema allows null, and JSON clients often send unset fields as null); it is not
    stored, so it is never sent back as null either."""
    return {
        key: without_nulls(value) if isinstance(value, dict) else value
        for key, value in doc.items()
        if value is not None
    }


def validate_flow_put(body: Any) -> Doc:
    """A flow PUT: either a full flow of one format, or a flow linked to a profile."""
    flow = _object(body, "the flow")
    if flow.get("profile_id"):
        ProfileLinkedFlow.model_validate(flow)
    else:
        # `profile_id: ""` unlinks a profile; the flow must then be complete.
        FlowAdapter.validate_python(flow)
    return flow


def validate_collection(body: Any) -> list[Doc]:
    _COLLECTION.validate_python(body)
    assert isinstance(body, list)
    return body


def validate_profile(body: Any) -> Doc:
    profile = _object(body, "the profile")
    Profile.model_validate(profile)
    # `created` is the server's to set.
    return {k: v for k, v in profile.items() if k != "created"}
