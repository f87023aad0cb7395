"""Listing order and keyset paging done on the client, as VAST has no ORDER BY.

A listing selects only the narrow key columns of the matching rows (filters pushed down),
sorts them here, cuts the page after the cursor, and then fetches the documents of that page
alone. For date orders the cursor's date is pushed down as a bound too, so later pages scan
fewer rows. Orders follow ADR 0052 as the SQLite adapter does: dates newest first, labels
A→Z with unlabelled items last, ties by id; `reverse_order` flips all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ibis import _

from tams_store import cursor
from tams_store.vast.tables import Predicate, Row

SortKey = tuple[Any, ...]


@dataclass(frozen=True)
class Ordering:
    columns: tuple[str, ...]  # key columns to fetch (the id included)
    key: Callable[[Row], SortKey]
    descending: bool  # the default direction
    types: tuple[type, ...]  # of the cursor's elements
    bound_column: str | None = None  # pushed down from the cursor's first element

    def decode(self, page: str) -> SortKey:
        return tuple(cursor.decode(page, self.types))

    def bound(self, after: SortKey, reverse: bool) -> Predicate | None:
        """A pushed-down superset of "after the cursor" (exactness is restored locally)."""
        if self.bound_column is None:
            return None
        column = _[self.bound_column]
        return column <= after[0] if self.descending != reverse else column >= after[0]


def date_order(column: str) -> Ordering:
    return Ordering(
        columns=(column, "id"),
        key=lambda row: (row[column], row["id"]),
        descending=True,
        types=(int, str),
        bound_column=column,
    )


def label_order() -> Ordering:
    return Ordering(
        columns=("label", "id"),
        key=lambda row: (int(row["label"] is None), row["label"] or "", row["id"]),
        descending=False,
        types=(int, str, str),
    )


ID_ORDER = Ordering(columns=("id",), key=lambda row: (row["id"],), descending=False, types=(str,))


def newest_per_id(rows: Iterable[Row], version: str) -> list[Row]:
    """One row per id: VAST has no unique keys, so two racing inserts of one id can leave two
    rows until the next write heals them; readers take the newest (then the larger doc)."""
    chosen: dict[str, Row] = {}
    for row in rows:
        current = chosen.get(row["id"])
        if current is None or _rank(row, version) > _rank(current, version):
            chosen[row["id"]] = row
    return list(chosen.values())


def _rank(row: Row, version: str) -> tuple[int, str]:
    return (row.get(version) or 0, str(row.get("doc") or ""))


def page_of(
    rows: Iterable[Row], ordering: Ordering, reverse: bool, page: str | None, limit: int
) -> tuple[list[Row], str | None]:
    descending = ordering.descending != reverse
    ordered = sorted(rows, key=ordering.key, reverse=descending)
    if page is not None:
        after = ordering.decode(page)
        ordered = [
            r
            for r in ordered
            if (ordering.key(r) < after if descending else ordering.key(r) > after)
        ]
    chosen = ordered[:limit]
    next_key = None
    if len(ordered) > limit and chosen:
        next_key = cursor.encode(list(ordering.key(chosen[-1])))
    return chosen, next_key
