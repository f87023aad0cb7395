"""Opaque keyset cursors: the last item's sort key, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tams_store.port import InvalidPageKey

# Every integer a store keeps (times, nanoseconds) is a signed 64-bit one.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def encode(key: list[Any]) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode())
    return raw.decode().rstrip("=")  # no padding: the key goes into URLs unescaped


def decode(token: str, types: tuple[type, ...]) -> list[Any]:
    """The sort key in `token`, whose elements must have exactly these `types` (a `true`
    is not an int), integers within 64 bits: a key crafted otherwise would reach the store's
    query as a value it cannot compare or bind."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidPageKey(f"{token!r} is not a page key issued by this server") from exc
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or any(type(value) is not kind for value, kind in zip(key, types, strict=True))
        or any(type(value) is int and not INT64_MIN <= value <= INT64_MAX for value in key)
    ):
        raise InvalidPageKey(f"{token!r} is not a page key for this listing")
    return key
