"""Every table of the columnar (VAST Database) store, described once.

The tables are the result of an append-only list of migration steps: a step creates tables
or adds columns, never drops or changes anything, and a released step is never edited. The
store records which steps it has applied (`SCHEMA_VERSION_TABLE`) and applies the rest at
start-up, so a newer service works on an older database and the other way round.

Column types are named here (`"string"`, `"int64"`, `"bool"`) and mapped to Arrow only in
`arrow_schema`, which imports `pyarrow` lazily: the services that never talk to VAST do not
need it. Ids are strings (VAST rejects the Arrow uuid type and fixed-size binary); times on
the media timeline are int64 nanoseconds; documents are JSON text.

Adding a table or column: append a new step at the end of `MIGRATIONS` (other engineers may
append steps too; they are renumbered on merge, order is all that matters).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pyarrow

ColumnType = Literal["string", "int64", "bool"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType


@dataclass(frozen=True)
class Projection:
    """A semi-sorted projection: a copy of some columns kept sorted by `sorted`, which the
    server uses by itself for queries filtering on those columns."""

    name: str
    sorted: tuple[str, ...]
    unsorted: tuple[str, ...]


@dataclass(frozen=True)
class CreateTable:
    table: str
    columns: tuple[Column, ...]
    # Rows kept sorted by these columns (VAST 5.3+ sorted tables); where the cluster cannot,
    # a semi-sorted projection on the same columns is created instead.
    sorting_key: tuple[str, ...] = ()
    projections: tuple[Projection, ...] = ()


@dataclass(frozen=True)
class AddColumns:
    table: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class AddProjection:
    """A semi-sorted projection on a table created by an earlier step."""

    table: str
    projection: Projection


@dataclass(frozen=True)
class Fill:
    """Rows or columns computed once from what is already stored, by the adapter's fill of
    this name, in the step's own transaction (e.g. counters introduced after the data)."""

    name: str


Operation = CreateTable | AddColumns | AddProjection | Fill
Step = tuple[Operation, ...]


@dataclass(frozen=True)
class TableSpec:
    """A table as the steps up to some version leave it."""

    name: str
    columns: tuple[Column, ...]
    sorting_key: tuple[str, ...]
    projections: tuple[Projection, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name}")


def _s(name: str) -> Column:
    return Column(name, "string")


def _i(name: str) -> Column:
    return Column(name, "int64")


def _b(name: str) -> Column:
    return Column(name, "bool")


# Which steps have been applied: one row per step, written in the step's own transaction.
SCHEMA_VERSION_TABLE = CreateTable("schema_version", (_i("version"), _i("applied_ns")))

