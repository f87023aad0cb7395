"""Creates the schema and tables at start-up and applies pending migration steps.

The steps are `tams_schema.tables.MIGRATIONS`: each creates tables or adds columns, never
drops anything. `schema_version` holds one row per applied step, written in the same
transaction as the step, so a step is either fully recorded or not at all. Every operation
checks first (table present? column present?), so a step half-done by a process that died,
or done concurrently by another process (the loser gets `Conflict` and retries), is
completed rather than repeated.

Segments get a sorted table on (flow_id, seg_start) where the cluster supports it (VAST
5.3+, `session.features.check_elysium`); on older clusters the same columns get a
semi-sorted projection instead, which the server picks by itself for matching queries.

A `Fill` operation computes rows from what is already stored (counters introduced after the
data they count), through the adapter's own table access, in the step's transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from vastdb import errors
from vastdb.table_metadata import TableMetadata, TableRef, TableType

from tams_schema.tables import (
    SCHEMA_VERSION_TABLE,
    AddColumns,
    AddProjection,
    CreateTable,
    Fill,
    Projection,
    Step,
    TableSpec,
    arrow_schema,
    table_specs,
)
from tams_store.errors import StoreError
from tams_store.vast import counters, locks, media
from tams_store.vast.tables import QueryConfigs, TableCatalog, Tables

log = logging.getLogger(__name__)


def open_schema(tx: Any, bucket: str, path: str, *, create: bool) -> Any:
    """The schema at `path` ("a/b" nests), created level by level if missing and `create`."""
    try:
        parent = tx.bucket(bucket)
    except errors.MissingBucket as exc:
        raise StoreError(
            f"VAST bucket {bucket!r} does not exist or is not a database-enabled view; "
            "an administrator must provision it (docs/vast.md)"
        ) from exc
    for name in path.split("/"):
        schema = parent.schema(name, fail_if_missing=False)
        if schema is None:
            if not create:
                raise StoreError(f"VAST schema {path!r} does not exist in bucket {bucket!r}")
            schema = parent.create_schema(name, fail_if_exists=False)
        parent = schema
    return parent


def sorting_supported(session: Any) -> bool:
    try:
        session.features.check_elysium()
    except errors.NotSupportedVersion:
        return False
    return True


def _projections(operation: CreateTable, sorted_table: bool) -> list[Projection]:
    wanted = list(operation.projections)
    if operation.sorting_key and not sorted_table:
        rest = tuple(c.name for c in operation.columns if c.name not in operation.sorting_key)
        wanted.append(Projection(f"{operation.table}_sorted", operation.sorting_key, rest))
    return wanted


def _create_table(schema: Any, operation: CreateTable, sorted_ok: bool) -> None:
    table = schema.table(operation.table, fail_if_missing=False)
    if table is None:
        sorting_key = list(operation.sorting_key) if sorted_ok else []
        table = schema.create_table(
            operation.table,
            arrow_schema(operation.columns),
            fail_if_exists=False,
            sorting_key=sorting_key,
        )
        log.info("created VAST table", extra={"table": operation.table, "sorted": sorting_key})
    _add_projections(table, _projections(operation, table.sorted_table))


def _add_projections(table: Any, projections: Sequence[Projection]) -> None:
    present = {p.name for p in table.projections()}
    for projection in projections:
        if projection.name in present:
            continue
        try:
            table.create_projection(
                projection.name, list(projection.sorted), list(projection.unsorted)
            )
        except (errors.BadRequest, errors.NotSupported, errors.NotImplemented) as exc:
            # A projection only speeds queries up; they are correct without it.
            log.warning(
                "VAST projection not created",
                extra={"projection": projection.name, "error": type(exc).__name__},
            )


def _add_columns(schema: Any, operation: AddColumns) -> None:
    table = schema.table(operation.table)
    missing = [c for c in operation.columns if c.name not in table.arrow_schema.names]
    if missing:
        table.add_column(arrow_schema(missing))


def _applied(schema: Any, queries: QueryConfigs) -> int:
    table = schema.table(SCHEMA_VERSION_TABLE.table, fail_if_missing=False)
    if table is None:
        return 0
    reader = table.select(columns=["version"], config=queries.scan())
    rows = reader.read_all().column("version").to_pylist()
    return max((int(v) for v in rows if v is not None), default=0)


def bootstrap(tx: Any, bucket: str, path: str, sorted_ok: bool, queries: QueryConfigs) -> int:
    """Schema and version table; returns how many steps are applied."""
    schema = open_schema(tx, bucket, path, create=True)
    _create_table(schema, SCHEMA_VERSION_TABLE, sorted_ok)
    return _applied(schema, queries)


# What each `Fill` operation runs: a function of the tables as the step leaves them.
FILLS: dict[str, Callable[[Tables], None]] = {
    "analytics counters": counters.fill,
    "init objects named before step 5": media.fill_init_objects,
    "key locks": locks.fill_key_locks,
    "storage by copies": counters.fill_copies,
    "release objects left unused before step 5": media.fill_release_unused,
}


def apply_step(
    tx: Any,
    bucket: str,
    path: str,
    number: int,
    steps: Sequence[Step],
    sorted_ok: bool,
    queries: QueryConfigs,
) -> bool:
    """Apply step `number` (1-based) of `steps` unless it already is; True if this call
    applied it."""
    schema = open_schema(tx, bucket, path, create=False)
    if _applied(schema, queries) >= number:
        return False
    for operation in steps[number - 1]:
        if isinstance(operation, CreateTable):
            _create_table(schema, operation, sorted_ok)
        elif isinstance(operation, AddColumns):
            _add_columns(schema, operation)
        elif isinstance(operation, AddProjection):
            _add_projections(schema.table(operation.table), [operation.projection])
        else:
            _fill(tx, schema, bucket, steps[:number], queries, operation)
    version = schema.table(SCHEMA_VERSION_TABLE.table)
    version.insert(
        pa.record_batch(
            [pa.array([number], pa.int64()), pa.array([time.time_ns()], pa.int64())],
            names=["version", "applied_ns"],
        )
    )
    log.info("applied VAST migration step", extra={"version": number})
    return True


def _fill(
    tx: Any, schema: Any, bucket: str, steps: Sequence[Step], queries: QueryConfigs, fill: Fill
) -> None:
    specs, metadata = _metadata(schema, bucket, steps)
    FILLS[fill.name](Tables(tx, TableCatalog(specs=specs, metadata=metadata, queries=queries)))
    log.info("filled VAST tables", extra={"fill": fill.name})


def load_metadata(
    tx: Any, bucket: str, path: str, steps: Sequence[Step]
) -> tuple[dict[str, TableSpec], dict[str, TableMetadata]]:
    """Specs of every table and SDK metadata (schema as the server has it, table kind) to
    open them later with `tx.table_from_metadata` without metadata round-trips."""
    return _metadata(open_schema(tx, bucket, path, create=False), bucket, steps)


def _metadata(
    schema: Any, bucket: str, steps: Sequence[Step]
) -> tuple[dict[str, TableSpec], dict[str, TableMetadata]]:
    specs = table_specs(steps)
    metadata: dict[str, TableMetadata] = {}
    for name, spec in specs.items():
        table = schema.table(name)
        missing = set(spec.column_names) - set(table.arrow_schema.names)
        if missing:
            raise StoreError(f"VAST table {name} lacks columns {sorted(missing)}: migrate first")
        metadata[name] = TableMetadata(
            TableRef(bucket, schema.name, name),
            arrow_schema=table.arrow_schema,
            table_type=TableType.Elysium if table.sorted_table else TableType.Regular,
        )
    return specs, metadata


def drop_schema(tx: Any, bucket: str, path: str) -> bool:
    """Drop the schema at `path` with every table and child schema in it (test runs and
    benchmarks clean up with this; the adapter itself never drops anything)."""
    try:
        schema = open_schema(tx, bucket, path, create=False)
    except StoreError:
        return False
    _drop_tree(schema)
    return True


def _drop_tree(schema: Any) -> None:
    for child in schema.schemas():
        _drop_tree(child)
    for table in schema.tables():
        table.drop()
    schema.drop()
