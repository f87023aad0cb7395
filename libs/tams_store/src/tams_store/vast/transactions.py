"""Transaction objects of the VAST adapter: the port's ReadTx and WriteTx.

Each wraps one open VAST transaction and delegates to one module per domain (`catalog`,
`media`, `outcomes`). Adding a port method: write it in the domain module as a function of
`Tables` (a new table: a new step in `tams_schema.tables.MIGRATIONS`), and add the one-line
delegation here.

Reads inside a write transaction see that transaction's own inserts, updates and deletes
(the domain code writes and reads back within one `work`); VAST transactions provide this
(the SDK's tests and notes show a scan seeing its own transaction's changes). It is one of
the behaviours the `vast`-marked tests check on a real cluster.
"""

from __future__ import annotations

from typing import Any

from tams_schema.envelopes import Outcome
from tams_schema.timerange import TimeRange
from tams_store.port import (
    Doc,
    FlowQuery,
    ObjectAllocation,
    ObjectRecord,
    Page,
    SegmentPage,
    SegmentRecord,
    SourceQuery,
    TagFilter,
)
from tams_store.vast import catalog, media, outcomes
from tams_store.vast.tables import TableCatalog, Tables


class VastReadTx:
    def __init__(self, tx: Any, tables: TableCatalog) -> None:
        self.tables = Tables(tx, tables)

    def get_service_info(self) -> Doc:
        return outcomes.get_service_info(self.tables)

    def get_source(self, source_id: str) -> Doc | None:
        return catalog.get_source(self.tables, source_id)

    def list_sources(self, query: SourceQuery) -> Page:
        return catalog.list_sources(self.tables, query)

    def get_flow(self, flow_id: str) -> Doc | None:
        return catalog.get_flow(self.tables, flow_id)

    def flow_timerange(self, flow_id: str, within: TimeRange | None = None) -> TimeRange:
        bounds = None if within is None else within.half_open()
        if within is not None and bounds is None:
            return TimeRange.never()
        ends = media.first_and_last(self.tables, flow_id, bounds)
        if ends is None:
            return TimeRange.never()
        return TimeRange.parse(ends[0]).covering(TimeRange.parse(ends[1]))

    def list_flows(self, query: FlowQuery) -> Page:
        return catalog.list_flows(self.tables, query)

    def get_profile(self, profile_id: str) -> Doc | None:
        return catalog.get_profile(self.tables, profile_id)

    def list_profiles(
        self,
        *,
        format: str | None,
        codec: str | None,
        label: str | None,
        page: str | None,
        limit: int,
    ) -> Page:
        return catalog.list_profiles(
            self.tables, format=format, codec=codec, label=label, page=page, limit=limit
        )

    def get_objects(self, object_ids: list[str]) -> dict[str, ObjectRecord]:
        return media.get_objects(self.tables, object_ids)

    def object_flows(
        self, object_id: str, flow_tags: TagFilter, page: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        return media.object_flows(self.tables, object_id, flow_tags, page, limit)

    def list_segments(
        self,
        flow_id: str,
        *,
        timerange: TimeRange | None,
        object_id: str | None,
        reverse: bool,
        page: str | None,
        limit: int,
    ) -> SegmentPage:
        bounds = None if timerange is None else timerange.half_open()
        if timerange is not None and bounds is None:
            return SegmentPage(items=[], limit=limit)
        return media.list_segments(
            self.tables,
            flow_id,
            bounds=bounds,
            object_id=object_id,
            reverse=reverse,
            page=page,
            limit=limit,
        )


class VastWriteTx(VastReadTx):
    def recorded_outcome(self, command_id: str) -> Outcome | None:
        return outcomes.recorded_outcome(self.tables, command_id)

    def record_outcome(self, command_id: str, outcome: Outcome) -> None:
        outcomes.record_outcome(self.tables, command_id, outcome)

    def set_service_info(self, info: Doc) -> None:
        outcomes.set_service_info(self.tables, info)

    def put_source(self, source: Doc) -> None:
        catalog.put_source(self.tables, source)

    def delete_source(self, source_id: str) -> None:
        catalog.delete_source(self.tables, source_id)

    def count_flows_of_source(self, source_id: str) -> int:
        return catalog.count_flows_of_source(self.tables, source_id)

    def put_flow(self, flow: Doc) -> None:
        catalog.put_flow(self.tables, flow)

    def delete_flow(self, flow_id: str) -> None:
        catalog.delete_flow(self.tables, flow_id)

    def put_profile(self, profile: Doc) -> None:
        catalog.put_profile(self.tables, profile)

    def existing_object_ids(self, object_ids: list[str]) -> set[str]:
        return media.existing_object_ids(self.tables, object_ids)

    def allocate_objects(self, allocations: list[ObjectAllocation]) -> None:
        media.allocate_objects(self.tables, allocations)

    def overlapping_segments(self, flow_id: str, start: int, end: int) -> list[tuple[int, int]]:
        return media.overlapping(self.tables, flow_id, start, end)

    def add_segments(
        self,
        flow_id: str,
        segments: list[SegmentRecord],
        objects: list[ObjectRecord],
        segments_updated: str,
    ) -> None:
        media.add_segments(self.tables, flow_id, segments, objects, segments_updated)
