"""Migration step: the analytics counters and the triggers that keep them (docs/analytics.md).

A released migration step never changes: correct it with a new step.

Every figure the analytics endpoints report changes in the same transaction as the rows it
counts, so a crash or a rollback cannot make them disagree. Removals, renames and object
changes are kept by triggers, so no code path that deletes segments, flows, sources or
objects (a flow deletion, a timerange deletion, object clean-up) has to remember them.
Segment inserts, the hot path, have one entry point (`media.insert_segments`), which updates
the counters once per batch (`counters.segments_inserted`): a row trigger there tripled the
cost of registering a segment.

* `flow_stats`: per flow, its segments, their total duration and the bytes of their objects.
* `usage_totals`: the same summed per (format, codec), plus the number of flows, so totals
  over all flows or one format are a handful of rows, whatever the store holds.
* `source_totals`: sources per format.
* `storage_totals`: per storage backend (`''`: external objects), registered objects, their
  bytes, and objects allocated but not registered.
* `flow_runs`: the flow's timeline as maximal runs of touching segments, so coverage and
  gaps cost the number of gaps, not the number of segments. Segments never overlap (the
  segments service enforces it), so adding a segment extends, joins or starts runs, and
  removing one shortens or splits the run that holds it.
* `flow_buckets`: a flow's segments per hour of their start, for counts inside a window.

An object's size usually becomes known in the same transaction as its first segment (the
segments service HEADs it first); whichever of the two rows is written first, the triggers
give the segment's flow the object's bytes exactly once.
"""

from __future__ import annotations

from tams_store.analytics import BUCKET_NS

_SIZE = "(SELECT size FROM objects WHERE id = {row}.object_id)"

# `flow_buckets` counts segments per flow and hour (`BUCKET_NS`) of their start.


def _bucket(start: str) -> str:
    """floor(start / BUCKET_NS) in SQL (integer division there truncates towards zero)."""
    return f"(({start} - ((({start} % {BUCKET_NS}) + {BUCKET_NS}) % {BUCKET_NS})) / {BUCKET_NS})"


def _segment_delta(row: str, sign: str) -> str:
    """SET clause adding (`+`) or removing (`-`) one segment's figures."""
    size = _SIZE.format(row=row)
    return (
        f"segments = segments {sign} 1, "
        f"duration_ns = duration_ns {sign} ({row}.seg_end - {row}.seg_start), "
        f"bytes = bytes {sign} coalesce({size}, 0), "
        f"unsized = unsized {sign} ({size} IS NULL)"
    )


def _flow_group(row: str) -> str:
    flow_of_row = f"SELECT format, coalesce(codec, '') FROM flows WHERE id = {row}.flow_id"
    return f"(format, codec) = ({flow_of_row})"


# An object's share of its backend's figures, as an `INSERT ... VALUES` tuple.
def _object_share(row: str) -> str:
    return (
        f"(coalesce({row}.storage_id, ''), {row}.registered, "
        f"CASE WHEN {row}.registered THEN coalesce({row}.size, 0) ELSE 0 END, "
        f"{row}.registered AND {row}.size IS NULL, NOT {row}.registered)"
    )


_ADD_OBJECT = (
    "INSERT INTO storage_totals (storage_id, registered, bytes, unsized, allocated) "
    "VALUES {share} ON CONFLICT (storage_id) DO UPDATE SET "
    "registered = registered + excluded.registered, bytes = bytes + excluded.bytes, "
    "unsized = unsized + excluded.unsized, allocated = allocated + excluded.allocated;"
)

_REMOVE_OBJECT = (
    "UPDATE storage_totals SET registered = registered - {row}.registered, "
    "bytes = bytes - CASE WHEN {row}.registered THEN coalesce({row}.size, 0) ELSE 0 END, "
    "unsized = unsized - ({row}.registered AND {row}.size IS NULL), "
    "allocated = allocated - (NOT {row}.registered) "
    "WHERE storage_id = coalesce({row}.storage_id, '');"
)

