"""The first n rows by a column, and the first n distinct values, without ORDER BY.

VAST returns matching rows in no order and `limit_rows=n` returns *any* n of them. These
helpers still find the rows with the smallest (or largest) key while reading a bounded
number of rows per select:

* a select asks for at most `cap + 1` rows; if no more than `cap` come back, they are all
  the matching rows and are sorted here;
* otherwise they are an arbitrary subset, and the `want`-th best key among them is no
  better than the `want`-th best overall, so the answer lies at or before it: the next
  select is bounded there (a narrower range each time);
* when many rows share that very key (ties), the rows strictly before it are read (or the
  range narrowed again), and the rest of the answer is any rows with the tied key.

Segment pages use their own window search (`media.find_segments`), sized from the flow's
spacing; these serve the queues and listings whose keys have no known spacing (lease times,
allocation times, queue positions, ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from ibis import _

from tams_store.vast.tables import Predicate, TableHandle, all_of


def _cap(want: int) -> int:
    # Rows per select: enough that each narrowing cuts the range by a large factor (a queue
    # of a million rows takes four or five selects to its first row), few enough to be cheap.
    return max(2 * want + 8, 64)


def first_rows(
    table: TableHandle,
    columns: Sequence[str],
    where: Predicate | None,
    key: str,
    want: int,
    *,
    descending: bool = False,
    row_ids: bool = False,
) -> pa.Table:
    """The `want` matching rows with the smallest `key` (largest if `descending`), sorted by
    it; ties at the edge are broken arbitrarily. `key` must not be NULL in matching rows."""
    names = list(dict.fromkeys([*columns, key]))
    if want <= 0:
        return table.empty(names, row_ids)
    cap = _cap(want)
    column = _[key]
    order = "descending" if descending else "ascending"

    def before(value: Any, inclusive: bool) -> Predicate:
        if descending:
            return column >= value if inclusive else column > value
        return column <= value if inclusive else column < value

    def read(bound: Predicate | None, limit: int) -> pa.Table:
        return table.select(names, all_of(where, bound), row_ids=row_ids, limit_rows=limit)

    bound: tuple[Any, bool] | None = None  # (value, inclusive): the answer lies before it
    while True:
        found = read(None if bound is None else before(*bound), cap + 1)
        if found.num_rows <= cap:
            return found.sort_by([(key, order)]).slice(0, want)
        keys = found.sort_by([(key, order)]).column(key)
        pivot = keys[want - 1].as_py()
        if keys[0].as_py() != pivot and bound != (pivot, True):
            bound = (pivot, True)
            continue
        # A tie: the best `want` rows seen all share the pivot (or narrowing to it no longer
        # helps). Read what lies strictly before it; the rest is any rows at the pivot.
        below = read(before(pivot, False), cap + 1)
        if below.num_rows > cap:
            bound = (pivot, False)
            continue
        below = below.sort_by([(key, order)])
        if below.num_rows >= want:
            return below.slice(0, want)
        tied = read(column == pivot, want - below.num_rows)
        return pa.concat_tables([below, tied.select(below.column_names)])


# At most this many values are excluded by one select (`column != v` terms): the SDK and
# ibis resolve a predicate recursively, and about 975 terms overflowed Python's stack.
MAX_EXCLUSIONS = 256


def first_distinct(
    table: TableHandle,
    column: str,
    where: Predicate | None,
    want: int | None,
    *,
    after: Any = None,
    cap: int = 256,
) -> list[Any]:
    """The `want` smallest distinct values of `column` greater than `after` (all of them if
    `want` is None) among matching rows, sorted: in runs of at most `MAX_EXCLUSIONS`
    values, each run starting after the last value of the one before."""
    values: list[Any] = []
    while want is None or len(values) < want:
        run = MAX_EXCLUSIONS if want is None else min(MAX_EXCLUSIONS, want - len(values))
        found = _first_distinct_run(table, column, where, run, after=after, cap=cap)
        values += found
        if len(found) < run:
            break
        after = found[-1]
    return values


def _first_distinct_run(
    table: TableHandle, column: str, where: Predicate | None, want: int, *, after: Any, cap: int
) -> list[Any]:
    """`first_distinct` for at most `MAX_EXCLUSIONS` values.

    Each select excludes the values already seen (`column != v`, pushed down), so each one
    that comes back full still brings at least one new value; once `want` values are known,
    later selects stop at the `want`-th smallest of them, so the exclusions stay at most
    `want`. A value used by many rows therefore costs one select, not one per row."""
    target = _[column]
    seen: set[Any] = set()
    upper: Any = None
    while True:
        where_now = all_of(
            where,
            None if after is None else target > after,
            None if upper is None else target <= upper,
            *[target != value for value in sorted(seen)],
        )
        found = table.select([column], where_now, limit_rows=cap + 1)
        seen |= {v for v in found.column(column).to_pylist() if v is not None}
        if len(seen) > want:
            upper = sorted(seen)[want - 1]
            seen = {v for v in seen if v <= upper}
        if found.num_rows <= cap:
            return sorted(seen)[:want]
