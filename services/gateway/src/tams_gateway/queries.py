"""Query parameters shared by several endpoints (tags, id lists, sorting), and the rules
every query follows: each parameter given once, and no unknown ones where a misspelt filter
would widen a deletion."""

from __future__ import annotations

import re
from collections import Counter
from typing import TypeVar
from urllib.parse import unquote_plus

from aiohttp import web

from tams_gateway.errors import Handler, bad_request, not_found
from tams_gateway.requests import query_bool
from tams_schema.models.common import UUID_PATTERN
from tams_store import TagFilter

# The schemas' pattern (uuid.json): versions 1 to 5, the RFC variant.
UUID_RE = re.compile(UUID_PATTERN)
# What any request may carry besides its operation's parameters.
GENERAL_QUERY = frozenset({"access_token"})

MAX_LIST_VALUES = 100
# Each filter is a clause of the store query: a request may name this many of each kind.
MAX_TAG_FILTERS = 50

S = TypeVar("S", bound=str)


@web.middleware
async def single_valued_query(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every TAMS query parameter takes one value (lists are comma-separated): a repeated one
    is a 400, where reading the first value would quietly drop the others."""
    query = request.query
    if len(query) > 1 and len(query) != len(set(query.keys())):
        repeated = sorted(name for name, n in Counter(k for k, _ in query.items()).items() if n > 1)
        raise bad_request(
            f"query parameter {', '.join(repeated)} given more than once; give each once "
            "(lists are comma-separated)"
        )
    return await handler(request)


def only_query(request: web.Request, *names: str) -> None:
    """Refuse parameters the operation does not take. For operations that delete or change
    many things at once, where ignoring a misspelt filter (`Timerange=`) would widen the
    operation to the whole flow."""
    unknown = sorted(set(request.query.keys()) - set(names) - GENERAL_QUERY)
    if unknown:
        takes = f"it takes {', '.join(names)}" if names else "it takes none"
        raise bad_request(
            f"unknown query parameter {', '.join(unknown)} for {request.method} "
            f"{request.path} ({takes})"
        )


def tag_filter(request: web.Request, prefix: str = "tag") -> TagFilter:
    """`{prefix}.{name}=v1,v2` and `{prefix}_exists.{name}=true|false`."""
    values: dict[str, list[str]] = {}
    exists: dict[str, bool] = {}
    value_prefix, exists_prefix = f"{prefix}.", f"{prefix}_exists."
    for key in set(request.query.keys()):
        if key in (value_prefix, exists_prefix):
            raise bad_request(f"query parameter {key!r} names no tag: {key}<name>")
        if key.startswith(value_prefix) and len(key) > len(value_prefix):
            values[key[len(value_prefix) :]] = encoded_csv(request, key)
        elif key.startswith(exists_prefix) and len(key) > len(exists_prefix):
            flag = query_bool(request, key)
            assert flag is not None
            exists[key[len(exists_prefix) :]] = flag
    if len(values) + len(exists) > MAX_TAG_FILTERS:
        raise bad_request(
            f"at most {MAX_TAG_FILTERS} {value_prefix}* and {exists_prefix}* filters per request"
        )
    return TagFilter(values=values, exists=exists)


def csv(request: web.Request, name: str, *, strict: bool = False) -> list[str]:
    """A comma-separated query value; empty → []. `strict`: a list the spec gives a pattern
    of non-empty items (`url-label-list`, `uuid-list`), so `a,,b` or `,` is a 400."""
    raw = request.query.get(name, "")
    items = raw.split(",") if raw else []
    if strict and "" in items:
        raise bad_request(f"query parameter {name} has an empty item in {raw!r}")
    return _bounded(name, items)


def _bounded(name: str, items: list[str], *, keep_empty: bool = False) -> list[str]:
    """The non-empty items (all of them with `keep_empty`), at most `MAX_LIST_VALUES` of
    them (400 beyond)."""
    if not keep_empty:
        items = [item for item in items if item != ""]
    if len(items) > MAX_LIST_VALUES:
        raise bad_request(f"query parameter {name} lists more than {MAX_LIST_VALUES} values")
    return items


def encoded_csv(request: web.Request, name: str) -> list[str]:
    """A comma-separated query value whose items may hold commas, sent encoded (`%2C`): the
    raw query is split on its literal commas before each item is decoded. (Tag values: the
    spec says they "MUST be URL encoded where special characters are present".) An empty
    item is the empty value, which a tag may have: `tag.x=` matches `x: ""`."""
    # The request line as sent: yarl's own URL has already turned `%2C` into `,`.
    raw_query = request.raw_path.partition("?")[2].partition("#")[0]
    for part in raw_query.split("&"):
        raw_name, _, raw_value = part.partition("=")
        if unquote_plus(raw_name) == name:
            items = [unquote_plus(item) for item in raw_value.split(",")]
            return _bounded(name, items, keep_empty=True)
    return []


def uuid_list(request: web.Request, name: str) -> list[str] | None:
    """Absent → None; present but empty → [] (meaningful for collected_by_ids)."""
    if name not in request.query:
        return None
    ids = csv(request, name, strict=True)
    for item in ids:
        check_uuid(item, name)
    return ids


def check_uuid(value: str, what: str) -> str:
    if not UUID_RE.fullmatch(value):
        raise bad_request(
            f"{what} {value!r} is not a UUID of the TAMS schemas (lowercase, RFC 4122 versions "
            "1 to 5)"
        )
    return value


def path_uuid(value: str, what: str) -> str:
    """An id in the path: the spec answers one that is not a UUID with 404 ("the ... ID in
    the path is invalid")."""
    if not UUID_RE.fullmatch(value):
        raise not_found(f"{what} {value!r} is not a UUID")
    return value


def optional_uuid(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return None if value is None else check_uuid(value, f"query parameter {name}")


def choice(request: web.Request, name: str, allowed: tuple[S, ...], default: S) -> S:
    value = request.query.get(name)
    if value is None:
        return default
    for option in allowed:
        if value == option:
            return option
    raise bad_request(f"query parameter {name}={value!r} must be one of {', '.join(allowed)}")
