"""A strict in-memory double of the part of the `vastdb` SDK the VAST adapter uses.

Test support, shipped with the adapter so the contract tests, the domain tests and the
benchmarks share it; nothing in a service imports it.

No VAST emulator exists and the wire protocol is private, so the contract suite runs the
adapter against this double of the SDK's *Python surface* (VASTDB-NOTES §3.3). It is strict
where the real SDK and server are, and unkind where they are allowed to be:

* every predicate goes through the SDK's own request builder
  (`vastdb._internal.build_query_data_request`), so a predicate the real SDK cannot push
  down raises the same `NotImplementedError` here; the same request-size limit applies;
* rows come back shuffled, in random-sized batches, and `limit_rows` returns an arbitrary
  subset of the matching rows, never "the first n";
* `select(internal_row_id=True)` appends `$row_id` to the caller's own column list, as the
  SDK does; row ids are `uint64`, or `decimal128(38, 0)` on sorted tables, and updates and
  deletes build their request exactly as the SDK does, so a wrong row-id type fails;
* a select without explicit data endpoints or split count is counted as the extra stats
  request the SDK would make; a reader must be consumed before its transaction ends;
  requests and rows returned are counted (`requests`), selects also per table;
* errors are the real `vastdb.errors` classes; schemas are validated by the SDK's own
  `validate_ibis_support_schema`; version gates are the SDK's own `Features`;
* transactions are isolated (snapshot at begin, own writes visible, others' invisible until
  commit), writes that touch a row another transaction changed since begin fail at commit
  with `Conflict`, and faults (`Conflict`, `Slowdown`, a lost connection, a commit that lands
  although the client sees it fail) can be injected;
* `signature_differences()` compares each method's signature with the real class's
  (`inspect.signature`; a contract test asserts none), so an SDK change the double misses
  fails a test.

What it cannot know (DML isolation level, conflict rules, row-id stability after sorting,
cell size limits) is assumed as above and listed in docs/vast.md for a real cluster to settle.
"""

from __future__ import annotations

import decimal
import inspect
import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.operations as ops
import pyarrow as pa
import requests
from vastdb import _internal, errors, util
from vastdb._ibis_support import validate_ibis_support_schema
from vastdb.config import QueryConfig, SessionConfig
from vastdb.features import Features
from vastdb.session import Session
from vastdb.table_metadata import TableMetadata, TableRef, TableType

ROW_ID = _internal.INTERNAL_ROW_ID
TableKey = tuple[str, str, str]  # bucket, schema path, table


def http_error(kind: type[errors.HttpError], status: int, code: str, message: str) -> Any:
    return kind(
        code=code,
        message=message,
        method="POST",
        url="http://fake-vast/",
        status=status,
        headers=requests.structures.CaseInsensitiveDict(),
    )


def conflict(message: str) -> errors.Conflict:
    return http_error(errors.Conflict, 409, "Conflict", message)


def bad_request(message: str) -> errors.BadRequest:
    return http_error(errors.BadRequest, 400, "BadRequest", message)


def slowdown() -> errors.Slowdown:
    return http_error(errors.Slowdown, 503, "SlowDown", "slow down")


def lost_connection() -> errors.ConnectionError:
    return errors.ConnectionError(cause=OSError("connection reset"), may_retry=False)


# --- cluster state ------------------------------------------------------------------------------


@dataclass
class TableData:
    schema: pa.Schema
    sorting_key: tuple[str, ...]
    projections: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> TableData:
        return TableData(self.schema, self.sorting_key, dict(self.projections), dict(self.rows))

    @property
    def sorted(self) -> bool:
        return bool(self.sorting_key)

    @property
    def row_id_field(self) -> pa.Field:
        return (
            _internal.INTERNAL_ROW_ID_SORTED_FIELD
            if self.sorted
            else _internal.INTERNAL_ROW_ID_FIELD
        )


@dataclass
class State:
    schemas: set[tuple[str, str]]
    tables: dict[TableKey, TableData]

    def fork(self) -> State:
        return State(set(self.schemas), dict(self.tables))


@dataclass
class Fault:
    point: str  # begin, commit, select, insert, update, delete
    error: BaseException
    after: bool  # commit only: apply the commit, then raise (an ambiguous failure)
    remaining: int


