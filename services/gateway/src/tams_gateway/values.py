"""Checks for the small JSON bodies of property endpoints."""

from __future__ import annotations

from typing import Any

from tams_gateway.errors import bad_request
from tams_schema.models.common import INT64_MAX


def tag_value(body: Any) -> str | list[str]:
    """A tag is a string or an array of strings (ADR 0040)."""
    if isinstance(body, str):
        return body
    if isinstance(body, list) and all(isinstance(item, str) for item in body):
        return body
    raise bad_request("a tag value must be a JSON string or an array of strings")


def json_string(body: Any, what: str) -> str:
    if not isinstance(body, str):
        raise bad_request(f"{what} must be a JSON string")
    return body


def json_bool(body: Any, what: str) -> bool:
    if not isinstance(body, bool):
        raise bad_request(f"{what} must be a JSON boolean (true or false)")
    return body


def bit_rate(body: Any, what: str) -> int:
    if isinstance(body, bool) or not isinstance(body, int) or not 0 <= body <= INT64_MAX:
        raise bad_request(
            f"{what} must be a non-negative integer (kilobits per second) of at most {INT64_MAX}"
        )
    return body
