"""Probes for what only a real VAST cluster can tell (VASTDB-NOTES §6), marker `vast`.

Skipped unless VAST_ENDPOINT, VAST_ACCESS_KEY, VAST_SECRET_KEY and VAST_BUCKET are set. They
work in their own schema inside this run's schema (dropped at the end). What the adapter
relies on is asserted; what it only assumes is printed (run with `-s`) so the double can be
brought in line: `pytest -m vast -s libs/tams_store`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest
from ibis import _
from vastdb import errors
from vastdb.config import QueryConfig

from tams_store.vast import VastSettings
from tams_store.vast.database import VastStore

from .conftest import CLUSTER_VARIABLES, HAVE_CLUSTER, RunSchema

pytestmark = [
    pytest.mark.vast,
    pytest.mark.skipif(not HAVE_CLUSTER, reason=f"needs {', '.join(CLUSTER_VARIABLES)}"),
]

PROBE = pa.schema([("k", pa.string()), ("n", pa.int64())])


@dataclass
class Probe:
    session: Any
    settings: VastSettings
    config: QueryConfig  # explicit endpoints and splits, as the adapter queries

    def table(self, tx: Any) -> Any:
        schema = tx.bucket(self.settings.bucket)
        for name in self.settings.schema_name.split("/"):
            schema = schema.schema(name)
        return schema.table("probe")

    def select(self, t: Any, where: Any, *, row_ids: bool = False) -> pa.Table:
        return t.select(
            columns=["n"], predicate=where, config=self.config, internal_row_id=row_ids
        ).read_all()

    def values(self, t: Any, key: str) -> list[int]:
        return sorted(self.select(t, _.k == key).column("n").to_pylist())


@pytest.fixture
def probe(vast_run_schema: RunSchema) -> Iterator[Probe]:
    """A session and a fresh probe table (`k`, `n`) in this test's own schema."""
    settings = VastSettings()
    settings.schema_name = vast_run_schema.child()
    store = VastStore(settings)
    session = store._new_session()
    with session.transaction() as tx:
        parent = tx.bucket(settings.bucket)
        for name in settings.schema_name.split("/"):
            parent = parent.create_schema(name, fail_if_exists=False)
        parent.create_table("probe", PROBE)
    print(f"\nVAST version {session.api.vast_version}")
    yield Probe(session, settings, store.queries.lookup())


def test_a_transaction_reads_its_own_writes(probe: Probe) -> None:
    """The adapter's domain code writes then reads back inside one transaction."""
    session = probe.session
    with session.transaction() as tx:
        t = probe.table(tx)
        t.insert(pa.record_batch([["a", "a"], [1, 2]], schema=PROBE))
        assert probe.values(t, "a") == [1, 2]
        found = probe.select(t, _.n == 1, row_ids=True)
        t.update(pa.table({"$row_id": found["$row_id"], "n": pa.array([5], pa.int64())}))
        assert probe.values(t, "a") == [2, 5]
        t.delete(found)
        assert probe.values(t, "a") == [2]
    with session.transaction() as tx:
        assert probe.values(probe.table(tx), "a") == [2]


def test_other_transactions_see_nothing_before_commit(
    probe: Probe,
) -> None:
    session = probe.session
    with session.transaction() as writer:
        probe.table(writer).insert(pa.record_batch([["b"], [1]], schema=PROBE))
        with session.transaction() as reader:
            assert probe.values(probe.table(reader), "b") == []


def test_concurrent_updates_of_one_row_conflict(probe: Probe) -> None:
    """The double raises `Conflict` when a row this transaction updates changed since it
    began, and the counters and deletion leases rely on it (docs/vast.md, "what a real run
    must confirm", 2). If this fails, VAST lets the last writer win: the counters must
    become insert-only deltas and leases conditional updates."""
    session = probe.session
    with session.transaction() as tx:
        probe.table(tx).insert(pa.record_batch([["c"], [1]], schema=PROBE))
    with pytest.raises(errors.Conflict), session.transaction() as first:
        t1 = probe.table(first)
        ids = probe.select(t1, _.k == "c", row_ids=True)
        with session.transaction() as second:
            t2 = probe.table(second)
            t2.update(pa.table({"$row_id": ids["$row_id"], "n": pa.array([2], pa.int64())}))
        t1.update(pa.table({"$row_id": ids["$row_id"], "n": pa.array([3], pa.int64())}))
    with session.transaction() as tx:
        assert probe.values(probe.table(tx), "c") == [2]


def test_added_columns_read_null_for_old_rows(probe: Probe) -> None:
    session = probe.session
    with session.transaction() as tx:
        probe.table(tx).insert(pa.record_batch([["d"], [1]], schema=PROBE))
    with session.transaction() as tx:
        probe.table(tx).add_column(pa.schema([("extra", pa.string())]))
    with session.transaction() as tx:
        rows = (
            probe.table(tx)
            .select(columns=["extra"], predicate=_.k == "d", config=probe.config)
            .read_all()
        )
        assert rows.column("extra").to_pylist() == [None]


def test_round_trip_latencies(probe: Probe) -> None:
    session = probe.session

    def timed(work: Any) -> float:
        start = time.perf_counter()
        work()
        return (time.perf_counter() - start) * 1000

    def empty() -> None:
        with session.transaction():
            pass

    def insert_one() -> None:
        with session.transaction() as tx:
            probe.table(tx).insert(pa.record_batch([["e"], [1]], schema=PROBE))

    figures = {
        "begin+commit": min(timed(empty) for _ in range(5)),
        "begin+lookup+insert+commit": min(timed(insert_one) for _ in range(5)),
    }
    print("VAST round trips (best of 5, ms):", {k: round(v, 1) for k, v in figures.items()})