class FakeVastCluster:
    """The server side: committed state, row-id allocation, commit ordering, faults."""

    def __init__(
        self,
        *,
        buckets: tuple[str, ...] = ("tams",),
        version: tuple[int, ...] = (5, 3, 0, 0),
        seed: int | None = None,
    ) -> None:
        self.buckets = set(buckets)
        self.version = version
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.state = State(set(), {})
        self.commit_seq = 0
        self.row_changed_at: dict[tuple[TableKey, int], int] = {}
        self.next_row_id: Counter[TableKey] = Counter()
        self.txids = itertools.count(1)
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.sessions: list[FakeSession] = []

    def connect(
        self,
        access: str | None = None,
        secret: str | None = None,
        endpoint: str | None = None,
        *,
        max_entities_per_page: int = 10_000,
        ssl_verify: bool = True,
        timeout: Any = None,
        backoff_config: Any = None,
        adbc_driver_path: str | None = None,
        end_user: str | None = None,
        config: SessionConfig = SessionConfig(),  # noqa: B008 (the SDK's own default)
    ) -> FakeSession:
        """`vastdb.connect`: the same parameters as `Session.__init__`."""
        if endpoint is None:
            raise ValueError("One of endpoint and AWS_S3_ENDPOINT_URL env is required")
        self.count("version")  # the SDK asks the cluster for its version
        session = FakeSession(
            self,
            dict(
                access=access,
                secret=secret,
                endpoint=endpoint,
                ssl_verify=ssl_verify,
                timeout=timeout,
                backoff_config=backoff_config,
                config=config,
            ),
        )
        self.sessions.append(session)
        return session

    # --- test hooks -------------------------------------------------------------------------

    def inject(
        self, point: str, error: BaseException, *, times: int = 1, after: bool = False
    ) -> None:
        with self.lock:
            self.faults.append(Fault(point, error, after, times))

    def count(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.requests[kind] += n

    def fault(self, point: str, *, after: bool = False) -> None:
        with self.lock:
            for fault in self.faults:
                if fault.point == point and fault.after == after and fault.remaining > 0:
                    fault.remaining -= 1
                    raise fault.error

    def rows(self, bucket: str, schema: str, table: str) -> list[dict[str, Any]]:
        """Committed rows of a table (for assertions)."""
        return list(self.state.tables[(bucket, schema, table)].rows.values())

    # --- commit -----------------------------------------------------------------------------

    def commit(self, tx: FakeTransaction) -> None:
        self.fault("commit")
        with self.lock:
            for key, row_id in tx.touched - tx.inserted:
                if self.row_changed_at.get((key, row_id), 0) > tx.begin_seq:
                    raise conflict(f"row {row_id} of {'/'.join(key)} changed concurrently")
                table = self.state.tables.get(key)
                if table is None or row_id not in table.rows:
                    raise conflict(f"row {row_id} of {'/'.join(key)} deleted concurrently")
            state = self.state.fork()
            owned: set[TableKey] = set()
            self.commit_seq += 1
            for op in tx.log:
                op(state, owned, self, self.commit_seq)
            self.state = state
        self.fault("commit", after=True)

    def allocate_row_ids(self, key: TableKey, n: int) -> list[int]:
        with self.lock:
            first = self.next_row_id[key]
            self.next_row_id[key] += n
        return list(range(first, first + n))


def _own(state: State, owned: set[TableKey], key: TableKey) -> TableData:
    if key not in owned:
        state.tables[key] = state.tables[key].copy()
        owned.add(key)
    return state.tables[key]


# An operation replays on a state: (state, tables already copied, cluster or None, commit seq).
Op = Callable[[State, set[TableKey], "FakeVastCluster | None", int], None]


# --- session and transaction ------------------------------------------------------------------


class FakeSession:
    def __init__(self, cluster: FakeVastCluster, options: dict[str, Any]) -> None:
        self.cluster = cluster
        self.options = options
        self.features = Features(cluster.version)

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self)