MIGRATIONS: list[Step] = [
    # 1: command outcomes (idempotency) and service info. An outcome is stored in parts of
    # bounded size (a bulk registration's events can be large; cells should stay small).
    (
        CreateTable(
            "command_outcomes",
            (_s("command_id"), _i("part"), _s("outcome"), _i("recorded_ns")),
            sorting_key=("command_id",),
        ),
        CreateTable("service_info", (_i("id"), _s("doc"))),
    ),
    # 2: the catalog (sources, flows, profiles, tags, collections) and segments.
    (
        CreateTable(
            "sources",
            (
                _s("id"),
                _s("format"),
                _s("label"),
                _i("created_ns"),
                _i("updated_ns"),
                _s("doc"),
            ),
            sorting_key=("id",),
        ),
        # One row per tag value (an empty array: one row with a NULL value), matched exactly.
        CreateTable(
            "source_tags", (_s("source_id"), _s("name"), _s("value")), sorting_key=("name",)
        ),
        CreateTable(
            "flows",
            (
                _s("id"),
                _s("source_id"),
                _s("format"),
                _s("codec"),
                _s("label"),
                _s("profile_id"),
                _s("status"),
                _i("frame_width"),
                _i("frame_height"),
                _b("init_segments"),
                _s("container"),
                _b("read_only"),
                _i("created_ns"),
                _i("metadata_updated_ns"),
                _s("doc"),
                # Owned by the segments service: the flow's extent, its longest segment (the
                # bound of the overlap predicate) and how many segments it has had (to size
                # the windows a segment page is read in).
                _s("segments_updated"),
                _i("seg_start"),
                _i("seg_end"),
                _i("max_seg_dur"),
                _i("seg_count"),
            ),
            sorting_key=("id",),
        ),
        CreateTable("flow_tags", (_s("flow_id"), _s("name"), _s("value")), sorting_key=("name",)),
        CreateTable(
            "flow_collections",
            (_s("collector_id"), _s("member_id"), _i("position"), _s("role")),
            sorting_key=("member_id",),
        ),
        CreateTable(
            "profiles",
            (_s("id"), _s("format"), _s("codec"), _s("label"), _i("created_ns"), _s("doc")),
            sorting_key=("id",),
        ),
        CreateTable(
            "segments",
            (
                _s("flow_id"),
                _i("seg_start"),
                _i("seg_end"),
                _s("object_id"),
                _s("timerange"),
                _s("doc"),
                _i("created_ns"),
            ),
            sorting_key=("flow_id", "seg_start"),
            # referenced_by_flows: which flows use an object, without scanning every segment.
            projections=(Projection("segments_by_object", ("object_id",), ("flow_id",)),),
        ),
    ),
    # 3: media objects (allocation first; registration, instances and GC build on it).
    (
        CreateTable(
            "objects",
            (
                _s("id"),
                _s("allocated_flow_id"),
                _s("storage_id"),
                _s("content_type"),
                _i("allocated_ns"),
                _b("registered"),
                _s("first_referenced_by_flow"),
                _s("doc"),
            ),
            sorting_key=("id",),
        ),
    ),
    # 4: webhook registrations and their delivery queues (the outbox).
    (
        CreateTable(
            "webhooks",
            (
                _s("id"),
                _s("url"),
                _s("status"),
                _i("generation"),
                _s("doc"),
                _s("error"),
                _s("api_key_value"),
            ),
            sorting_key=("id",),
        ),
        CreateTable(
            "webhook_tags", (_s("webhook_id"), _s("name"), _s("value")), sorting_key=("name",)
        ),
        # One row per queued event: the first part of its payload (the rest, if any, in
        # `webhook_event_parts`), how many queues still hold it, and when it was queued. It
        # outlives its deliveries (without the payload) so a redelivered event id is known.
        CreateTable(
            "webhook_events",
            (_s("event_id"), _s("payload"), _i("parts"), _i("remaining"), _i("queued_ns")),
            sorting_key=("event_id",),
            projections=(
                Projection("webhook_events_by_age", ("queued_ns",), ("event_id", "remaining")),
            ),
        ),
        CreateTable(
            "webhook_event_parts",
            (_s("event_id"), _i("part"), _s("payload")),
            sorting_key=("event_id",),
        ),
        # A queue: positions are consecutive per webhook, so the next deliveries are a range.
        CreateTable(
            "webhook_deliveries",
            (_s("webhook_id"), _i("seq"), _s("event_id")),
            sorting_key=("webhook_id", "seq"),
        ),
    ),
    # 5: init objects, deletion requests and the queue of work on object bytes.
    (
        # Which media objects name an object as their init object (kept as registered).
        AddColumns("objects", (_s("init_object_id"),)),
        AddProjection("objects", Projection("objects_by_init", ("init_object_id",), ("id",))),
        AddProjection(
            "objects",
            Projection("objects_unregistered", ("registered", "allocated_ns"), ("id",)),
        ),
        # Segments per (init object, flow) through the media objects naming the init object:
        # an init object's `referenced_by_flows` without reading every media object.
        CreateTable(
            "init_refs",
            (_s("init_object_id"), _s("flow_id"), _i("segments")),
            sorting_key=("init_object_id",),
        ),
        CreateTable(
            "deletion_requests",
            (
                _s("id"),
                _s("flow_id"),
                _s("status"),
                _i("created_ns"),
                _i("updated_ns"),
                _i("expiry_ns"),
                _s("object_id"),
                _i("step"),
                _i("resumes"),
                _s("doc"),
            ),
            sorting_key=("id",),
        ),
        # One row per (kind, object, backend); leased by moving `lease_until_ns` forward
        # (so it is not a sorting column: sorting columns cannot be updated).
        CreateTable(
            "media_jobs",
            (
                _s("kind"),
                _s("object_id"),
                _s("storage_id"),
                _i("created_ns"),
                _i("attempts"),
                _s("lease_owner"),
                _i("lease_until_ns"),
            ),
            sorting_key=("object_id",),
            projections=(
                Projection(
                    "media_jobs_due",
                    ("kind", "lease_until_ns"),
                    ("object_id", "storage_id", "created_ns", "attempts", "lease_owner"),
                ),
            ),
        ),
    ),
    # 6: analytics counters, kept in the adapter's write paths (docs/analytics.md, vast.md).
    (
        # Bytes of an object's controlled copy (S3 HEAD at its first registration).
        AddColumns("objects", (_i("size"),)),
        # A flow's usage next to its extent (`seg_count` is its exact number of segments).
        AddColumns("flows", (_i("duration_ns"), _i("bytes"), _i("unsized"))),
        # Store-wide sums, split in shards (each transaction adds to one shard, so concurrent
        # writers rarely touch one row); a figure is the sum over its rows. `kind` is `usage`
        # (key: format, subkey: codec or ''), `sources` (key: format) or `storage` (key:
        # storage backend, '' for external objects).
        CreateTable(
            "totals",
            (
                _s("kind"),
                _s("key"),
                _s("subkey"),
                _i("shard"),
                _i("flows"),
                _i("segments"),
                _i("duration_ns"),
                _i("bytes"),
                _i("unsized"),
                _i("objects"),
                _i("allocated"),
                _i("sources"),
            ),
            sorting_key=("shard",),
        ),
        # A flow's timeline as maximal runs of touching segments: coverage and gaps cost the
        # number of gaps, not the number of segments.
        CreateTable(
            "flow_runs",
            (_s("flow_id"), _i("run_start"), _i("run_end")),
            sorting_key=("flow_id", "run_start"),
        ),
        # Segments per flow and hour of their start, for counts inside a time window.
        CreateTable(
            "flow_buckets",
            (_s("flow_id"), _i("bucket"), _i("segments")),
            sorting_key=("flow_id", "bucket"),
        ),
        Fill("analytics counters"),
    ),
    # 7: segment tags (docs/ext-segment-tags.md): a JSON object per segment row, NULL for
    # none, so tags belong to one flow's segment and never to a (reusable) object.
    (AddColumns("segments", (_s("tags"),)),),
    # 8: soft-deleted flows (docs/ext-soft-delete.md): the flow's row moves here (`record`:
    # its document and deletion facts, JSON; `state`: the `flows` row's other columns, JSON);
    # its segments, runs and buckets stay under its id, hidden, until restore or purge.
    (
        CreateTable(
            "deleted_flows",
            (
                _s("id"),
                _i("deleted_ns"),
                _i("purge_after_ns"),
                _s("purge_request_id"),
                _s("record"),
                _s("state"),
            ),
            sorting_key=("id",),
        ),
    ),
    # 9: lookups by source and by collector, on every registration's event (its source's
    # routing) and every source read: without these, a full scan of `flows`.
    (
        AddProjection("flows", Projection("flows_by_source", ("source_id",), ("id",))),
        AddProjection(
            "flow_collections",
            Projection("flow_collections_by_collector", ("collector_id",), ("member_id",)),
        ),
    ),
    # 10: who registered (or last replaced) each webhook, as JSON: its deliveries are
    # filtered by what that principal may read (fine-grained authorisation). Webhooks
    # registered before this step have none, and deliver as to an unrestricted owner (as
    # SQLite's registered before its step 8).
    (AddColumns("webhooks", (_s("owner"),)),),
    # 11: objects stored before step 5 named their init object only in their documents, and
    # the init object stayed unregistered: the collection of allocations never registered
    # would delete it, bytes and all, and its flows were unknown. Their `init_object_id` and
    # init references are filled in, and the init objects registered in the init role (as
    # SQLite's steps 5 and 11 do).
    (Fill("init objects named before step 5"),),
    # 12: a webhook's signing secret (docs/webhooks.md, signed deliveries), sealed as
    # `api_key_value` is.
    (AddColumns("webhooks", (_s("signing_secret"),)),),
    # 13: key locks: a fixed set of rows (`slot`, filled once) that a transaction deciding
    # on the absence of an id (is this object id free?) updates, the slot chosen by the id:
    # VAST has no unique keys and inserts never conflict, so two transactions inserting one
    # id only conflict through a row both change (docs/vast.md, section 7).
    (
        CreateTable("key_locks", (_i("slot"), _i("taken")), sorting_key=("slot",)),
        Fill("key locks"),
    ),
    # 14: storage figures count an object in every backend holding a controlled copy of it,
    # not only where it was allocated (docs/analytics.md): objects with instances move.
    (Fill("storage by copies"),),
    # 15: objects whose last segment went before step 5 (a flow deleted with no object
    # collection yet) stayed registered, used by nothing and waiting for nothing: never
    # forgotten, their bytes never deleted. Each gets the `release` job a segment deletion
    # queues since, due now (as SQLite's step 15).
    (Fill("release objects left unused before step 5"),),
]


