"""The TAMS paging contract: `limit`, `page`, `Link` and the `X-Paging-*` headers.

`Link` carries every original query parameter plus `page`, so a client (or a URL token
carried in `access_token`) keeps its filters on the next page. Headers are the same on HEAD.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

from aiohttp import web

from tams_gateway.errors import bad_request
from tams_gateway.settings import GatewaySettings
from tams_store import Page


def page_limit(request: web.Request, settings: GatewaySettings) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return settings.default_page_limit
    try:
        limit = int(raw)
    except ValueError as exc:
        raise bad_request(f"query parameter limit={raw!r} is not an integer") from exc
    if limit < 1:
        raise bad_request(f"query parameter limit={raw!r} must be at least 1")
    return min(limit, settings.max_page_limit)


def public_base(request: web.Request, settings: GatewaySettings) -> str:
    """The URL clients reach the gateway at: `TAMS_GATEWAY_PUBLIC_URL`, else the request's."""
    return settings.public_url.rstrip("/") if settings.public_url else str(request.url.origin())


# What may not stand in a `Link` target: it would end the `<...>` early, or the header.
_LINK_UNSAFE = re.compile(r'[<>"\s\x00-\x1f\x7f]')


def _link_safe(text: str) -> str:
    return _LINK_UNSAFE.sub(lambda found: quote(found.group(0), safe=""), text)


def next_page_url(request: web.Request, settings: GatewaySettings, next_key: str) -> str:
    """The request's URL with `page` set to `next_key`. The query string is kept as it was
    sent: decoded and encoded again, an encoded comma (`tag.x=a%2Cb`, one value holding a
    comma) would come back as a separator (two values). Only what cannot stand inside the
    `Link` header's `<...>` is encoded (a raw `>` would let a query end the link and add
    one of its own)."""
    kept = [
        _link_safe(part)
        for part in request.rel_url.raw_query_string.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) != "page"
    ]
    query = "&".join([*kept, f"page={quote(next_key, safe='')}"])
    return f"{public_base(request, settings)}{_link_safe(request.rel_url.raw_path)}?{query}"


def paging_headers(
    request: web.Request,
    settings: GatewaySettings,
    *,
    limit: int,
    count: int | None,
    next_key: str | None,
    reverse_order: bool | None,
    timerange: str | None = None,
) -> dict[str, str]:
    """Headers for one page. `count`/`reverse_order` None omit them (the PH-min set)."""
    headers = {"X-Paging-Limit": str(limit)}
    if count is not None:
        headers["X-Paging-Count"] = str(count)
    if reverse_order is not None:
        headers["X-Paging-Reverse-Order"] = "true" if reverse_order else "false"
    if timerange is not None:
        headers["X-Paging-Timerange"] = timerange
    if next_key is not None:
        headers["X-Paging-NextKey"] = next_key
        headers["Link"] = f'<{next_page_url(request, settings, next_key)}>; rel="next"'
    return headers


def page_response(
    request: web.Request, settings: GatewaySettings, page: Page, *, reverse_order: bool
) -> web.Response:
    """A listing's page as JSON with the full set of paging headers."""
    headers = paging_headers(
        request,
        settings,
        limit=page.limit,
        count=len(page.items),
        next_key=page.next_key,
        reverse_order=reverse_order,
    )
    return web.json_response(page.items, headers=headers)
