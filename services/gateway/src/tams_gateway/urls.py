"""The URL filter query parameters of segment and object listings (checklist §0 "UF").

What the filters mean, and how `get_urls` are built, lives in `tams_runtime.media`, shared
with the webhooks service; this module only reads them from a request.
"""

from __future__ import annotations

from aiohttp import web

from tams_gateway.access import Access
from tams_gateway.context import GATEWAY
from tams_gateway.queries import csv, tag_filter, uuid_list
from tams_gateway.requests import query_bool
from tams_runtime.media import UrlFilter


def url_filter(request: web.Request) -> UrlFilter:
    """The request's URL filters, and the backends the caller may read (ADR 0055)."""
    labels = (
        csv(request, "accept_get_urls", strict=True) if "accept_get_urls" in request.query else None
    )
    gw = request.app[GATEWAY]
    return UrlFilter(
        readable_storage_ids=Access.of(request).readable_backends(gw.backends.all),
        accept_get_urls=labels,
        # Absent or empty: no filter (unlike accept_get_urls, where empty means no URLs).
        accept_storage_ids=uuid_list(request, "accept_storage_ids") or None,
        presigned=query_bool(request, "presigned"),
        verbose_storage=bool(query_bool(request, "verbose_storage", False)),
        backend_tags=tag_filter(request, "storage_backend_tag"),
    )