def table_specs(steps: Sequence[Step] = MIGRATIONS) -> dict[str, TableSpec]:
    """The tables as the given steps leave them (the version table included)."""
    tables: dict[str, TableSpec] = {}
    for operation in [SCHEMA_VERSION_TABLE, *(op for step in steps for op in step)]:
        if isinstance(operation, CreateTable):
            if operation.table in tables:
                raise ValueError(f"table {operation.table} is created twice")
            tables[operation.table] = TableSpec(
                operation.table, operation.columns, operation.sorting_key, operation.projections
            )
            _check_columns(tables[operation.table])
        elif isinstance(operation, AddColumns | AddProjection):
            current = tables.get(operation.table)
            if current is None:
                raise ValueError(f"{operation.table} is changed before it is created")
            if isinstance(operation, AddColumns):
                changed = TableSpec(
                    current.name,
                    current.columns + operation.columns,
                    current.sorting_key,
                    current.projections,
                )
            else:
                changed = TableSpec(
                    current.name,
                    current.columns,
                    current.sorting_key,
                    (*current.projections, operation.projection),
                )
            tables[operation.table] = changed
            _check_columns(changed)
    return tables


def _check_columns(spec: TableSpec) -> None:
    names = spec.column_names
    if len(set(names)) != len(names):
        raise ValueError(f"table {spec.name} has a column twice: {names}")
    wanted = set(spec.sorting_key)
    for projection in spec.projections:
        wanted |= {*projection.sorted, *projection.unsorted}
    if wanted - set(names):
        raise ValueError(
            f"table {spec.name} sorts or projects unknown columns {wanted - set(names)}"
        )


def arrow_type(column_type: ColumnType) -> pyarrow.DataType:
    import pyarrow as pa

    return {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_()}[column_type]


def arrow_schema(columns: Iterable[Column]) -> pyarrow.Schema:
    """The Arrow schema of these columns (imports pyarrow)."""
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])
