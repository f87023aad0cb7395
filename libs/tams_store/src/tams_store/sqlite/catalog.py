"""Sources, flows and profiles in SQLite.

Documents are stored as JSON next to the columns that listings filter and sort on. Tags live
in their own tables, one row per value (an array tag has one row per element, an empty array
one row with a NULL value so `tag_exists` still sees it), so `tag.{name}=a,b` is an indexed
lookup and never a substring match. Collections are rows too, so `collected_by` and the
derived source collections are joins, not scans of every flow.

Listings page by keyset: the cursor is the last item's sort key and the next page starts
with an index range scan from it, so page N costs what page 1 costs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tams_schema.models.common import VIDEO_FORMAT
from tams_schema.timerange import TimeRange
from tams_store import cursor, documents
from tams_store.documents import stored_doc as _stored_doc
from tams_store.documents import tag_rows, to_ns
from tams_store.port import AccessFilter, Doc, FlowQuery, Page, SourceQuery, TagFilter
from tams_store.sqlite.overlap import overlap_clause


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


# --- sorting and paging ---------------------------------------------------------------


@dataclass(frozen=True)
class SortSpec:
    """A listing order: key expressions (the last is the id) and the default direction."""

    columns: tuple[str, ...]
    types: tuple[type, ...]  # of the cursor's elements, one per column
    descending: bool

    def decode(self, page: str) -> list[Any]:
        return cursor.decode(page, self.types)

    def order_by(self, reverse: bool) -> str:
        direction = "ASC" if self.descending == reverse else "DESC"
        return ", ".join(f"{c} {direction}" for c in self.columns)

    def after(self, reverse: bool) -> str:
        """The keyset condition: rows strictly after the cursor in this order."""
        op = ">" if self.descending == reverse else "<"
        return f"({', '.join(self.columns)}) {op} ({_placeholders(self.columns)})"

    def select(self) -> str:
        return ", ".join(f"{c} AS k{i}" for i, c in enumerate(self.columns))


# ADR 0052: dates newest first, strings A→Z; items without a label come after the others,
# ordered by id (the `label IS NULL` flag sorts them last); reverse_order flips all of it.
def _date_sort(column: str, table: str) -> SortSpec:
    return SortSpec((f"{table}.{column}", f"{table}.id"), (int, str), descending=True)


def _label_sort(table: str) -> SortSpec:
    return SortSpec(
        (f"({table}.label IS NULL)", f"coalesce({table}.label, '')", f"{table}.id"),
        (int, str, str),
        descending=False,
    )


def _page(
    conn: sqlite3.Connection,
    table: str,
    where: list[str],
    params: list[Any],
    sort: SortSpec,
    reverse: bool,
    page: str | None,
    limit: int,
) -> tuple[list[sqlite3.Row], str | None]:
    clauses, args = list(where), list(params)
    if page is not None:
        clauses.append(sort.after(reverse))
        args.extend(sort.decode(page))
    sql = (
        f"SELECT {_page_columns(table)}, {sort.select()} FROM {table}"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        + f" ORDER BY {sort.order_by(reverse)} LIMIT ?"
    )
    rows = conn.execute(sql, [*args, limit + 1]).fetchall()
    next_key = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_key = cursor.encode([last[f"k{i}"] for i in range(len(sort.columns))])
    return rows, next_key


def _page_columns(table: str) -> str:
    extra = ", flows.segments_updated AS segments_updated" if table == "flows" else ""
    return f"{table}.doc AS doc, {table}.id AS id{extra}"


def _readable(
    access: AccessFilter, table: str, owner: str, tag_table: str
) -> tuple[str, list[Any]]:
    """The caller's permissions (`access`) on the rows of `table` (an alias), as one SQL
    condition and its parameters."""
    clauses, params = tag_clauses(TagFilter(access=access), table, owner, tag_table)
    return " AND ".join(clauses), params


def tag_clauses(
    tags: TagFilter, table: str, owner: str, tag_table: str
) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for name, values in tags.values.items():
        clauses.append(
            f"EXISTS (SELECT 1 FROM {tag_table} t WHERE t.{owner} = {table}.id "
            f"AND t.name = ? AND t.value IN ({_placeholders(values) or 'NULL'}))"
        )
        params.extend([name, *values])
    for name, present in tags.exists.items():
        clauses.append(
            f"{'' if present else 'NOT '}EXISTS (SELECT 1 FROM {tag_table} t "
            f"WHERE t.{owner} = {table}.id AND t.name = ?)"
        )
        params.append(name)
    if tags.access is not None:
        access = tags.access
        allowed: list[str] = []
        if access.classes:
            allowed.append(
                f"EXISTS (SELECT 1 FROM {tag_table} t WHERE t.{owner} = {table}.id "
                f"AND t.name = ? AND t.value IN ({_placeholders(access.classes)}))"
            )
            params.extend([access.name, *access.classes])
        if access.unclassified:
            # No class at all: the tag is absent, or an empty list (its one row is NULL).
            allowed.append(
                f"NOT EXISTS (SELECT 1 FROM {tag_table} t WHERE t.{owner} = {table}.id "
                "AND t.name = ? AND t.value IS NOT NULL)"
            )
            params.append(access.name)
        clauses.append(f"({' OR '.join(allowed)})" if allowed else "0")
    return clauses, params


# --- sources ---------------------------------------------------------------------------

_SOURCE_COLLECTORS = (
    "SELECT DISTINCT f.source_id FROM flows g "
    "JOIN flow_collections c ON c.member_id = g.id "
    "JOIN flows f ON f.id = c.collector_id WHERE g.source_id = {owner}"
)


def source_collected_by(conn: sqlite3.Connection, source_id: str) -> list[str]:
    sql = _SOURCE_COLLECTORS.format(owner="?") + " ORDER BY f.source_id"
    return [row[0] for row in conn.execute(sql, (source_id,))]


def source_collection(conn: sqlite3.Connection, source_id: str) -> list[Doc]:
    """Inferred: flow F of this source collects flow G of source T ⇒ this source collects T."""
    rows = conn.execute(
        "SELECT g.source_id AS member, c.role AS role FROM flows f "
        "JOIN flow_collections c ON c.collector_id = f.id "
        "JOIN flows g ON g.id = c.member_id "
        "WHERE f.source_id = ? ORDER BY f.created_ns, f.id, c.position",
        (source_id,),
    )
    items: list[Doc] = []
    seen: set[str] = set()
    for row in rows:
        if row["member"] in seen:
            continue
        seen.add(row["member"])
        item: Doc = {"id": row["member"]}
        if row["role"] is not None:
            item["role"] = row["role"]
        items.append(item)
    return items


def _source_view(conn: sqlite3.Connection, doc: Doc) -> Doc:
    collection = source_collection(conn, doc["id"])
    if collection:
        doc["source_collection"] = collection
    collectors = source_collected_by(conn, doc["id"])
    if collectors:
        doc["collected_by"] = collectors
    return doc


def get_source(conn: sqlite3.Connection, source_id: str) -> Doc | None:
    row = conn.execute("SELECT doc FROM sources WHERE id = ?", (source_id,)).fetchone()
    return None if row is None else _source_view(conn, documents.loads(row["doc"]))


def source_routing(conn: sqlite3.Connection, source_id: str) -> Doc | None:
    # `json_type` tells a `null` tags value (kept, as `get_source` has it) from an absent one.
    row = conn.execute(
        "SELECT json_extract(doc, '$.tags') AS tags, json_type(doc, '$.tags') AS kind "
        "FROM sources WHERE id = ?",
        (source_id,),
    ).fetchone()
    if row is None:
        return None
    routing: Doc = {}
    if row["kind"] is not None:
        routing["tags"] = None if row["tags"] is None else documents.loads(row["tags"])
    collectors = source_collected_by(conn, source_id)
    if collectors:
        routing["collected_by"] = collectors
    return routing


def put_source(conn: sqlite3.Connection, source: Doc) -> None:
    conn.execute(
        "INSERT INTO sources (id, format, label, created_ns, updated_ns, doc) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET format = excluded.format, "
        "label = excluded.label, created_ns = excluded.created_ns, "
        "updated_ns = excluded.updated_ns, doc = excluded.doc",
        (
            source["id"],
            source["format"],
            source.get("label"),
            to_ns(source["created"]),
            to_ns(source.get("updated") or source["created"]),
            _stored_doc(source),
        ),
    )
    conn.execute("DELETE FROM source_tags WHERE source_id = ?", (source["id"],))
    conn.executemany(
        "INSERT INTO source_tags (source_id, name, value) VALUES (?, ?, ?)",
        tag_rows(source["id"], source.get("tags") or {}),
    )


def delete_source(conn: sqlite3.Connection, source_id: str) -> None:
    conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))


SOURCE_SORTS = {
    "created": _date_sort("created_ns", "sources"),
    "updated": _date_sort("updated_ns", "sources"),
    "label": _label_sort("sources"),
}


def list_sources(conn: sqlite3.Connection, query: SourceQuery) -> Page:
    where: list[str] = []
    params: list[Any] = []
    if query.label is not None:
        where.append("sources.label = ?")
        params.append(query.label)
    if query.format is not None:
        where.append("sources.format = ?")
        params.append(query.format)
    tag_where, tag_params = tag_clauses(query.tags, "sources", "source_id", "source_tags")
    where += tag_where
    params += tag_params
    if query.collected_by_ids is not None:
        collectors = _SOURCE_COLLECTORS.format(owner="sources.id")
        if query.collected_by_ids:
            where.append(
                f"EXISTS ({collectors} AND f.source_id IN "
                f"({_placeholders(query.collected_by_ids)}))"
            )
            params.extend(query.collected_by_ids)
        elif query.tags.access is None:
            where.append(f"NOT EXISTS ({collectors})")
        else:
            # Not collected by any source the caller may read (SourceQuery).
            readable, readable_params = _readable(
                query.tags.access, "cs", "source_id", "source_tags"
            )
            where.append(
                "NOT EXISTS (SELECT 1 FROM flows g "
                "JOIN flow_collections c ON c.member_id = g.id "
                "JOIN flows f ON f.id = c.collector_id JOIN sources cs ON cs.id = f.source_id "
                f"WHERE g.source_id = sources.id AND {readable})"
            )
            params.extend(readable_params)
    rows, next_key = _page(
        conn,
        "sources",
        where,
        params,
        SOURCE_SORTS[query.sort_by],
        query.reverse_order,
        query.page,
        query.limit,
    )
    items = [_source_view(conn, documents.loads(row["doc"])) for row in rows]
    return Page(items=items, limit=query.limit, next_key=next_key)


# --- flows -----------------------------------------------------------------------------


def _collectors_of(conn: sqlite3.Connection, flow_ids: Sequence[str]) -> dict[str, list[str]]:
    if not flow_ids:
        return {}
    rows = conn.execute(
        "SELECT member_id, collector_id FROM flow_collections "
        f"WHERE member_id IN ({_placeholders(flow_ids)}) ORDER BY collector_id",
        list(flow_ids),
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["member_id"], []).append(row["collector_id"])
    return found


def _flow_views(conn: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> list[Doc]:
    docs = []
    for row in rows:
        doc = documents.loads(row["doc"])
        if row["segments_updated"] is not None:
            doc["segments_updated"] = row["segments_updated"]
        docs.append(doc)
    collectors = _collectors_of(conn, [d["id"] for d in docs])
    for doc in docs:
        if doc["id"] in collectors:
            doc["collected_by"] = collectors[doc["id"]]
    return docs


def get_flow(conn: sqlite3.Connection, flow_id: str) -> Doc | None:
    row = conn.execute(
        "SELECT doc, segments_updated FROM flows WHERE id = ?", (flow_id,)
    ).fetchone()
    return None if row is None else _flow_views(conn, [row])[0]


def put_flow(conn: sqlite3.Connection, flow: Doc) -> None:
    essence = flow.get("essence_parameters") or {}
    init = essence.get("init_segments")
    conn.execute(
        "INSERT INTO flows (id, source_id, format, codec, label, profile_id, status, "
        "frame_width, frame_height, init_segments, container, read_only, created_ns, "
        "metadata_updated_ns, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET source_id = excluded.source_id, "
        "format = excluded.format, codec = excluded.codec, label = excluded.label, "
        "profile_id = excluded.profile_id, status = excluded.status, "
        "frame_width = excluded.frame_width, frame_height = excluded.frame_height, "
        "init_segments = excluded.init_segments, container = excluded.container, "
        "read_only = excluded.read_only, created_ns = excluded.created_ns, "
        "metadata_updated_ns = excluded.metadata_updated_ns, doc = excluded.doc",
        (
            flow["id"],
            flow["source_id"],
            flow["format"],
            flow.get("codec"),
            flow.get("label"),
            flow.get("profile_id") or None,
            flow.get("status"),
            essence.get("frame_width"),
            essence.get("frame_height"),
            None if init is None else int(bool(init)),
            flow.get("container"),
            int(bool(flow.get("read_only"))),
            to_ns(flow["created"]),
            to_ns(flow["metadata_updated"]),
            _stored_doc(flow),
        ),
    )
    conn.execute("DELETE FROM flow_tags WHERE flow_id = ?", (flow["id"],))
    conn.executemany(
        "INSERT INTO flow_tags (flow_id, name, value) VALUES (?, ?, ?)",
        tag_rows(flow["id"], flow.get("tags") or {}),
    )
    conn.execute("DELETE FROM flow_collections WHERE collector_id = ?", (flow["id"],))
    conn.executemany(
        "INSERT INTO flow_collections (collector_id, member_id, position, role) "
        "VALUES (?, ?, ?, ?)",
        [
            (flow["id"], item["id"], position, item.get("role"))
            for position, item in enumerate(flow.get("flow_collection") or [])
        ],
    )


def remove_from_collections(conn: sqlite3.Connection, flow_id: str) -> None:
    """Take the flow out of the `flow_collection` of the flows that collect it."""
    for (collector_id,) in conn.execute(
        "SELECT collector_id FROM flow_collections WHERE member_id = ?", (flow_id,)
    ).fetchall():
        row = conn.execute("SELECT doc FROM flows WHERE id = ?", (collector_id,)).fetchone()
        doc = documents.loads(row["doc"])
        doc["flow_collection"] = [m for m in doc.get("flow_collection", []) if m["id"] != flow_id]
        conn.execute("UPDATE flows SET doc = ? WHERE id = ?", (json.dumps(doc), collector_id))
    conn.execute("DELETE FROM flow_collections WHERE member_id = ?", (flow_id,))


def delete_flow(conn: sqlite3.Connection, flow_id: str) -> None:
    """Remove the flow and its segments, and remove it from the `flow_collection` of flows
    that collect it."""
    remove_from_collections(conn, flow_id)
    # Its segments go in the same transaction: nothing of the flow is left half-deleted.
    # The flow row first: its analytics figures then go in one step, not segment by segment.
    conn.execute("DELETE FROM flows WHERE id = ?", (flow_id,))
    conn.execute("DELETE FROM segments WHERE flow_id = ?", (flow_id,))


def count_flows_of_source(conn: sqlite3.Connection, source_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM flows WHERE source_id = ?", (source_id,)).fetchone()
    return int(row[0])


FLOW_SORTS = {
    "created": _date_sort("created_ns", "flows"),
    "metadata_updated": _date_sort("metadata_updated_ns", "flows"),
    "label": _label_sort("flows"),
}


def list_flows(conn: sqlite3.Connection, query: FlowQuery) -> Page:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("source_id", query.source_id),
        ("format", query.format),
        ("codec", query.codec),
        ("label", query.label),
        ("profile_id", query.profile_id),
        ("status", query.status),
        ("frame_width", query.frame_width),
        ("frame_height", query.frame_height),
    ):
        if value is not None:
            where.append(f"flows.{column} = ?")
            params.append(value)
    if query.frame_width is not None or query.frame_height is not None:
        # The spec's frame size filters are on video flows (image flows have sizes too).
        where.append("flows.format = ?")
        params.append(VIDEO_FORMAT)
    if query.init_segments is not None:
        where.append("coalesce(flows.init_segments, 0) = ?")
        params.append(int(query.init_segments))
    tag_where, tag_params = tag_clauses(query.tags, "flows", "flow_id", "flow_tags")
    where += tag_where
    params += tag_params
    if query.collected_by_ids is not None:
        if query.collected_by_ids:
            where.append(
                "EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id "
                f"AND c.collector_id IN ({_placeholders(query.collected_by_ids)}))"
            )
            params.extend(query.collected_by_ids)
        elif query.tags.access is None:
            where.append(
                "NOT EXISTS (SELECT 1 FROM flow_collections c WHERE c.member_id = flows.id)"
            )
        else:
            # Not collected by any flow the caller may read (FlowQuery).
            readable, readable_params = _readable(query.tags.access, "f", "flow_id", "flow_tags")
            where.append(
                "NOT EXISTS (SELECT 1 FROM flow_collections c JOIN flows f "
                f"ON f.id = c.collector_id WHERE c.member_id = flows.id AND {readable})"
            )
            params.extend(readable_params)
    if query.timerange is not None:
        if query.timerange.is_empty:
            where.append("flows.seg_start IS NULL")
        else:
            start, end = query.timerange.overlap_bounds()
            where.append("flows.seg_start < ? AND flows.seg_end > ?")
            params.extend([end, start])
    rows, next_key = _page(
        conn,
        "flows",
        where,
        params,
        FLOW_SORTS[query.sort_by],
        query.reverse_order,
        query.page,
        query.limit,
    )
    return Page(items=_flow_views(conn, rows), limit=query.limit, next_key=next_key)


def flow_timerange(conn: sqlite3.Connection, flow_id: str, within: TimeRange | None) -> TimeRange:
    """Covering range of the first and last segment (overlapping `within`, if given)."""
    if conn.execute("SELECT 1 FROM flows WHERE id = ?", (flow_id,)).fetchone() is None:
        return TimeRange.never()
    bounds = None if within is None else within.half_open()
    if within is not None and bounds is None:
        return TimeRange.never()
    where = "flow_id = ?"
    params: list[Any] = [flow_id]
    if bounds is not None:
        clause, args = overlap_clause(flow_id, *bounds)
        where += f" AND {clause}"
        params += args
    first = conn.execute(
        f"SELECT timerange FROM segments WHERE {where} ORDER BY seg_start ASC LIMIT 1", params
    ).fetchone()
    if first is None:
        return TimeRange.never()
    last = conn.execute(
        f"SELECT timerange FROM segments WHERE {where} ORDER BY seg_start DESC LIMIT 1", params
    ).fetchone()
    return TimeRange.parse(first["timerange"]).covering(TimeRange.parse(last["timerange"]))


# --- profiles --------------------------------------------------------------------------

PROFILE_SORT = SortSpec(("profiles.id",), (str,), descending=False)


def get_profile(conn: sqlite3.Connection, profile_id: str) -> Doc | None:
    row = conn.execute("SELECT doc FROM profiles WHERE id = ?", (profile_id,)).fetchone()
    return None if row is None else dict(documents.loads(row["doc"]))


def put_profile(conn: sqlite3.Connection, profile: Doc) -> None:
    metadata = profile["flow_metadata"]
    conn.execute(
        "INSERT INTO profiles (id, format, codec, label, created_ns, doc) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            profile["id"],
            metadata["format"],
            metadata.get("codec"),
            profile.get("label"),
            to_ns(profile["created"]),
            json.dumps(profile),
        ),
    )


def list_profiles(
    conn: sqlite3.Connection,
    *,
    format: str | None,
    codec: str | None,
    label: str | None,
    page: str | None,
    limit: int,
) -> Page:
    """Profiles in id order (the spec defines no sort for them)."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("format", format), ("codec", codec), ("label", label)):
        if value is not None:
            where.append(f"profiles.{column} = ?")
            params.append(value)
    rows, next_key = _page(conn, "profiles", where, params, PROFILE_SORT, False, page, limit)
    return Page(items=[documents.loads(r["doc"]) for r in rows], limit=limit, next_key=next_key)