class FakeTransaction:
    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.cluster = session.cluster
        self.txid: int | None = None
        self.begin_seq = 0
        self.view: State = self.cluster.state
        self.forked = False
        self.owned: set[TableKey] = set()
        self.log: list[Op] = []
        self.touched: set[tuple[TableKey, int]] = set()  # rows updated or deleted
        self.inserted: set[tuple[TableKey, int]] = set()

    def __enter__(self) -> FakeTransaction:
        self.cluster.count("begin")
        self.cluster.fault("begin")
        with self.cluster.lock:
            self.txid = next(self.cluster.txids)
            self.begin_seq = self.cluster.commit_seq
            self.view = self.cluster.state
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_traceback: Any) -> None:
        self.txid = None
        if exc_type is None:
            self.cluster.count("commit")
            self.cluster.commit(self)
        else:
            self.cluster.count("rollback")

    @property
    def is_active(self) -> bool:
        return self.txid is not None

    @property
    def active_txid(self) -> int:
        if self.txid is None:
            from vastdb.transaction import TransactionNotActiveError

            raise TransactionNotActiveError()
        return self.txid

    def bucket(self, name: str) -> FakeBucket:
        self.active_txid  # noqa: B018 (raises outside a transaction, as the SDK does)
        self.cluster.count("head_bucket")
        if name not in self.cluster.buckets:
            raise errors.MissingBucket(name)
        return FakeBucket(name, self)

    def table_from_metadata(self, metadata: TableMetadata) -> FakeTable:
        return FakeTable(self, metadata.ref, metadata)

    # --- writes to the private view -----------------------------------------------------------

    def apply(self, op: Op) -> None:
        """Run `op` on this transaction's view now and replay it on commit."""
        self.active_txid  # noqa: B018
        if not self.forked:
            self.view = self.view.fork()
            self.forked = True
        op(self.view, self.owned, None, 0)
        self.log.append(op)


# --- buckets and schemas ----------------------------------------------------------------------


class FakeBucket:
    def __init__(self, name: str, tx: FakeTransaction) -> None:
        self.name = name
        self.tx = tx
        self._root = FakeSchema("", self)

    def create_schema(self, name: str, fail_if_exists: bool = True) -> FakeSchema:
        return self._root.create_schema(name=name, fail_if_exists=fail_if_exists)

    def schema(self, name: str, fail_if_missing: bool = True) -> FakeSchema | None:
        return self._root.schema(name=name, fail_if_missing=fail_if_missing)

    def schemas(self, batch_size: int | None = None) -> list[FakeSchema]:
        return self._root.schemas(batch_size=batch_size)


