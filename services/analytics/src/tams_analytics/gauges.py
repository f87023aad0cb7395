"""Store-wide figures as Prometheus gauges, for dashboards of catalog and storage growth.

Refreshed in the background every `TAMS_ANALYTICS_GAUGE_INTERVAL_S` from the same counters
the endpoints read (a few rows), never while Prometheus scrapes. Labels are formats and
storage backend labels: bounded, deploy-time sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Gauge

from tams_runtime.storage import StorageBackends
from tams_store import ReadTx, Store
from tams_store.analytics import BackendUsage, CatalogCounts

log = logging.getLogger(__name__)

SOURCES = Gauge("tams_catalog_sources", "Sources in the store, by format", ["format"])
FLOWS = Gauge("tams_catalog_flows", "Flows in the store, by format", ["format"])
SEGMENTS = Gauge("tams_stored_segments", "Segments registered, by flow format", ["format"])
SEGMENT_SECONDS = Gauge(
    "tams_stored_segment_seconds", "Media time covered by segments, by flow format", ["format"]
)
OBJECTS = Gauge("tams_stored_objects", "Registered objects, by storage backend label", ["backend"])
OBJECT_BYTES = Gauge(
    "tams_stored_object_bytes", "Bytes of registered objects, by storage backend label", ["backend"]
)
EXTERNAL = "external"


class StoreGauges:
    """A component (start/stop) refreshing the gauges in the background."""

    def __init__(self, store: Store, backends: StorageBackends, interval_s: float) -> None:
        self.store = store
        self.backends = backends
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="analytics-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("could not refresh the store gauges", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def refresh(self) -> None:
        def read(tx: ReadTx) -> tuple[CatalogCounts, list[BackendUsage]]:
            return tx.catalog_counts(), tx.storage_usage()

        counts, storage = await self.store.read(read)
        for gauge in (SOURCES, FLOWS, SEGMENTS, SEGMENT_SECONDS, OBJECTS, OBJECT_BYTES):
            gauge.clear()
        for fmt, n in counts.sources_by_format.items():
            SOURCES.labels(fmt).set(n)
        for codec in counts.usage_by_codec:
            FLOWS.labels(codec.format).inc(codec.usage.flows)
            SEGMENTS.labels(codec.format).inc(codec.usage.segments)
            SEGMENT_SECONDS.labels(codec.format).inc(codec.usage.duration_ns / 1e9)
        for backend in self.backends.all:
            OBJECTS.labels(backend.label).set(0)
            OBJECT_BYTES.labels(backend.label).set(0)
        for usage in storage:
            configured = self.backends.get(usage.storage_id) if usage.storage_id else None
            label = (
                configured.label if configured else EXTERNAL if not usage.storage_id else "other"
            )
            OBJECTS.labels(label).inc(usage.objects)
            OBJECT_BYTES.labels(label).inc(usage.bytes)
