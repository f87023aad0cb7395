"""The analytics endpoints (documented in `tams_schema/openapi/analytics.yaml`, served at
/analytics/openapi.yaml and merged into the gateway's /openapi.json).

Every figure is read, in one read transaction, from counters the store keeps in the same
transaction as the writes they count (docs/analytics.md): exact, and never a scan of the
segments. Durations are integer nanoseconds; timeranges are TAMS timerange strings.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tams_analytics.settings import AnalyticsSettings
from tams_runtime.storage import StorageBackends
from tams_runtime.web import (
    bad_request,
    not_found,
    query_format,
    query_int,
    query_mime_type,
    query_timerange,
    query_uuid,
)
from tams_schema.openapi import ANALYTICS_OPENAPI
from tams_schema.timerange import TimeRange
from tams_store import ReadTx, Store
from tams_store.analytics import (
    BackendUsage,
    CatalogCounts,
    CoveragePage,
    FlowCoverage,
    FlowFilter,
    UsageFigures,
    UsagePage,
)

routes = web.RouteTableDef()

STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", AnalyticsSettings)
BACKENDS = web.AppKey("backends", StorageBackends)

OPENAPI = ANALYTICS_OPENAPI


def usage_view(usage: UsageFigures, flows: bool = True) -> dict[str, int]:
    view = {
        "segments": usage.segments,
        "duration_ns": usage.duration_ns,
        "bytes": usage.bytes,
        "segments_without_size": usage.segments_without_size,
    }
    return {"flows": usage.flows, **view} if flows else view


def extent_view(extent: tuple[int, int] | None) -> str:
    return str(TimeRange.never() if extent is None else TimeRange.from_half_open(*extent))


def flow_filter(request: web.Request) -> FlowFilter:
    return FlowFilter(
        flow_id=query_uuid(request, "flow_id"),
        source_id=query_uuid(request, "source_id"),
        format=query_format(request),
        codec=query_mime_type(request, "codec"),
    )


def page_limit(request: web.Request) -> int:
    settings = request.app[SETTINGS]
    limit = query_int(request, "limit", minimum=1)
    return settings.default_page_limit if limit is None else min(limit, settings.max_page_limit)


def paging_headers(limit: int, count: int, next_key: str | None) -> dict[str, str]:
    """The gateway turns X-Paging-NextKey into the client-facing `Link`."""
    headers = {"X-Paging-Limit": str(limit), "X-Paging-Count": str(count)}
    if next_key is not None:
        headers["X-Paging-NextKey"] = next_key
    return headers


def require_flow(tx: ReadTx, flows: FlowFilter) -> None:
    """A named flow that does not exist is a 404, not an empty answer."""
    if flows.flow_id is not None and tx.get_flow(flows.flow_id) is None:
        raise not_found(f"flow {flows.flow_id} does not exist")


REPORTS = ("catalog-summary", "flow-usage", "storage-usage", "time-range-analysis")


@routes.get("/analytics")
async def index(_: web.Request) -> web.Response:
    """The reports under /analytics, as `GET /` lists the API's top-level paths."""
    return web.json_response([*REPORTS, "openapi.yaml"])


@routes.get("/analytics/openapi.yaml")
async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/yaml")


@routes.get("/analytics/catalog-summary")
async def catalog_summary(request: web.Request) -> web.Response:
    fmt = query_format(request)
    counts: CatalogCounts = await request.app[STORE].read(lambda tx: tx.catalog_counts())
    codecs = [c for c in counts.usage_by_codec if fmt is None or c.format == fmt]
    sources = {f: n for f, n in counts.sources_by_format.items() if fmt is None or f == fmt}
    flows_by_format: dict[str, int] = {}
    total = UsageFigures()
    for codec in codecs:
        flows_by_format[codec.format] = flows_by_format.get(codec.format, 0) + codec.usage.flows
        total = total + codec.usage
    body = {
        "sources": {"count": sum(sources.values()), "by_format": sources},
        "flows": {"count": total.flows, "by_format": flows_by_format},
        "codecs": [{"format": c.format, "codec": c.codec, **usage_view(c.usage)} for c in codecs],
        "usage": usage_view(total),
    }
    return web.json_response(body)


