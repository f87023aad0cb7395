"""Migration step: soft-deleted flows (docs/ext-soft-delete.md).

A released migration step never changes: correct it with a new step.

A soft-deleted flow's row moves from `flows` to `deleted_flows`, so every existing read of
`flows` (gets, listings, collections, analytics joins) stops seeing it without testing a
flag. Its segments stay in `segments` under its id: they keep its objects referenced (object
garbage collection never takes them) and need no copying, whatever their number.

The analytics triggers of step 7 are replaced so that the counters follow the move exactly:

* a flow row leaving `flows` always leaves its (format, codec) totals, but keeps its own
  figures, runs and buckets when it moves to `deleted_flows` (so a restore is exact);
* a flow row entering `flows` adds its kept figures (zero for a new flow) to the totals;
* a deleted record that goes while no live flow has its id takes its figures with it.
"""

from __future__ import annotations

_LEAVE_GROUP = """UPDATE usage_totals SET flows = flows - 1,
            segments = usage_totals.segments - st.segments,
            duration_ns = usage_totals.duration_ns - st.duration_ns,
            bytes = usage_totals.bytes - st.bytes, unsized = usage_totals.unsized - st.unsized
            FROM (SELECT * FROM flow_stats WHERE flow_id = OLD.id) AS st
            WHERE format = OLD.format AND codec = coalesce(OLD.codec, '');"""

_FORGET_FIGURES = """DELETE FROM flow_stats WHERE flow_id = OLD.id;
        DELETE FROM flow_runs WHERE flow_id = OLD.id;
        DELETE FROM flow_buckets WHERE flow_id = OLD.id;"""

SOFT_DELETE_STEP: list[str] = [
    # `record`: the flow document, who deleted it and when, its covering timerange, the
    # source hidden with it. `state`: the segment-owned columns of its `flows` row.
    """CREATE TABLE deleted_flows (
        id TEXT PRIMARY KEY,
        deleted_ns INTEGER NOT NULL,
        purge_after_ns INTEGER NOT NULL,
        purge_request_id TEXT,
        record TEXT NOT NULL,
        state TEXT NOT NULL
    )""",
    "CREATE INDEX deleted_flows_deleted ON deleted_flows (deleted_ns, id)",
    "CREATE INDEX deleted_flows_due ON deleted_flows (purge_after_ns) "
    "WHERE purge_request_id IS NULL",
    "DROP TRIGGER analytics_flow_removed",
    f"""CREATE TRIGGER analytics_flow_removed AFTER DELETE ON flows BEGIN
        {_LEAVE_GROUP}
        DELETE FROM flow_stats WHERE flow_id = OLD.id
            AND NOT EXISTS (SELECT 1 FROM deleted_flows WHERE id = OLD.id);
        DELETE FROM flow_runs WHERE flow_id = OLD.id
            AND NOT EXISTS (SELECT 1 FROM deleted_flows WHERE id = OLD.id);
        DELETE FROM flow_buckets WHERE flow_id = OLD.id
            AND NOT EXISTS (SELECT 1 FROM deleted_flows WHERE id = OLD.id);
    END""",
    "DROP TRIGGER analytics_flow_added",
    """CREATE TRIGGER analytics_flow_added AFTER INSERT ON flows BEGIN
        INSERT INTO flow_stats (flow_id) VALUES (NEW.id) ON CONFLICT (flow_id) DO NOTHING;
        INSERT INTO usage_totals (format, codec, flows, segments, duration_ns, bytes, unsized)
            SELECT NEW.format, coalesce(NEW.codec, ''), 1, segments, duration_ns, bytes,
                   unsized
            FROM flow_stats WHERE flow_id = NEW.id
            ON CONFLICT (format, codec) DO UPDATE SET flows = flows + 1,
                segments = segments + excluded.segments,
                duration_ns = duration_ns + excluded.duration_ns,
                bytes = bytes + excluded.bytes, unsized = unsized + excluded.unsized;
    END""",
    f"""CREATE TRIGGER analytics_deleted_flow_forgotten AFTER DELETE ON deleted_flows
        WHEN NOT EXISTS (SELECT 1 FROM flows WHERE id = OLD.id) BEGIN
        {_FORGET_FIGURES}
    END""",
]