# A flow (OLD) leaves its (format, codec) group, taking its figures with it.
_LEAVE_GROUP = """UPDATE usage_totals SET flows = flows - 1,
            segments = usage_totals.segments - st.segments,
            duration_ns = usage_totals.duration_ns - st.duration_ns,
            bytes = usage_totals.bytes - st.bytes, unsized = usage_totals.unsized - st.unsized
            FROM (SELECT * FROM flow_stats WHERE flow_id = OLD.id) AS st
            WHERE format = OLD.format AND codec = coalesce(OLD.codec, '');"""

_USAGE_COLUMNS = """
    segments INTEGER NOT NULL DEFAULT 0,
    duration_ns INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    unsized INTEGER NOT NULL DEFAULT 0"""

ANALYTICS_STEP: list[str] = [
    # Bytes of an object's controlled copy (S3 HEAD at its first registration).
    "ALTER TABLE objects ADD COLUMN size INTEGER",
    "CREATE INDEX flows_format ON flows (format, id)",
    f"""CREATE TABLE flow_stats (
        flow_id TEXT PRIMARY KEY,{_USAGE_COLUMNS}
    ) WITHOUT ROWID""",
    f"""CREATE TABLE usage_totals (
        format TEXT NOT NULL,
        codec TEXT NOT NULL,
        flows INTEGER NOT NULL DEFAULT 0,{_USAGE_COLUMNS},
        PRIMARY KEY (format, codec)
    ) WITHOUT ROWID""",
    """CREATE TABLE source_totals (
        format TEXT PRIMARY KEY,
        sources INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE storage_totals (
        storage_id TEXT PRIMARY KEY,
        registered INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        unsized INTEGER NOT NULL DEFAULT 0,
        allocated INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    """CREATE TABLE flow_runs (
        flow_id TEXT NOT NULL,
        run_start INTEGER NOT NULL,
        run_end INTEGER NOT NULL,
        PRIMARY KEY (flow_id, run_start)
    ) WITHOUT ROWID""",
    # Not unique: while a run is split, its two parts briefly share an end.
    "CREATE INDEX flow_runs_end ON flow_runs (flow_id, run_end)",
    """CREATE TABLE flow_buckets (
        flow_id TEXT NOT NULL,
        bucket INTEGER NOT NULL,
        segments INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (flow_id, bucket)
    ) WITHOUT ROWID""",
    # --- the figures of what is already stored (no object has a known size yet) ---------
    """INSERT INTO flow_stats (flow_id, segments, duration_ns, bytes, unsized)
        SELECT f.id, count(s.seg_start), coalesce(sum(s.seg_end - s.seg_start), 0), 0,
               count(s.seg_start)
        FROM flows f LEFT JOIN segments s ON s.flow_id = f.id GROUP BY f.id""",
    """INSERT INTO usage_totals (format, codec, flows, segments, duration_ns, bytes, unsized)
        SELECT f.format, coalesce(f.codec, ''), count(*), sum(st.segments),
               sum(st.duration_ns), sum(st.bytes), sum(st.unsized)
        FROM flows f JOIN flow_stats st ON st.flow_id = f.id
        GROUP BY f.format, coalesce(f.codec, '')""",
    """INSERT INTO source_totals (format, sources)
        SELECT format, count(*) FROM sources GROUP BY format""",
    """INSERT INTO storage_totals (storage_id, registered, bytes, unsized, allocated)
        SELECT coalesce(storage_id, ''), sum(registered), 0, sum(registered),
               sum(NOT registered)
        FROM objects GROUP BY coalesce(storage_id, '')""",
    f"""INSERT INTO flow_buckets (flow_id, bucket, segments)
        SELECT flow_id, {_bucket("seg_start")}, count(*) FROM segments GROUP BY 1, 2""",
    # Gaps and islands: a segment that does not start where the previous one ended starts
    # a new run; the running count of run starts numbers the runs.
    """INSERT INTO flow_runs (flow_id, run_start, run_end)
        SELECT flow_id, min(seg_start), max(seg_end) FROM (
            SELECT flow_id, seg_start, seg_end,
                   sum(starts_run) OVER (PARTITION BY flow_id ORDER BY seg_start) AS run
            FROM (
                SELECT flow_id, seg_start, seg_end,
                       coalesce(lag(seg_end) OVER (PARTITION BY flow_id ORDER BY seg_start)
                                != seg_start, 1) AS starts_run
                FROM segments
            )
        ) GROUP BY flow_id, run""",
    # --- sources ---------------------------------------------------------------------------
    """CREATE TRIGGER analytics_source_added AFTER INSERT ON sources BEGIN
        INSERT INTO source_totals (format, sources) VALUES (NEW.format, 1)
            ON CONFLICT (format) DO UPDATE SET sources = sources + 1;
    END""",
    """CREATE TRIGGER analytics_source_reformatted AFTER UPDATE OF format ON sources
        WHEN OLD.format IS NOT NEW.format BEGIN
        UPDATE source_totals SET sources = sources - 1 WHERE format = OLD.format;
        INSERT INTO source_totals (format, sources) VALUES (NEW.format, 1)
            ON CONFLICT (format) DO UPDATE SET sources = sources + 1;
    END""",
    """CREATE TRIGGER analytics_source_removed AFTER DELETE ON sources BEGIN
        UPDATE source_totals SET sources = sources - 1 WHERE format = OLD.format;
    END""",
    # --- flows -----------------------------------------------------------------------------
    """CREATE TRIGGER analytics_flow_added AFTER INSERT ON flows BEGIN
        INSERT INTO flow_stats (flow_id) VALUES (NEW.id) ON CONFLICT (flow_id) DO NOTHING;
        INSERT INTO usage_totals (format, codec, flows)
            VALUES (NEW.format, coalesce(NEW.codec, ''), 1)
            ON CONFLICT (format, codec) DO UPDATE SET flows = flows + 1;
    END""",
    # A replace that changes the format or codec moves the flow's figures to its new group.
    f"""CREATE TRIGGER analytics_flow_regrouped AFTER UPDATE OF format, codec ON flows
        WHEN OLD.format IS NOT NEW.format OR OLD.codec IS NOT NEW.codec BEGIN
        {_LEAVE_GROUP}
        INSERT INTO usage_totals (format, codec, flows, segments, duration_ns, bytes, unsized)
            SELECT NEW.format, coalesce(NEW.codec, ''), 1, segments, duration_ns, bytes,
                   unsized
            FROM flow_stats WHERE flow_id = NEW.id
            ON CONFLICT (format, codec) DO UPDATE SET flows = flows + 1,
                segments = segments + excluded.segments,
                duration_ns = duration_ns + excluded.duration_ns,
                bytes = bytes + excluded.bytes, unsized = unsized + excluded.unsized;
    END""",
    f"""CREATE TRIGGER analytics_flow_removed AFTER DELETE ON flows BEGIN
        {_LEAVE_GROUP}
        DELETE FROM flow_stats WHERE flow_id = OLD.id;
        DELETE FROM flow_runs WHERE flow_id = OLD.id;
        DELETE FROM flow_buckets WHERE flow_id = OLD.id;
    END""",
    # --- segments --------------------------------------------------------------------------
    # Nothing to do once the flow itself is gone (its removal dropped its figures and runs):
    # deleting a flow's row before its segments makes a flow deletion cheap.
    f"""CREATE TRIGGER analytics_segment_removed AFTER DELETE ON segments
        WHEN EXISTS (SELECT 1 FROM flow_stats WHERE flow_id = OLD.flow_id) BEGIN
        UPDATE flow_stats SET {_segment_delta("OLD", "-")} WHERE flow_id = OLD.flow_id;
        UPDATE usage_totals SET {_segment_delta("OLD", "-")} WHERE {_flow_group("OLD")};
        UPDATE flow_buckets SET segments = segments - 1
            WHERE flow_id = OLD.flow_id AND bucket = {_bucket("OLD.seg_start")};
        -- the part of the holding run after the segment becomes a run of its own
        INSERT INTO flow_runs (flow_id, run_start, run_end)
            SELECT flow_id, OLD.seg_end, run_end FROM flow_runs
            WHERE flow_id = OLD.flow_id AND run_end > OLD.seg_end
            AND run_start = (SELECT max(run_start) FROM flow_runs
                             WHERE flow_id = OLD.flow_id AND run_start <= OLD.seg_start);
        -- and the holding run ends where the segment started (or goes, if it began there)
        DELETE FROM flow_runs WHERE flow_id = OLD.flow_id AND run_start = OLD.seg_start;
        UPDATE flow_runs SET run_end = OLD.seg_start
            WHERE flow_id = OLD.flow_id AND run_end >= OLD.seg_end
            AND run_start = (SELECT max(run_start) FROM flow_runs
                             WHERE flow_id = OLD.flow_id AND run_start < OLD.seg_start);
    END""",
    # --- objects ---------------------------------------------------------------------------
    f"""CREATE TRIGGER analytics_object_added AFTER INSERT ON objects BEGIN
        {_ADD_OBJECT.format(share=_object_share("NEW"))}
    END""",
    f"""CREATE TRIGGER analytics_object_removed AFTER DELETE ON objects BEGIN
        {_REMOVE_OBJECT.format(row="OLD")}
    END""",
    # A first registration, a size becoming known, a move to another backend.
    f"""CREATE TRIGGER analytics_object_changed
        AFTER UPDATE OF registered, size, storage_id ON objects
        WHEN OLD.registered IS NOT NEW.registered OR OLD.size IS NOT NEW.size
        OR OLD.storage_id IS NOT NEW.storage_id BEGIN
        {_REMOVE_OBJECT.format(row="OLD")}
        {_ADD_OBJECT.format(share=_object_share("NEW"))}
    END""",
    # Segments written before their object's size was known get its bytes now (objects are
    # normally registered before their segments are inserted, so this rarely does anything).
    """CREATE TRIGGER analytics_object_sized AFTER UPDATE OF size ON objects
        WHEN OLD.size IS NOT NEW.size
        AND EXISTS (SELECT 1 FROM segments WHERE object_id = NEW.id) BEGIN
        UPDATE flow_stats SET
            bytes = bytes + refs.n * (coalesce(NEW.size, 0) - coalesce(OLD.size, 0)),
            unsized = unsized + refs.n * ((NEW.size IS NULL) - (OLD.size IS NULL))
            FROM (SELECT flow_id, count(*) AS n FROM segments WHERE object_id = NEW.id
                  GROUP BY flow_id) AS refs
            WHERE flow_stats.flow_id = refs.flow_id;
        UPDATE usage_totals SET
            bytes = bytes + refs.n * (coalesce(NEW.size, 0) - coalesce(OLD.size, 0)),
            unsized = unsized + refs.n * ((NEW.size IS NULL) - (OLD.size IS NULL))
            FROM (SELECT f.format AS format, coalesce(f.codec, '') AS codec, count(*) AS n
                  FROM segments s JOIN flows f ON f.id = s.flow_id
                  WHERE s.object_id = NEW.id GROUP BY 1, 2) AS refs
            WHERE usage_totals.format = refs.format AND usage_totals.codec = refs.codec;
    END""",
]


# --- storage figures by controlled copy (a later step) ---------------------------------------


def _copies(row: str) -> str:
    """The backends an `objects` row counts in, as a subquery of `storage_id`s: those holding
    a controlled copy (`controlled_storage_ids` in its document, once instances were added
    or removed), else its allocation backend; `''` (external) when it has none."""
    copies = f"json_array_length({row}.doc, '$.controlled_storage_ids')"
    return (
        f"SELECT value AS storage_id FROM json_each({row}.doc, '$.controlled_storage_ids') "
        f"UNION ALL SELECT CASE WHEN {copies} IS NULL THEN coalesce({row}.storage_id, '') "
        f"ELSE '' END WHERE coalesce({copies}, 0) = 0"
    )


def _add_copies(row: str) -> str:
    return (
        "INSERT INTO storage_totals (storage_id, registered, bytes, unsized, allocated) "
        f"SELECT storage_id, {row}.registered, "
        f"CASE WHEN {row}.registered THEN coalesce({row}.size, 0) ELSE 0 END, "
        f"{row}.registered AND {row}.size IS NULL, NOT {row}.registered "
        f"FROM ({_copies(row)}) WHERE true "
        "ON CONFLICT (storage_id) DO UPDATE SET "
        "registered = registered + excluded.registered, bytes = bytes + excluded.bytes, "
        "unsized = unsized + excluded.unsized, allocated = allocated + excluded.allocated;"
    )


def _remove_copies(row: str) -> str:
    return (
        f"UPDATE storage_totals SET registered = registered - {row}.registered, "
        f"bytes = bytes - CASE WHEN {row}.registered THEN coalesce({row}.size, 0) ELSE 0 END, "
        f"unsized = unsized - ({row}.registered AND {row}.size IS NULL), "
        f"allocated = allocated - (NOT {row}.registered) "
        f"WHERE storage_id IN ({_copies(row)});"
    )


# A backend's figures count every registered object it holds a controlled copy of, so a copy
# made with `POST /objects/{id}/instances` counts where it lands, and a deleted instance
# leaves its backend (they counted where the object was allocated, whatever happened to it).
# Documents that never had instances (almost all: a live ingest registers new objects all
# the time) keep the cheaper triggers of allocation backends; a substring test tells them.
_PLAIN = "instr(coalesce({row}.doc, ''), 'controlled_storage_ids') = 0"
_SHARE_CHANGED = (
    "(OLD.registered IS NOT NEW.registered OR OLD.size IS NOT NEW.size "
    "OR OLD.storage_id IS NOT NEW.storage_id)"
)
STORAGE_BY_COPIES_STEP: list[str] = [
    "DROP TRIGGER analytics_object_added",
    "DROP TRIGGER analytics_object_removed",
    "DROP TRIGGER analytics_object_changed",
    f"""CREATE TRIGGER analytics_object_added AFTER INSERT ON objects
        WHEN {_PLAIN.format(row="NEW")} BEGIN
        {_ADD_OBJECT.format(share=_object_share("NEW"))}
    END""",
    f"""CREATE TRIGGER analytics_object_copies_added AFTER INSERT ON objects
        WHEN NOT {_PLAIN.format(row="NEW")} BEGIN
        {_add_copies("NEW")}
    END""",
    f"""CREATE TRIGGER analytics_object_removed AFTER DELETE ON objects
        WHEN {_PLAIN.format(row="OLD")} BEGIN
        {_REMOVE_OBJECT.format(row="OLD")}
    END""",
    f"""CREATE TRIGGER analytics_object_copies_removed AFTER DELETE ON objects
        WHEN NOT {_PLAIN.format(row="OLD")} BEGIN
        {_remove_copies("OLD")}
    END""",
    # A first registration, a size becoming known, a move to another backend...
    f"""CREATE TRIGGER analytics_object_changed
        AFTER UPDATE OF registered, size, storage_id, doc ON objects
        WHEN {_PLAIN.format(row="OLD")} AND {_PLAIN.format(row="NEW")} AND {_SHARE_CHANGED}
        BEGIN
        {_REMOVE_OBJECT.format(row="OLD")}
        {_ADD_OBJECT.format(share=_object_share("NEW"))}
    END""",
    # ... and, for objects with instances, their copies added or removed.
    f"""CREATE TRIGGER analytics_object_copies_changed
        AFTER UPDATE OF registered, size, storage_id, doc ON objects
        WHEN NOT ({_PLAIN.format(row="OLD")} AND {_PLAIN.format(row="NEW")})
        AND ({_SHARE_CHANGED} OR json_extract(OLD.doc, '$.controlled_storage_ids')
             IS NOT json_extract(NEW.doc, '$.controlled_storage_ids')) BEGIN
        {_remove_copies("OLD")}
        {_add_copies("NEW")}
    END""",
    # The figures of what is stored, counted again this way.
    "DELETE FROM storage_totals",
    """INSERT INTO storage_totals (storage_id, registered, bytes, unsized, allocated)
        SELECT storage_id, sum(registered),
               sum(CASE WHEN registered THEN coalesce(size, 0) ELSE 0 END),
               sum(registered AND size IS NULL), sum(NOT registered)
        FROM (
            SELECT c.value AS storage_id, o.registered, o.size
            FROM objects AS o, json_each(o.doc, '$.controlled_storage_ids') AS c
            UNION ALL
            SELECT CASE WHEN json_array_length(doc, '$.controlled_storage_ids') IS NULL
                        THEN coalesce(storage_id, '') ELSE '' END, registered, size
            FROM objects WHERE coalesce(json_array_length(doc, '$.controlled_storage_ids'), 0) = 0
        ) GROUP BY storage_id""",
]
