"""Request bodies checked against the spec's rules before they become commands.

Every check names the offending field, so a client gets a 400 that says what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from tams_gateway.errors import bad_request
from tams_gateway.queries import FORMATS, UUID_RE

Doc = dict[str, Any]

MIME_RE = re.compile(r"^[^\s/]+/[^\s/]+$")
FLOW_STATUSES = ("awaiting_content", "ingesting", "replication_in_progress", "closed_complete")
TECHNICAL_FIELDS = ("codec", "container", "avg_bit_rate", "segment_duration", "container_mapping")

ESSENCE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # format: (required keys, allowed keys)
    "urn:x-nmos:format:video": (
        {"frame_width", "frame_height"},
        {
            "frame_width",
            "frame_height",
            "frame_rate",
            "bit_depth",
            "interlace_mode",
            "colorspace",
            "transfer_characteristic",
            "aspect_ratio",
            "pixel_aspect_ratio",
            "component_type",
            "horiz_chroma_subs",
            "vert_chroma_subs",
            "unc_parameters",
            "avc_parameters",
            "vfr",
            "init_segments",
        },
    ),
    "urn:x-nmos:format:audio": (
        {"sample_rate", "channels"},
        {
            "sample_rate",
            "channels",
            "bit_depth",
            "codec_parameters",
            "unc_parameters",
            "init_segments",
        },
    ),
    "urn:x-tam:format:image": (
        {"frame_width", "frame_height"},
        {"frame_width", "frame_height", "aspect_ratio"},
    ),
    "urn:x-nmos:format:data": (set(), {"data_type", "init_segments"}),
    "urn:x-nmos:format:multi": (set(), {"init_segments"}),
}
INT_KEYS = {"frame_width", "frame_height", "bit_depth", "sample_rate", "channels"}
BOOL_KEYS = {"vfr", "init_segments"}


def _object(body: Any, what: str) -> Doc:
    if not isinstance(body, dict):
        raise bad_request(f"{what} must be a JSON object")
    return body


def _uuid(doc: Doc, key: str, what: str, required: bool = True) -> None:
    value = doc.get(key)
    if value is None:
        if required:
            raise bad_request(f"{what}.{key} is required")
        return
    if not isinstance(value, str) or not UUID_RE.match(value):
        raise bad_request(f"{what}.{key} {value!r} is not a UUID")


def _string(doc: Doc, key: str, what: str) -> None:
    if key in doc and not isinstance(doc[key], str):
        raise bad_request(f"{what}.{key} must be a string")


def _int(doc: Doc, key: str, what: str, minimum: int = 0) -> None:
    if key in doc:
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise bad_request(f"{what}.{key} must be an integer >= {minimum}")


def _rational(doc: Doc, key: str, what: str) -> None:
    if key not in doc:
        return
    value = doc[key]
    if not isinstance(value, dict) or set(value) - {"numerator", "denominator"}:
        raise bad_request(f"{what}.{key} must be {{numerator, denominator}}")
    _int(value, "numerator", f"{what}.{key}")
    if "numerator" not in value:
        raise bad_request(f"{what}.{key}.numerator is required")
    _int(value, "denominator", f"{what}.{key}", minimum=1)


def validate_tags(tags: Any, what: str) -> None:
    if not isinstance(tags, dict):
        raise bad_request(f"{what} must be an object of tag names to values")
    for name, value in tags.items():
        if isinstance(value, str):
            continue
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            continue
        raise bad_request(f"{what}.{name} must be a string or an array of strings")


def validate_collection(body: Any) -> list[Doc]:
    if not isinstance(body, list):
        raise bad_request("flow_collection must be an array of {id, role?, container_mapping?}")
    for index, item in enumerate(body):
        what = f"flow_collection[{index}]"
        _object(item, what)
        _uuid(item, "id", what)
        _string(item, "role", what)
        unknown = set(item) - {"id", "role", "container_mapping"}
        if unknown:
            raise bad_request(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")
    return body


def _essence(flow: Doc) -> None:
    fmt = flow["format"]
    required, allowed = ESSENCE_KEYS[fmt]
    if "essence_parameters" not in flow:
        if fmt == "urn:x-nmos:format:multi":
            return
        raise bad_request("essence_parameters is required")
    essence = _object(flow["essence_parameters"], "essence_parameters")
    missing = sorted(required - set(essence))
    if missing:
        raise bad_request(f"essence_parameters is missing {', '.join(missing)}")
    unknown = sorted(set(essence) - allowed)
    if unknown:
        raise bad_request(f"essence_parameters has unknown field(s) {', '.join(unknown)} for {fmt}")
    for key in INT_KEYS & set(essence):
        _int(essence, key, "essence_parameters")
    for key in BOOL_KEYS & set(essence):
        if not isinstance(essence[key], bool):
            raise bad_request(f"essence_parameters.{key} must be a boolean")
    for key in ("frame_rate", "aspect_ratio", "pixel_aspect_ratio"):
        _rational(essence, key, "essence_parameters")
    if fmt == "urn:x-nmos:format:video":
        vfr = essence.get("vfr") is True
        if vfr and "frame_rate" in essence:
            raise bad_request("essence_parameters.frame_rate is not allowed when vfr is true")
        if not vfr and "frame_rate" not in essence:
            raise bad_request("essence_parameters.frame_rate is required unless vfr is true")


def validate_flow_put(body: Any) -> Doc:
    flow = _object(body, "the flow")
    _uuid(flow, "id", "flow")
    _uuid(flow, "source_id", "flow")
    for key in ("label", "description", "metadata_version", "created_by", "updated_by"):
        _string(flow, key, "flow")
    _int(flow, "generation", "flow")
    _int(flow, "max_bit_rate", "flow")
    _int(flow, "avg_bit_rate", "flow")
    if "read_only" in flow and not isinstance(flow["read_only"], bool):
        raise bad_request("flow.read_only must be a boolean")
    if "status" in flow and flow["status"] not in FLOW_STATUSES:
        raise bad_request(f"flow.status must be one of {', '.join(FLOW_STATUSES)}")
    if "tags" in flow:
        validate_tags(flow["tags"], "flow.tags")
    if "flow_collection" in flow:
        validate_collection(flow["flow_collection"])
    profile_id = flow.get("profile_id")
    if profile_id:
        _uuid(flow, "profile_id", "flow")
        return flow
    if profile_id is not None and profile_id != "":
        raise bad_request('flow.profile_id must be a UUID, or "" to unlink a profile')
    fmt = flow.get("format")
    if fmt not in FORMATS:
        raise bad_request(f"flow.format {fmt!r} is not a TAMS content format URN")
    for key in ("codec", "container"):
        if key in flow and (not isinstance(flow[key], str) or not MIME_RE.match(flow[key])):
            raise bad_request(f"flow.{key} {flow[key]!r} is not a MIME type")
    if fmt != "urn:x-nmos:format:multi" and "codec" not in flow:
        raise bad_request("flow.codec is required")
    _rational(flow, "segment_duration", "flow")
    _essence(flow)
    return flow


def validate_profile(body: Any) -> Doc:
    profile = _object(body, "the profile")
    _uuid(profile, "id", "profile")
    for key in ("label", "description", "created_by"):
        _string(profile, key, "profile")
    if "tags" in profile:
        validate_tags(profile["tags"], "profile.tags")
    metadata = _object(profile.get("flow_metadata"), "profile.flow_metadata")
    fmt = metadata.get("format")
    if fmt not in FORMATS or fmt == "urn:x-nmos:format:multi":
        raise bad_request(
            f"profile.flow_metadata.format {fmt!r} must be video, image, audio or data"
        )
    unknown = set(metadata) - {"format", "essence_parameters", *TECHNICAL_FIELDS}
    if unknown:
        raise bad_request(
            f"profile.flow_metadata has unknown field(s) {', '.join(sorted(unknown))}"
        )
    _essence(metadata)
    profile.pop("created", None)
    return profile