@routes.get("/analytics/flow-usage")
async def flow_usage(request: web.Request) -> web.Response:
    flows = flow_filter(request)
    limit = page_limit(request)
    page_key = request.query.get("page")

    def read(tx: ReadTx) -> UsagePage:
        require_flow(tx, flows)
        return tx.flow_usage(flows, page_key, limit)

    page = await request.app[STORE].read(read)
    body = {
        "totals": usage_view(page.totals),
        "flows": [
            {
                "flow_id": f.flow_id,
                "source_id": f.source_id,
                "format": f.format,
                "codec": f.codec,
                "label": f.label,
                "timerange": extent_view(f.extent),
                **usage_view(f.usage, flows=False),
            }
            for f in page.flows
        ],
    }
    return web.json_response(body, headers=paging_headers(limit, len(page.flows), page.next_key))


@routes.get("/analytics/storage-usage")
async def storage_usage(request: web.Request) -> web.Response:
    storage_id = query_uuid(request, "storage_id")
    configured = request.app[BACKENDS]
    if storage_id is not None and configured.get(storage_id) is None:
        raise not_found(f"storage_id {storage_id} is not a storage backend of this store")
    flows = flow_filter(request)

    def read(tx: ReadTx) -> tuple[list[BackendUsage], UsageFigures]:
        require_flow(tx, flows)
        return tx.storage_usage(), tx.flow_usage(flows, None, 1).totals

    stored, segments = await request.app[STORE].read(read)
    by_id = {b.storage_id: b for b in stored}
    # Every configured backend, even an empty one; then any the store still names.
    ids = [b.id for b in configured.all] + sorted(
        i for i in by_id if i is not None and configured.get(i) is None
    )
    backends: list[dict[str, Any]] = []
    for backend_id in ids:
        if storage_id is not None and backend_id != storage_id:
            continue
        usage = by_id.get(backend_id) or BackendUsage(backend_id, 0, 0, 0, 0)
        backend = configured.get(backend_id)
        backends.append(
            {
                "storage_id": backend_id,
                "label": backend.label if backend else None,
                "objects": usage.objects,
                "bytes": usage.bytes,
                "objects_without_size": usage.objects_without_size,
                "allocated_unregistered": usage.allocated_unregistered,
            }
        )
    external = by_id.get(None)
    body = {
        "backends": backends,
        "totals": {
            key: sum(b[key] for b in backends)
            for key in ("objects", "bytes", "objects_without_size", "allocated_unregistered")
        },
        "external_objects": external.objects if external and storage_id is None else 0,
        "segments": usage_view(segments),
    }
    return web.json_response(body)


def coverage_view(cov: FlowCoverage) -> dict[str, Any]:
    return {
        "flow_id": cov.flow_id,
        "format": cov.format,
        "timerange": extent_view(cov.extent),
        "segments": cov.segments,
        "covered_ns": cov.covered_ns,
        "gap_count": cov.gap_count,
        "gap_ns": cov.gap_ns,
        "gaps": [str(TimeRange.from_half_open(*gap)) for gap in cov.gaps],
        "gaps_truncated": len(cov.gaps) < cov.gap_count,
    }


@routes.get("/analytics/time-range-analysis")
async def time_range_analysis(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    flows = flow_filter(request)
    window = query_timerange(request)
    bounds = None if window is None or window.is_eternity else window.half_open()
    if window is not None and bounds is None and not window.is_eternity:
        raise bad_request(f"timerange {request.query['timerange']!r} is empty")
    gap_limit = query_int(request, "gap_limit", minimum=0)
    gap_limit = settings.default_gap_limit if gap_limit is None else gap_limit
    if gap_limit > settings.max_gap_limit:
        raise bad_request(f"gap_limit={gap_limit} is more than {settings.max_gap_limit}")
    limit = page_limit(request)
    page_key = request.query.get("page")

    def read(tx: ReadTx) -> CoveragePage:
        require_flow(tx, flows)
        return tx.flow_coverage(flows, bounds, gap_limit, page_key, limit)

    page = await request.app[STORE].read(read)
    body = {
        "timerange": str(window if window is not None else TimeRange.eternity()),
        "flows": [coverage_view(cov) for cov in page.flows],
    }
    return web.json_response(body, headers=paging_headers(limit, len(page.flows), page.next_key))