class FakeSchema:
    def __init__(self, name: str, bucket: FakeBucket) -> None:
        self.name = name
        self.bucket = bucket

    @property
    def tx(self) -> FakeTransaction:
        return self.bucket.tx

    def _child(self, name: str) -> str:
        return f"{self.name}/{name}" if self.name else name

    def create_schema(self, name: str, fail_if_exists: bool = True) -> FakeSchema:
        current = self.schema(name, fail_if_missing=False)
        if current is not None:
            if fail_if_exists:
                raise errors.SchemaExists(self.bucket.name, name)
            return current
        if self.name and (self.bucket.name, self.name) not in self.tx.view.schemas:
            raise bad_request(f"parent schema {self.name} does not exist")
        key = (self.bucket.name, self._child(name))

        def create(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            if key in state.schemas:
                raise conflict(f"schema {key[1]} created concurrently")
            state.schemas.add(key)

        self.tx.cluster.count("ddl")
        self.tx.apply(create)
        return FakeSchema(key[1], self.bucket)

    def schema(self, name: str, fail_if_missing: bool = True) -> FakeSchema | None:
        self.tx.cluster.count("list_schemas")
        full = self._child(name)
        if (self.bucket.name, full) not in self.tx.view.schemas:
            if fail_if_missing:
                raise errors.MissingSchema(self.bucket.name, full)
            return None
        return FakeSchema(full, self.bucket)

    def schemas(self, batch_size: int | None = None) -> list[FakeSchema]:
        self.tx.cluster.count("list_schemas")
        prefix = f"{self.name}/" if self.name else ""
        return [
            FakeSchema(path, self.bucket)
            for bucket, path in sorted(self.tx.view.schemas)
            if bucket == self.bucket.name
            and path.startswith(prefix)
            and "/" not in path[len(prefix) :]
        ]

    def create_table(
        self,
        table_name: str,
        columns: pa.Schema,
        fail_if_exists: bool = True,
        use_external_row_ids_allocation: bool = False,
        sorting_key: Any = [],  # noqa: B006 (the SDK's own default)
        vector_index: Any = None,
        partition_spec: Any = None,
    ) -> FakeTable:
        current = self.table(table_name, fail_if_missing=False)
        if current is not None:
            if fail_if_exists:
                raise errors.TableExists(self.bucket.name, self.name, table_name)
            return current
        if use_external_row_ids_allocation or vector_index is not None or partition_spec:
            raise NotImplementedError("not modelled by the double")
        validate_ibis_support_schema(columns)
        key = (self.bucket.name, self.name, table_name)
        sort = tuple(sorting_key)
        if sort and self.tx.cluster.version < (5, 3):
            raise bad_request("sorted tables need VAST 5.3+")
        if set(sort) - set(columns.names):
            raise ValueError(f"sorting key {sort} names unknown columns")

        def create(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            if key in state.tables:
                raise conflict(f"table {table_name} created concurrently")
            state.tables[key] = TableData(columns, sort)
            owned.add(key)

        self.tx.cluster.count("ddl")
        self.tx.apply(create)
        return self.table(table_name)  # type: ignore[return-value]

    def table(self, name: str, fail_if_missing: bool = True) -> FakeTable | None:
        self.tx.cluster.count("list_tables")
        key = (self.bucket.name, self.name, name)
        data = self.tx.view.tables.get(key)
        if data is None:
            if fail_if_missing:
                raise errors.MissingTable(self.bucket.name, self.name, name)
            return None
        self.tx.cluster.count("load_table", 3)  # columns, stats, sorted columns
        metadata = TableMetadata(
            TableRef(*key),
            arrow_schema=data.schema,
            table_type=TableType.Elysium if data.sorted else TableType.Regular,
        )
        return FakeTable(self.tx, metadata.ref, metadata)

    def tables(self, table_name: str = "", page_size: int = 1000) -> list[FakeTable]:
        if table_name:
            found = self.table(table_name, fail_if_missing=False)
            return [] if found is None else [found]
        return [self.table(n) for n in self.tablenames()]  # type: ignore[misc]

    def tablenames(self, page_size: int = 1000) -> list[str]:
        return sorted(
            t for b, s, t in self.tx.view.tables if (b, s) == (self.bucket.name, self.name)
        )

    def drop(self) -> None:
        key = (self.bucket.name, self.name)
        if self.tablenames() or any(
            b == key[0] and p.startswith(f"{key[1]}/") for b, p in self.tx.view.schemas
        ):
            raise conflict(f"schema {self.name} is not empty")

        def drop(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            state.schemas.discard(key)

        self.tx.apply(drop)


# --- tables -------------------------------------------------------------------------------------


class FakeProjection:
    def __init__(self, name: str, sorted_columns: list[str], unsorted_columns: list[str]) -> None:
        self.name = name
        self.sorted_columns = sorted_columns
        self.unsorted_columns = unsorted_columns


class FakeTable:
    """Both `Table` (from `schema.table()`) and `TableInTransaction` (from metadata)."""

    def __init__(self, tx: FakeTransaction, ref: TableRef, metadata: TableMetadata) -> None:
        self._tx = tx
        self._ref = ref
        self._metadata = metadata
        self._key: TableKey = (ref.bucket, ref.schema, ref.table)

    @property
    def ref(self) -> TableRef:
        return self._ref

    @property
    def name(self) -> str:
        return str(self._ref.table)

    @property
    def arrow_schema(self) -> pa.Schema:
        return self._metadata.arrow_schema

    @property
    def sorted_table(self) -> bool:
        return self._data().sorted

    def __getitem__(self, col_name: str) -> Any:
        return self._metadata.ibis_table[col_name]

    def _data(self) -> TableData:
        data = self._tx.view.tables.get(self._key)
        if data is None:
            raise http_error(errors.NotFound, 404, "NoSuchTable", "/".join(self._key))
        return data

    # --- queries -------------------------------------------------------------------------------

    def select(
        self,
        columns: list[str] | None = None,
        predicate: Any = None,
        config: QueryConfig | None = None,
        *,
        internal_row_id: bool = False,
        limit_rows: int | None = None,
    ) -> pa.RecordBatchReader:
        tx = self._tx
        tx.active_txid  # noqa: B018
        if limit_rows is not None and limit_rows < 0:
            raise ValueError("limit_rows must be a non-negative integer or None")
        cluster = tx.cluster
        config = config or QueryConfig()
        if config.data_endpoints is None:
            cluster.count("stats")  # the SDK loads stats to discover the cluster's VIPs
        elif config.num_splits is None:
            cluster.count("stats")  # ... or to estimate the number of splits
        data = self._data()
        query_schema = self._metadata.arrow_schema
        missing = set(query_schema.names) - set(data.schema.names)
        if missing:
            raise bad_request(f"columns {sorted(missing)} do not exist")
        select_columns: list[str] = query_schema.names if columns is None else columns
        if internal_row_id:
            query_schema = pa.schema([data.row_id_field, *query_schema])
            select_columns.append(ROW_ID)  # the SDK mutates the caller's list too
        if predicate is True:
            predicate = None
        if isinstance(predicate, ibis.common.deferred.Deferred):
            predicate = predicate.resolve(self._metadata.ibis_table)
        if predicate is False:
            return pa.RecordBatchReader.from_batches(
                _internal.get_response_schema(query_schema, select_columns), []
            )
        # The SDK's own serializer: rejects exactly what the SDK rejects.
        request = _internal.build_query_data_request(
            schema=query_schema, predicate=predicate, field_names=select_columns
        )
        if len(request.serialized) > util.MAX_QUERY_DATA_REQUEST_SIZE:
            raise errors.TooLargeRequest(f"{len(request.serialized)} bytes")
        cluster.count("select")
        cluster.count(f"select {self._ref.table}")
        cluster.fault("select")
        matching = [
            {**row, ROW_ID: row_id}
            for row_id, row in data.rows.items()
            if predicate is None or _matches(predicate.op(), row)
        ]
        cluster.rng.shuffle(matching)
        if limit_rows is not None:
            matching = matching[:limit_rows]  # any n rows, not the first n
        cluster.count("rows_returned", len(matching))
        cluster.count(f"rows_returned {self._ref.table}", len(matching))
        schema = request.response_schema
        if internal_row_id and data.sorted:
            for row in matching:
                row[ROW_ID] = _as_decimal(row[ROW_ID])
        table = pa.Table.from_pylist(
            [{name: row.get(name) for name in schema.names} for row in matching], schema=schema
        )
        return pa.RecordBatchReader.from_batches(schema, self._batches(table))

    def _batches(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
        offset = 0
        while offset < table.num_rows:
            size = self._tx.cluster.rng.randint(1, 7)
            if not self._tx.is_active:
                raise errors.MissingTransaction()  # read after the transaction ended
            yield from table.slice(offset, size).to_batches()
            offset += size

    # --- writes --------------------------------------------------------------------------------

    def insert(self, rows: pa.RecordBatch | pa.Table, by_columns: bool = True) -> pa.ChunkedArray:
        tx = self._tx
        tx.active_txid  # noqa: B018
        data = self._data()
        if isinstance(rows, pa.Table):
            rows = rows.combine_chunks().to_batches()[0] if rows.num_rows else rows
        if rows.num_rows == 0:
            return pa.chunked_array([], type=data.row_id_field.type)
        for f in rows.schema:
            if f.name == ROW_ID or f.name not in data.schema.names:
                raise bad_request(f"column {f.name} does not exist")
            if data.schema.field(f.name).type != f.type:
                raise bad_request(
                    f"column {f.name} is {data.schema.field(f.name).type}, not {f.type}"
                )
        tx.cluster.count("insert")
        tx.cluster.fault("insert")
        values = rows.to_pylist()
        ids = tx.cluster.allocate_row_ids(self._key, len(values))
        key = self._key
        new_rows = dict(zip(ids, values, strict=True))
        tx.inserted |= {(key, i) for i in ids}

        def insert(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            table = _own(state, owned, key)
            table.rows.update(new_rows)
            if cluster is not None:
                for row_id in new_rows:
                    cluster.row_changed_at[(key, row_id)] = seq

        tx.apply(insert)
        ids_array = pa.array(
            [_as_decimal(i) if data.sorted else i for i in ids], data.row_id_field.type
        )
        return pa.chunked_array([ids_array])

    def _row_id_batch(self, rows: Any, columns: list[str]) -> pa.RecordBatch:
        """The request body the SDK builds for update/delete (same types, same errors)."""
        try:
            rows_chunk = rows[ROW_ID]
        except KeyError:
            raise errors.MissingRowIdColumn from None
        fields = [self._data().row_id_field]
        arrays = [_combine(rows_chunk)]
        for col in columns:
            fields.append(rows.field(col))
            arrays.append(_combine(rows[col]))
        batch = pa.record_batch(schema=pa.schema(fields), data=arrays)
        return util.sort_record_batch_if_needed(batch, ROW_ID)

    def _check_row_ids(self, ids: list[Any]) -> list[int]:
        data = self._data()
        plain = [int(i) for i in ids]
        unknown = [i for i in plain if i not in data.rows]
        if unknown:
            raise bad_request(f"row ids {unknown[:5]} do not exist")
        return plain

    def update(self, rows: pa.RecordBatch | pa.Table, columns: list[str] | None = None) -> None:
        tx = self._tx
        tx.active_txid  # noqa: B018
        if columns is None:
            columns = [name for name in rows.schema.names if name != ROW_ID]
        batch = self._row_id_batch(rows, columns)
        data = self._data()
        for name in columns:
            if name not in data.schema.names:
                raise bad_request(f"column {name} does not exist")
            if name in data.sorting_key:
                raise bad_request(f"column {name} is a sorting key column and cannot be updated")
        tx.cluster.count("update")
        tx.cluster.fault("update")
        table = batch.to_pydict()
        ids = self._check_row_ids(table[ROW_ID])
        changes = {
            row_id: {name: table[name][i] for name in columns} for i, row_id in enumerate(ids)
        }
        key = self._key
        tx.touched |= {(key, i) for i in ids}

        def update(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            target = _own(state, owned, key)
            for row_id, change in changes.items():
                target.rows[row_id] = {**target.rows[row_id], **change}
                if cluster is not None:
                    cluster.row_changed_at[(key, row_id)] = seq

        tx.apply(update)

    def delete(self, rows: pa.RecordBatch | pa.Table) -> None:
        tx = self._tx
        tx.active_txid  # noqa: B018
        batch = self._row_id_batch(rows, [])
        tx.cluster.count("delete")
        tx.cluster.fault("delete")
        ids = self._check_row_ids(batch.column(ROW_ID).to_pylist())
        key = self._key
        tx.touched |= {(key, i) for i in ids}

        def delete(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            target = _own(state, owned, key)
            for row_id in ids:
                target.rows.pop(row_id, None)
                if cluster is not None:
                    cluster.row_changed_at[(key, row_id)] = seq

        tx.apply(delete)

    # --- DDL -----------------------------------------------------------------------------------

    def add_column(self, new_column: pa.Schema) -> None:
        validate_ibis_support_schema(new_column)
        present = set(self._data().schema.names)
        clash = [f.name for f in new_column if f.name in present]
        if clash:
            raise bad_request(f"columns {clash} already exist")
        key = self._key

        def add(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            table = _own(state, owned, key)
            if any(f.name in table.schema.names for f in new_column):
                raise conflict("column added concurrently")
            table.schema = pa.schema([*table.schema, *new_column])

        self._tx.cluster.count("ddl")
        self._tx.apply(add)
        self._metadata = TableMetadata(
            self._ref,
            arrow_schema=self._data().schema,
            table_type=TableType.Elysium if self._data().sorted else TableType.Regular,
        )

    def create_projection(
        self, projection_name: str, sorted_columns: list[str], unsorted_columns: list[str]
    ) -> FakeProjection:
        names = set(self._data().schema.names)
        if set(sorted_columns + unsorted_columns) - names:
            raise bad_request("projection names unknown columns")
        if projection_name in self._data().projections:
            raise conflict(f"projection {projection_name} exists")
        key = self._key

        def create(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            _own(state, owned, key).projections[projection_name] = (
                list(sorted_columns),
                list(unsorted_columns),
            )

        self._tx.cluster.count("ddl")
        self._tx.apply(create)
        return FakeProjection(projection_name, sorted_columns, unsorted_columns)

    def projections(
        self, projection_name: str = "", include_stats: bool = True
    ) -> list[FakeProjection]:
        return [
            FakeProjection(name, *columns)
            for name, columns in sorted(self._data().projections.items())
            if not projection_name or name == projection_name
        ]

    def drop(self) -> None:
        key = self._key

        def drop(state: State, owned: set[TableKey], cluster: Any, seq: int) -> None:
            state.tables.pop(key, None)

        self._tx.cluster.count("ddl")
        self._tx.apply(drop)


def _combine(column: Any) -> Any:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _as_decimal(row_id: int) -> decimal.Decimal:
    return decimal.Decimal(row_id)


# --- predicate evaluation (only what the serializer above let through) --------------------------

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ops.Equals: lambda a, b: a == b,
    ops.NotEquals: lambda a, b: a != b,
    ops.Less: lambda a, b: a < b,
    ops.LessEqual: lambda a, b: a <= b,
    ops.Greater: lambda a, b: a > b,
    ops.GreaterEqual: lambda a, b: a >= b,
}


def _matches(op: Any, row: dict[str, Any]) -> bool:
    return all(
        any(_leaf(inner, row) for inner in _internal._flatten_args(group, ops.Or))
        for group in _internal._flatten_args(op, ops.And)
    )


def _leaf(op: Any, row: dict[str, Any]) -> bool:
    """SQL semantics: a comparison with NULL is not true."""
    if isinstance(op, ops.IsNull):
        return row.get(op.args[0].name) is None
    if isinstance(op, ops.Not):
        return row.get(op.args[0].args[0].name) is not None
    value = row.get(op.args[0].name)
    if value is None:
        return False
    if type(op) in _COMPARE:
        return _COMPARE[type(op)](value, op.args[1].value)
    if isinstance(op, ops.InValues):
        return value in {literal.value for literal in op.args[1]}
    if isinstance(op, ops.Between):
        return bool(op.args[1].value <= value <= op.args[2].value)
    if isinstance(op, ops.StartsWith):
        return str(value).startswith(op.args[1].value)
    if isinstance(op, ops.StringContains):
        return op.args[1].value in str(value)
    raise AssertionError(f"the serializer let through an unmodelled predicate {op!r}")


# --- signature drift --------------------------------------------------------------------------


def _pairs() -> list[tuple[Callable[..., Any], Callable[..., Any]]]:
    from vastdb import bucket, schema, table, transaction

    methods = {
        (FakeSession, Session): ["transaction"],
        (FakeTransaction, transaction.Transaction): ["bucket", "table_from_metadata", "__exit__"],
        (FakeBucket, bucket.Bucket): ["create_schema", "schema", "schemas"],
        (FakeSchema, schema.Schema): [
            "create_schema",
            "schema",
            "schemas",
            "create_table",
            "table",
            "tables",
            "tablenames",
            "drop",
        ],
        (FakeTable, table.Table): [
            "select",
            "insert",
            "update",
            "delete",
            "add_column",
            "create_projection",
            "projections",
            "drop",
        ],
    }
    pairs: list[tuple[Callable[..., Any], Callable[..., Any]]] = [
        (FakeVastCluster.connect, Session.__init__)
    ]
    for (fake, real), names in methods.items():
        pairs += [(getattr(fake, n), getattr(real, n)) for n in names]
    return pairs


def signature_differences() -> list[str]:
    """Methods of the double whose parameters differ from the real SDK's."""

    def shape(fn: Callable[..., Any]) -> list[tuple[str, Any, bool]]:
        return [
            (p.name, p.kind, p.default is inspect.Parameter.empty)
            for p in inspect.signature(fn).parameters.values()
            if p.name != "self"
        ]

    return [
        f"{fake.__qualname__}: {shape(fake)} != {real.__qualname__}: {shape(real)}"
        for fake, real in _pairs()
        if shape(fake) != shape(real)
    ]
