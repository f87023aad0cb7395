"""Table access shared by every domain module of the VAST adapter.

`Tables` opens the tables of one transaction from cached metadata (`tx.table_from_metadata`:
no listing, schema or stats round-trips on the hot path). `TableHandle` wraps the SDK's
select/insert/update/delete with what the SDK leaves to its caller:

* explicit columns on every select (a fresh list each time: the SDK appends `$row_id` to the
  list it is given), a fixed `QueryConfig` (explicit data endpoints and split count, so no
  per-select stats request), and readers consumed fully before anything else is done;
* rows built from the table's Arrow schema, so a missing optional value is a NULL;
* `isin` lists cut into chunks that stay far below the 4.5 MiB query-request limit;
* updates and deletes by `$row_id` taken from a select in the same transaction (row ids are
  never kept across transactions: background sorting may change them);
* `upsert` keyed on a TAMS id, which also removes duplicates that concurrent inserts of the
  same id may have left (VAST has no unique constraint).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from ibis import _
from vastdb.config import QueryConfig
from vastdb.table_metadata import TableMetadata

from tams_schema.tables import TableSpec

ROW_ID = "$row_id"
# Values per `isin` query: 500 uuids make a request of about 25 KB.
IN_CHUNK = 500

Row = dict[str, Any]
Predicate = Any  # an ibis boolean expression or deferred (`ibis._`)


# Characters per cell of long text (outcomes, event payloads): at most 64 KiB of UTF-8. VAST
# limits a request to 5 MiB and inserts wide rows column by column; small cells keep every
# insert a plain one.
PART_CHARS = 16_384


def text_parts(text: str) -> list[str]:
    """`text` cut into cells of at most PART_CHARS characters (one, possibly empty, at least)."""
    return [
        text[offset : offset + PART_CHARS] for offset in range(0, max(len(text), 1), PART_CHARS)
    ]


def in_chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    unique = sorted(set(values))
    for offset in range(0, len(unique), size):
        yield unique[offset : offset + size]


def take(found: pa.Table, indices: Sequence[int]) -> pa.Table:
    """The rows of `found` at these positions (with their `$row_id`, for changes)."""
    return found.take(pa.array(indices, type=pa.int64()))


def all_of(*predicates: Predicate | None) -> Predicate | None:
    """AND of the given predicates, skipping None; None if there are none. Combined as a
    balanced tree: the SDK resolves a predicate recursively, so a chain of many terms is
    as deep as it is long."""
    present = [p for p in predicates if p is not None]
    if not present:
        return None
    return _balanced_and(present)


def _balanced_and(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    middle = len(predicates) // 2
    return _balanced_and(predicates[:middle]) & _balanced_and(predicates[middle:])


@dataclass(frozen=True)
class QueryConfigs:
    """How selects are split: lookups and windows in one split, listing scans in more."""

    data_endpoints: tuple[str, ...]
    scan_splits: int = 1
    sub_splits: int = 4

    def lookup(self) -> QueryConfig:
        return QueryConfig(
            num_splits=1, num_sub_splits=self.sub_splits, data_endpoints=list(self.data_endpoints)
        )

    def scan(self) -> QueryConfig:
        return QueryConfig(
            num_splits=self.scan_splits,
            num_sub_splits=self.sub_splits,
            data_endpoints=list(self.data_endpoints),
        )


@dataclass(frozen=True)
class TableCatalog:
    """Table specs and their SDK metadata, loaded once at start-up."""

    specs: Mapping[str, TableSpec]
    metadata: Mapping[str, TableMetadata]
    queries: QueryConfigs


class TableHandle:
    """One table inside one transaction."""

    def __init__(self, table: Any, spec: TableSpec, queries: QueryConfigs) -> None:
        self.table = table
        self.spec = spec
        self.queries = queries
        self.schema: pa.Schema = table.arrow_schema

    # --- reads -------------------------------------------------------------------------

    def select(
        self,
        columns: Sequence[str],
        where: Predicate | None = None,
        *,
        row_ids: bool = False,
        limit_rows: int | None = None,
        scan: bool = False,
    ) -> pa.Table:
        """Matching rows, in no particular order (and any `limit_rows` of them)."""
        config = self.queries.scan() if scan else self.queries.lookup()
        reader = self.table.select(
            columns=list(columns),
            predicate=where,
            config=config,
            internal_row_id=row_ids,
            limit_rows=limit_rows,
        )
        result: pa.Table = reader.read_all()
        return result

    def rows(
        self,
        columns: Sequence[str],
        where: Predicate | None = None,
        *,
        limit_rows: int | None = None,
        scan: bool = False,
    ) -> list[Row]:
        rows: list[Row] = self.select(columns, where, limit_rows=limit_rows, scan=scan).to_pylist()
        return rows

    def rows_in(
        self, columns: Sequence[str], column: str, values: Sequence[Any], where: Predicate = None
    ) -> list[Row]:
        """Rows whose `column` is one of `values` (and match `where`)."""
        found: list[Row] = []
        for chunk in in_chunks(values):
            found += self.rows(columns, all_of(_[column].isin(chunk), where))
        return found

    def select_in(
        self,
        columns: Sequence[str],
        column: str,
        values: Sequence[Any],
        where: Predicate = None,
        *,
        row_ids: bool = False,
    ) -> pa.Table:
        """Like `rows_in`, as one Arrow table (with `$row_id` if asked, for changes)."""
        parts = [
            self.select(columns, all_of(_[column].isin(chunk), where), row_ids=row_ids)
            for chunk in in_chunks(values)
        ]
        if not parts:
            return self.empty(columns, row_ids)
        return pa.concat_tables(parts)

    def empty(self, columns: Sequence[str], row_ids: bool) -> pa.Table:
        fields = [self.schema.field(c) for c in columns]
        if row_ids:
            fields.append(pa.field(ROW_ID, pa.uint64()))
        return pa.schema(fields).empty_table()

    # --- writes ------------------------------------------------------------------------

    def _arrays(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[pa.Array]:
        return [
            pa.array([row.get(name) for row in rows], type=self.schema.field(name).type)
            for name in columns
        ]

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        unknown = {k for row in rows for k in row} - set(self.schema.names)
        if unknown:
            raise KeyError(f"table {self.spec.name} has no columns {sorted(unknown)}")
        columns = self.spec.column_names
        batch = pa.record_batch(self._arrays(rows, columns), schema=self._schema_of(columns))
        self.table.insert(batch)

    def _schema_of(self, columns: Sequence[str]) -> pa.Schema:
        return pa.schema([self.schema.field(c) for c in columns])

    def update(self, found: pa.Table, values: Mapping[str, Any]) -> None:
        """Set the same `values` on every row of `found` (a select with `row_ids=True`)."""
        if found.num_rows == 0:
            return
        self.update_each(found, [values] * found.num_rows)

    def update_each(self, found: pa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Set `rows[i]` on the i-th row of `found`; every row names the same columns."""
        if found.num_rows == 0:
            return
        if len(rows) != found.num_rows:
            raise ValueError("one set of values per found row")
        columns = list(rows[0])
        arrays = [found.column(ROW_ID).combine_chunks(), *self._arrays(rows, columns)]
        names = [ROW_ID, *columns]
        self.table.update(pa.Table.from_arrays(arrays, names=names), columns=columns)

    def delete(self, found: pa.Table) -> None:
        if found.num_rows == 0:
            return
        self.table.delete(pa.Table.from_arrays([found.column(ROW_ID)], names=[ROW_ID]))

    def delete_where(self, where: Predicate) -> int:
        found = self.select([self.spec.column_names[0]], where, row_ids=True)
        self.delete(found)
        return int(found.num_rows)

    def upsert(
        self,
        key: str,
        row: Mapping[str, Any],
        *,
        insert_only: Mapping[str, Any],
        read: Sequence[str] = (),
    ) -> list[Row]:
        """Insert `row` (with `insert_only` values) if no row has `row[key]`; else set `row`'s
        columns on the existing row and delete any duplicates of it. Returns the rows found
        before the change (their `read` columns): the one updated first, then the deleted
        duplicates; empty if `row` was inserted."""
        columns = list(dict.fromkeys([key, *read]))
        found = self.select(columns, _[key] == row[key], row_ids=True)
        if found.num_rows == 0:
            self.insert([{**insert_only, **row}])
            return []
        self.update(found.slice(0, 1), {k: v for k, v in row.items() if k != key})
        self.delete(found.slice(1))
        previous: list[Row] = found.select(columns).to_pylist()
        return previous


class Tables:
    """The tables of one transaction, opened on first use."""

    def __init__(self, tx: Any, catalog: TableCatalog) -> None:
        self.tx = tx
        self.catalog = catalog
        self._open: dict[str, TableHandle] = {}
        # Lookups worth remembering for the rest of this transaction (a flow's extent is
        # needed once per segment of a bulk registration); writers drop what they change.
        self.memo: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> TableHandle:
        handle = self._open.get(name)
        if handle is None:
            table = self.tx.table_from_metadata(self.catalog.metadata[name])
            handle = TableHandle(table, self.catalog.specs[name], self.catalog.queries)
            self._open[name] = handle
        return handle
