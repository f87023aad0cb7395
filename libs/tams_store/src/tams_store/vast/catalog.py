"""Sources, flows, profiles, tags and collections on VAST.

Same shape as the SQLite adapter: documents as JSON next to the columns listings filter and
sort on; tags one row per value in `source_tags`/`flow_tags`, matched with exact equality
(never a substring of JSON text); collections one row per member in `flow_collections`, so
`collected_by` and the inferred source collections are lookups, not scans of every flow.
Joins are done here, as a few `isin` lookups per page rather than per item.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence

from ibis import _

from tams_schema.models.common import VIDEO_FORMAT
from tams_store.documents import stored_doc, tag_rows, to_ns
from tams_store.port import Doc, FlowQuery, Page, SourceQuery, TagFilter
from tams_store.vast import counters
from tams_store.vast.counters import FLOW_FIGURE_COLUMNS, Figures, group_of
from tams_store.vast.listing import (
    ID_ORDER,
    Ordering,
    date_order,
    label_order,
    newest_per_id,
    page_of,
)
from tams_store.vast.tables import IN_CHUNK, Predicate, Row, Tables, all_of

# --- filters shared by listings ------------------------------------------------------------


class OwnerFilter:
    """Ids a listing must be in (`include`, None: any) and must not be in (`exclude`)."""

    def __init__(self) -> None:
        self.include: set[str] | None = None
        self.exclude: set[str] = set()

    def require(self, ids: Iterable[str]) -> None:
        found = set(ids)
        self.include = found if self.include is None else self.include & found

    def forbid(self, ids: Iterable[str]) -> None:
        self.exclude |= set(ids)

    @property
    def impossible(self) -> bool:
        return self.include is not None and not (self.include - self.exclude)

    def pushdown(self) -> Predicate | None:
        """`id IN (...)` when the allowed set is small enough for one query."""
        if self.include is None or len(self.include) > IN_CHUNK:
            return None
        return _.id.isin(sorted(self.include - self.exclude))

    def admits(self, owner: str) -> bool:
        return (self.include is None or owner in self.include) and owner not in self.exclude

    def narrow(self, other: OwnerFilter) -> None:
        """Keep only what `other` admits too."""
        if other.include is not None:
            self.require(other.include)
        self.forbid(other.exclude)


def apply_tag_filter(
    tables: Tables, tag_table: str, owner: str, tags: TagFilter, into: OwnerFilter
) -> OwnerFilter | None:
    """`tag.{name}=v1,v2` (any value equal to one listed), `tag_exists.{name}` and the
    caller's permissions (`tags.access`). Returns the permissions' part alone (None: no
    restriction), so a listing can ask what else the caller may read (its collectors)
    without reading the tags again."""
    table = tables[tag_table]
    for name, values in tags.values.items():
        owners = (
            {r[owner] for r in table.rows_in([owner], "value", values, _.name == name)}
            if values
            else set()
        )
        into.require(owners)
    for name, present in tags.exists.items():
        owners = {r[owner] for r in table.rows([owner], _.name == name, scan=True)}
        if present:
            into.require(owners)
        else:
            into.forbid(owners)
    access = tags.access
    if access is None:
        return None
    readable = OwnerFilter()
    rows = table.rows([owner, "value"], _.name == access.name, scan=True)
    classified = {r[owner] for r in rows if r["value"] is not None}
    wanted = set(access.classes)
    allowed = {r[owner] for r in rows if r["value"] in wanted}
    if access.unclassified:
        # Anything without a class, or with one of the allowed classes.
        readable.forbid(classified - allowed)
    else:
        readable.require(allowed)
    into.narrow(readable)
    return readable


def _replace_tags(tables: Tables, tag_table: str, owner: str, owner_id: str, doc: Doc) -> None:
    table = tables[tag_table]
    table.delete_where(_[owner] == owner_id)
    table.insert(
        [
            {owner: o, "name": name, "value": value}
            for o, name, value in tag_rows(owner_id, doc.get("tags") or {})
        ]
    )


def _docs_by_id(tables: Tables, table: str, ids: Sequence[str], version: str) -> dict[str, Row]:
    columns = ["id", version, "doc"] + (["segments_updated"] if table == "flows" else [])
    rows = newest_per_id(tables[table].rows_in(columns, "id", ids), version)
    return {r["id"]: r for r in rows}


# --- sources ---------------------------------------------------------------------------------

SOURCE_ORDERS: dict[str, Ordering] = {
    "created": date_order("created_ns"),
    "updated": date_order("updated_ns"),
    "label": label_order(),
}


def _flow_sources(tables: Tables, flow_ids: Collection[str]) -> dict[str, str]:
    rows = tables["flows"].rows_in(["id", "source_id"], "id", list(flow_ids))
    return {r["id"]: r["source_id"] for r in rows}


def _source_views(tables: Tables, docs: list[Doc]) -> list[Doc]:
    """Fill in `source_collection` and `collected_by`, inferred from the flows' collections:
    flow F of source S collects flow G of source T ⇒ S collects T."""
    source_ids = [d["id"] for d in docs]
    own_flows = tables["flows"].rows_in(["id", "source_id", "created_ns"], "source_id", source_ids)
    own_flows = sorted(
        {r["id"]: r for r in own_flows}.values(), key=lambda r: (r["created_ns"], r["id"])
    )
    flow_ids = [r["id"] for r in own_flows]
    links = tables["flow_collections"]
    as_collector = links.rows_in(
        ["collector_id", "member_id", "position", "role"], "collector_id", flow_ids
    )
    as_member = links.rows_in(["collector_id", "member_id"], "member_id", flow_ids)
    sources_of = _flow_sources(
        tables, {r["member_id"] for r in as_collector} | {r["collector_id"] for r in as_member}
    )
    source_of_own = {r["id"]: r["source_id"] for r in own_flows}
    position = {flow_id: i for i, flow_id in enumerate(flow_ids)}

    collections: dict[str, list[Doc]] = {s: [] for s in source_ids}
    seen: dict[str, set[str]] = {s: set() for s in source_ids}
    for link in sorted(as_collector, key=lambda r: (position[r["collector_id"]], r["position"])):
        owner = source_of_own[link["collector_id"]]
        member = sources_of.get(link["member_id"])
        if member is None or member in seen[owner]:
            continue
        seen[owner].add(member)
        item: Doc = {"id": member}
        if link["role"] is not None:
            item["role"] = link["role"]
        collections[owner].append(item)

    collectors: dict[str, set[str]] = {s: set() for s in source_ids}
    for link in as_member:
        collector = sources_of.get(link["collector_id"])
        if collector is not None:
            collectors[source_of_own[link["member_id"]]].add(collector)

    for doc in docs:
        if collections[doc["id"]]:
            doc["source_collection"] = collections[doc["id"]]
        if collectors[doc["id"]]:
            doc["collected_by"] = sorted(collectors[doc["id"]])
    return docs


def get_source(tables: Tables, source_id: str) -> Doc | None:
    found = _docs_by_id(tables, "sources", [source_id], "updated_ns").get(source_id)
    if found is None:
        return None
    return _source_views(tables, [json.loads(found["doc"])])[0]


def put_source(tables: Tables, source: Doc) -> None:
    previous = tables["sources"].upsert(
        "id",
        {
            "id": source["id"],
            "format": source["format"],
            "label": source.get("label"),
            "created_ns": to_ns(source["created"]),
            "updated_ns": to_ns(source.get("updated") or source["created"]),
            "doc": stored_doc(source),
        },
        insert_only={},
        read=("format",),
    )
    # The source counters follow the rows: one inserted, or one reformatted, and any
    # duplicate row the upsert removed.
    if not previous:
        counters.sources_changed(tables, [source["format"]], [])
    else:
        removed = [r["format"] for r in previous[1:]]
        if previous[0]["format"] != source["format"]:
            counters.sources_changed(tables, [source["format"]], [previous[0]["format"]])
        counters.sources_changed(tables, [], removed)
    _replace_tags(tables, "source_tags", "source_id", source["id"], source)


def delete_source(tables: Tables, source_id: str) -> None:
    tables["source_tags"].delete_where(_.source_id == source_id)
    sources = tables["sources"]
    found = sources.select(["format"], _.id == source_id, row_ids=True)
    sources.delete(found)
    counters.sources_changed(tables, [], found["format"].to_pylist())


def _sources_collected_by(
    tables: Tables, collector_sources: Sequence[str] | None, readable: OwnerFilter | None = None
) -> set[str]:
    """Sources with a flow collected by a flow of one of `collector_sources` (any if None;
    then, with `readable`, only by a flow of a source it admits)."""
    links = tables["flow_collections"]
    if collector_sources is None and readable is not None:
        found = links.rows(["collector_id", "member_id"], scan=True)
        sources_of = _flow_sources(
            tables, {r["collector_id"] for r in found} | {r["member_id"] for r in found}
        )
        return {
            sources_of[r["member_id"]]
            for r in found
            if r["member_id"] in sources_of
            and r["collector_id"] in sources_of
            and readable.admits(sources_of[r["collector_id"]])
        }
    if collector_sources is None:
        members = {r["member_id"] for r in links.rows(["member_id"], scan=True)}
    else:
        collector_flows = [
            r["id"] for r in tables["flows"].rows_in(["id"], "source_id", collector_sources)
        ]
        members = {
            r["member_id"] for r in links.rows_in(["member_id"], "collector_id", collector_flows)
        }
    return set(_flow_sources(tables, members).values())


def list_sources(tables: Tables, query: SourceQuery) -> Page:
    owners = OwnerFilter()
    readable = apply_tag_filter(tables, "source_tags", "source_id", query.tags, owners)
    if query.collected_by_ids is not None:
        if query.collected_by_ids:
            owners.require(_sources_collected_by(tables, query.collected_by_ids))
        else:
            # Not collected by any source the caller may read (SourceQuery).
            owners.forbid(_sources_collected_by(tables, None, readable))
    if owners.impossible:
        return Page(items=[], limit=query.limit)
    ordering = SOURCE_ORDERS[query.sort_by]
    after = ordering.decode(query.page) if query.page is not None else None
    where = all_of(
        None if query.label is None else _.label == query.label,
        None if query.format is None else _.format == query.format,
        owners.pushdown(),
        None if after is None else ordering.bound(after, query.reverse_order),
    )
    columns = sorted({*ordering.columns, "updated_ns"})
    rows = [
        r
        for r in newest_per_id(tables["sources"].rows(columns, where, scan=True), "updated_ns")
        if owners.admits(r["id"])
    ]
    chosen, next_key = page_of(rows, ordering, query.reverse_order, query.page, query.limit)
    docs = _docs_by_id(tables, "sources", [r["id"] for r in chosen], "updated_ns")
    items = [json.loads(docs[r["id"]]["doc"]) for r in chosen if r["id"] in docs]
    return Page(items=_source_views(tables, items), limit=query.limit, next_key=next_key)


# --- flows -----------------------------------------------------------------------------------

FLOW_ORDERS: dict[str, Ordering] = {
    "created": date_order("created_ns"),
    "metadata_updated": date_order("metadata_updated_ns"),
    "label": label_order(),
}


def _flow_views(tables: Tables, rows: list[Row]) -> list[Doc]:
    docs = []
    for row in rows:
        doc = json.loads(row["doc"])
        if row["segments_updated"] is not None:
            doc["segments_updated"] = row["segments_updated"]
        docs.append(doc)
    links = tables["flow_collections"].rows_in(
        ["collector_id", "member_id"], "member_id", [d["id"] for d in docs]
    )
    collectors: dict[str, set[str]] = {}
    for link in links:
        collectors.setdefault(link["member_id"], set()).add(link["collector_id"])
    for doc in docs:
        if doc["id"] in collectors:
            doc["collected_by"] = sorted(collectors[doc["id"]])
    return docs


def get_flow(tables: Tables, flow_id: str) -> Doc | None:
    found = _docs_by_id(tables, "flows", [flow_id], "metadata_updated_ns").get(flow_id)
    return None if found is None else _flow_views(tables, [found])[0]


def put_flow(tables: Tables, flow: Doc) -> None:
    forget_flow(tables, flow["id"])
    essence = flow.get("essence_parameters") or {}
    init = essence.get("init_segments")
    previous = tables["flows"].upsert(
        "id",
        {
            "id": flow["id"],
            "source_id": flow["source_id"],
            "format": flow["format"],
            "codec": flow.get("codec"),
            "label": flow.get("label"),
            "profile_id": flow.get("profile_id") or None,
            "status": flow.get("status"),
            "frame_width": essence.get("frame_width"),
            "frame_height": essence.get("frame_height"),
            "init_segments": None if init is None else bool(init),
            "container": flow.get("container"),
            "read_only": bool(flow.get("read_only")),
            "created_ns": to_ns(flow["created"]),
            "metadata_updated_ns": to_ns(flow["metadata_updated"]),
            "doc": stored_doc(flow),
        },
        # Segment-owned columns are written only by the segments service (add_segments).
        insert_only={"max_seg_dur": 0, **Figures().flow_columns()},
        read=("format", "codec", "source_id", *FLOW_FIGURE_COLUMNS),
    )
    _count_flow_rows(tables, previous, group_of(flow))
    _replace_tags(tables, "flow_tags", "flow_id", flow["id"], flow)
    links = tables["flow_collections"]
    members = [m["id"] for m in flow.get("flow_collection") or []]
    # The rows this flow was read to depend on are changed too, so a concurrent deletion of
    # one (the source's last flow deleting the source; a new member deleted or hidden, whose
    # deletion cannot see this uncommitted link) conflicts with this transaction instead of
    # both committing (write skew under snapshot isolation; docs/vast.md, section 7). Only
    # a flow new to its source can race its source's deletion (a deletion sees the others):
    # a replace leaves the source's row alone, so the flows of one source can change at once.
    if not previous or previous[0]["source_id"] != flow["source_id"]:
        _touch(tables, "sources", [flow["source_id"]])
    if members:
        linked = {r["member_id"] for r in links.rows(["member_id"], _.collector_id == flow["id"])}
        _touch(tables, "flows", [m for m in members if m not in linked])
    links.delete_where(_.collector_id == flow["id"])
    links.insert(
        [
            {
                "collector_id": flow["id"],
                "member_id": item["id"],
                "position": position,
                "role": item.get("role"),
            }
            for position, item in enumerate(flow.get("flow_collection") or [])
        ]
    )


def _touch(tables: Tables, table: str, ids: Sequence[str]) -> None:
    """Rewrite these rows as they are (a column that is no sorting key: `format`), so the
    transaction changes them."""
    if not ids:
        return
    handle = tables[table]
    found = handle.select_in(["id", "format"], "id", sorted(set(ids)), row_ids=True)
    handle.update_each(found, found.select(["format"]).to_pylist())


def _count_flow_rows(tables: Tables, previous: list[Row], group: counters.Group) -> None:
    """The usage counters after an upsert of a flow: a new row joins its group; a replace
    that changes the format or codec moves the flow and its figures to the new group; any
    duplicate row the upsert removed leaves its group (the figures are counted once)."""
    if not previous:
        counters.flow_rows_changed(tables, [group], [])
        return
    kept = previous[0]
    counters.flow_rows_changed(tables, [], [group_of(r) for r in previous[1:]])
    if group_of(kept) != group:
        figures = Figures.of_flow(kept)
        counters.flow_rows_changed(tables, [group], [group_of(kept)])
        counters.usage_changed(tables, group_of(kept), -figures)
        counters.usage_changed(tables, group, figures)


def delete_flow(tables: Tables, flow_id: str) -> None:
    """Remove the flow, its tags, collection links and segments, and take it out of the
    `flow_collection` of the flows that collect it."""
    forget_flow(tables, flow_id)
    remove_from_collections(tables, flow_id)
    flows = tables["flows"]
    links = tables["flow_collections"]
    links.delete_where(_.collector_id == flow_id)
    tables["flow_tags"].delete_where(_.flow_id == flow_id)
    # Its segments go in the same transaction: nothing of the flow is left half-deleted.
    tables["segments"].delete_where(_.flow_id == flow_id)
    # Its figures leave the totals with its row (counted once, from the newest row), and
    # its runs, buckets and init references go: no per-segment work.
    columns = ["id", "format", "codec", "metadata_updated_ns", *FLOW_FIGURE_COLUMNS]
    found = flows.select(columns, _.id == flow_id, row_ids=True)
    rows = found.select(columns).to_pylist()
    for newest in newest_per_id(rows, "metadata_updated_ns"):
        counters.usage_changed(tables, group_of(newest), -Figures.of_flow(newest))
    counters.flow_rows_changed(tables, [], [group_of(r) for r in rows])
    counters.flow_forgotten(tables, flow_id)
    flows.delete(found)


def remove_from_collections(tables: Tables, flow_id: str) -> None:
    """Take the flow out of the `flow_collection` of the flows that collect it."""
    flows = tables["flows"]
    links = tables["flow_collections"]
    collector_ids = {
        r["collector_id"] for r in links.rows(["collector_id"], _.member_id == flow_id)
    }
    if collector_ids:
        found = flows.select_in(["id", "doc"], "id", sorted(collector_ids), row_ids=True)
        updated = []
        for row in found.select(["id", "doc"]).to_pylist():
            doc = json.loads(row["doc"])
            doc["flow_collection"] = [
                m for m in doc.get("flow_collection", []) if m["id"] != flow_id
            ]
            updated.append({"doc": json.dumps(doc)})
        flows.update_each(found, updated)
    links.delete_where(_.member_id == flow_id)


def count_flows_of_source(tables: Tables, source_id: str) -> int:
    return len({r["id"] for r in tables["flows"].rows(["id"], _.source_id == source_id)})


def _flow_where(query: FlowQuery) -> list[Predicate | None]:
    where: list[Predicate | None] = [
        None if value is None else _[column] == value
        for column, value in (
            ("source_id", query.source_id),
            ("format", query.format),
            ("codec", query.codec),
            ("label", query.label),
            ("profile_id", query.profile_id),
            ("status", query.status),
            ("frame_width", query.frame_width),
            ("frame_height", query.frame_height),
        )
    ]
    if query.frame_width is not None or query.frame_height is not None:
        # The spec's frame size filters are on video flows (image flows have sizes too).
        where.append(_.format == VIDEO_FORMAT)
    if query.init_segments is True:
        where.append(_.init_segments == True)  # noqa: E712 (an ibis expression, not a test)
    elif query.init_segments is False:
        where.append(_.init_segments.isnull() | (_.init_segments == False))  # noqa: E712
    if query.timerange is not None:
        if query.timerange.is_empty:
            where.append(_.seg_start.isnull())
        else:
            start, end = query.timerange.overlap_bounds()
            where += [_.seg_start < end, _.seg_end > start]
    return where


def list_flows(tables: Tables, query: FlowQuery) -> Page:
    owners = OwnerFilter()
    readable = apply_tag_filter(tables, "flow_tags", "flow_id", query.tags, owners)
    if query.collected_by_ids is not None:
        links = tables["flow_collections"]
        if query.collected_by_ids:
            members = links.rows_in(["member_id"], "collector_id", query.collected_by_ids)
            owners.require(r["member_id"] for r in members)
        elif readable is None:
            owners.forbid(r["member_id"] for r in links.rows(["member_id"], scan=True))
        else:
            # Not collected by any flow the caller may read (FlowQuery).
            found = links.rows(["collector_id", "member_id"], scan=True)
            owners.forbid(r["member_id"] for r in found if readable.admits(r["collector_id"]))
    if owners.impossible:
        return Page(items=[], limit=query.limit)
    ordering = FLOW_ORDERS[query.sort_by]
    after = ordering.decode(query.page) if query.page is not None else None
    where = all_of(
        *_flow_where(query),
        owners.pushdown(),
        None if after is None else ordering.bound(after, query.reverse_order),
    )
    columns = sorted({*ordering.columns, "metadata_updated_ns"})
    rows = [
        r
        for r in newest_per_id(
            tables["flows"].rows(columns, where, scan=True), "metadata_updated_ns"
        )
        if owners.admits(r["id"])
    ]
    chosen, next_key = page_of(rows, ordering, query.reverse_order, query.page, query.limit)
    docs = _docs_by_id(tables, "flows", [r["id"] for r in chosen], "metadata_updated_ns")
    page_rows = [docs[r["id"]] for r in chosen if r["id"] in docs]
    return Page(items=_flow_views(tables, page_rows), limit=query.limit, next_key=next_key)


def flow_extent(tables: Tables, flow_id: str) -> Row | None:
    """The segment-owned columns of a flow (None if there is no such flow), remembered for
    the rest of the transaction until something writes the flow."""
    key = ("extent", flow_id)
    if key not in tables.memo:
        rows = tables["flows"].rows(
            ["id", "metadata_updated_ns", "seg_start", "seg_end", "max_seg_dur", "seg_count"],
            _.id == flow_id,
        )
        chosen = newest_per_id(rows, "metadata_updated_ns")
        tables.memo[key] = chosen[0] if chosen else None
    extent: Row | None = tables.memo[key]
    return extent


def forget_flow(tables: Tables, flow_id: str) -> None:
    tables.memo.pop(("extent", flow_id), None)


# --- profiles --------------------------------------------------------------------------------


def get_profile(tables: Tables, profile_id: str) -> Doc | None:
    found = _docs_by_id(tables, "profiles", [profile_id], "created_ns").get(profile_id)
    return None if found is None else dict(json.loads(found["doc"]))


def put_profile(tables: Tables, profile: Doc) -> None:
    metadata = profile["flow_metadata"]
    tables["profiles"].upsert(
        "id",
        {
            "id": profile["id"],
            "format": metadata["format"],
            "codec": metadata.get("codec"),
            "label": profile.get("label"),
            "created_ns": to_ns(profile["created"]),
            "doc": json.dumps(profile),
        },
        insert_only={},
    )


def list_profiles(
    tables: Tables,
    *,
    format: str | None,
    codec: str | None,
    label: str | None,
    page: str | None,
    limit: int,
) -> Page:
    """Profiles in id order (the spec defines no sort for them)."""
    after = ID_ORDER.decode(page) if page is not None else None
    where = all_of(
        None if format is None else _.format == format,
        None if codec is None else _.codec == codec,
        None if label is None else _.label == label,
        None if after is None else _.id > after[0],
    )
    rows = newest_per_id(
        tables["profiles"].rows(["id", "created_ns"], where, scan=True), "created_ns"
    )
    chosen, next_key = page_of(rows, ID_ORDER, False, page, limit)
    docs = _docs_by_id(tables, "profiles", [r["id"] for r in chosen], "created_ns")
    items = [json.loads(docs[r["id"]]["doc"]) for r in chosen if r["id"] in docs]
    return Page(items=items, limit=limit, next_key=next_key)
