"""Versioned, additive schema migrations for the SQLite store.

`PRAGMA user_version` records how many steps were applied. Steps add tables, columns and
indexes, and fill or correct rows (steps 5, 7, 11, 14 and 15) in ways an older version still reads;
they never drop a table, a column or data (step 14 replaces triggers, which count the same
rows). A released step is never edited, a change is a new step.
"""

from __future__ import annotations

import sqlite3

from tams_store.sqlite.analytics_schema import ANALYTICS_STEP, STORAGE_BY_COPIES_STEP
from tams_store.sqlite.soft_delete_schema import SOFT_DELETE_STEP

MIGRATIONS: list[list[str]] = [
    # 1: command outcomes (idempotency) and service info.
    [
        """CREATE TABLE command_outcomes (
            command_id TEXT PRIMARY KEY,
            outcome TEXT NOT NULL,
            recorded_ns INTEGER NOT NULL
        )""",
        """CREATE TABLE service_info (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            doc TEXT NOT NULL
        )""",
    ],
    # 2: the catalog (sources, flows, profiles) and the segments index used by flows.
    [
        """CREATE TABLE sources (
            id TEXT PRIMARY KEY,
            format TEXT NOT NULL,
            label TEXT,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            doc TEXT NOT NULL
        )""",
        "CREATE INDEX sources_created ON sources (created_ns, id)",
        "CREATE INDEX sources_updated ON sources (updated_ns, id)",
        "CREATE INDEX sources_label ON sources (label IS NULL, label, id)",
        "CREATE INDEX sources_format ON sources (format)",
        """CREATE TABLE source_tags (
            source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT
        )""",
        "CREATE INDEX source_tags_lookup ON source_tags (name, value, source_id)",
        "CREATE INDEX source_tags_owner ON source_tags (source_id)",
        """CREATE TABLE flows (
            id TEXT PRIMARY KEY,
            source_id TEXT NOT NULL,
            format TEXT NOT NULL,
            codec TEXT,
            label TEXT,
            profile_id TEXT,
            status TEXT,
            frame_width INTEGER,
            frame_height INTEGER,
            init_segments INTEGER,
            container TEXT,
            read_only INTEGER NOT NULL DEFAULT 0,
            created_ns INTEGER NOT NULL,
            metadata_updated_ns INTEGER NOT NULL,
            doc TEXT NOT NULL,
            segments_updated TEXT,
            seg_start INTEGER,
            seg_end INTEGER,
            max_seg_dur INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX flows_created ON flows (created_ns, id)",
        "CREATE INDEX flows_updated ON flows (metadata_updated_ns, id)",
        "CREATE INDEX flows_label ON flows (label IS NULL, label, id)",
        "CREATE INDEX flows_source ON flows (source_id)",
        "CREATE INDEX flows_profile ON flows (profile_id)",
        """CREATE TABLE flow_tags (
            flow_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT
        )""",
        "CREATE INDEX flow_tags_lookup ON flow_tags (name, value, flow_id)",
        "CREATE INDEX flow_tags_owner ON flow_tags (flow_id)",
        """CREATE TABLE flow_collections (
            collector_id TEXT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
            member_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            role TEXT,
            PRIMARY KEY (collector_id, member_id)
        )""",
        "CREATE INDEX flow_collections_member ON flow_collections (member_id)",
        """CREATE TABLE profiles (
            id TEXT PRIMARY KEY,
            format TEXT NOT NULL,
            codec TEXT,
            label TEXT,
            created_ns INTEGER NOT NULL,
            doc TEXT NOT NULL
        )""",
        """CREATE TABLE segments (
            flow_id TEXT NOT NULL,
            seg_start INTEGER NOT NULL,
            seg_end INTEGER NOT NULL,
            object_id TEXT NOT NULL,
            timerange TEXT NOT NULL,
            doc TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            PRIMARY KEY (flow_id, seg_start)
        ) WITHOUT ROWID""",
        "CREATE INDEX segments_object ON segments (object_id, flow_id)",
    ],
    # 3: media objects (allocation first; registration, instances and GC build on it).
    [
        """CREATE TABLE objects (
            id TEXT PRIMARY KEY,
            allocated_flow_id TEXT,
            storage_id TEXT,
            content_type TEXT,
            allocated_ns INTEGER NOT NULL,
            registered INTEGER NOT NULL DEFAULT 0,
            first_referenced_by_flow TEXT,
            doc TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX objects_unregistered ON objects (registered, allocated_ns)",
    ],
    # 4: webhook registrations and their delivery queues (the outbox).
    [
        """CREATE TABLE webhooks (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            status TEXT NOT NULL,
            generation INTEGER NOT NULL,
            doc TEXT NOT NULL,
            error TEXT,
            api_key_value TEXT
        )""",
        "CREATE INDEX webhooks_url ON webhooks (url, id)",
        """CREATE TABLE webhook_tags (
            webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value TEXT
        )""",
        "CREATE INDEX webhook_tags_lookup ON webhook_tags (name, value, webhook_id)",
        "CREATE INDEX webhook_tags_owner ON webhook_tags (webhook_id)",
        # One row per queued event: its payload (while any queue holds it) and how many
        # queues still hold it; the row outlives its deliveries to deduplicate redeliveries.
        """CREATE TABLE webhook_events (
            event_id TEXT PRIMARY KEY,
            payload TEXT,
            remaining INTEGER NOT NULL,
            queued_ns INTEGER NOT NULL
        )""",
        "CREATE INDEX webhook_events_done ON webhook_events (remaining, queued_ns)",
        """CREATE TABLE webhook_deliveries (
            webhook_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            PRIMARY KEY (webhook_id, seq)
        ) WITHOUT ROWID""",
    ],
    # 5: init objects (which media objects name an object as their init object, for GC and
    # for an init object's referenced_by_flows).
    [
        "ALTER TABLE objects ADD COLUMN init_object_id TEXT",
        "UPDATE objects SET init_object_id = json_extract(doc, '$.init_object_id')",
        "CREATE INDEX objects_init ON objects (init_object_id) WHERE init_object_id IS NOT NULL",
    ],
    # 6: deletion requests and the queue of byte deletions and copies.
    [
        """CREATE TABLE deletion_requests (
            id TEXT PRIMARY KEY,
            flow_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL,
            expiry_ns INTEGER NOT NULL,
            object_id TEXT,
            step INTEGER NOT NULL DEFAULT 0,
            resumes INTEGER NOT NULL DEFAULT 0,
            doc TEXT NOT NULL
        )""",
        "CREATE INDEX deletion_requests_created ON deletion_requests (created_ns, id)",
        "CREATE INDEX deletion_requests_expiry ON deletion_requests (expiry_ns, id)",
        "CREATE INDEX deletion_requests_status ON deletion_requests (status, updated_ns)",
        """CREATE TABLE media_jobs (
            kind TEXT NOT NULL,
            object_id TEXT NOT NULL,
            storage_id TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until_ns INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, object_id, storage_id)
        )""",
        "CREATE INDEX media_jobs_due ON media_jobs (kind, lease_until_ns)",
        "CREATE INDEX media_jobs_object ON media_jobs (object_id)",
    ],
    # 7: analytics counters, kept by triggers in the transaction of every change they count
    # (docs/analytics.md); filled from the existing rows once, here.
    ANALYTICS_STEP,
    # 8: who registered (or last replaced) each webhook: its deliveries are filtered by what
    # that principal may read (fine-grained authorisation).
    [
        "ALTER TABLE webhooks ADD COLUMN owner TEXT",
    ],
    # 9: segment tags (docs/ext-segment-tags.md): a JSON object per segment row, NULL for
    # none, so tags belong to one flow's segment and never to a (reusable) object.
    [
        "ALTER TABLE segments ADD COLUMN tags TEXT",
    ],
    # 10: soft-deleted flows (docs/ext-soft-delete.md): the flow row moves to its own table;
    # its segments and analytics figures stay, hidden, until it is restored or purged.
    SOFT_DELETE_STEP,
    # 11: init objects stored before step 5 were named only in their media objects'
    # documents and never marked registered: the collection of allocations never registered
    # would delete them, bytes and all, though their media objects still need them. They are
    # registered now, in the init role, as registration has done since (first referenced by
    # the first flow of the first media object naming them).
    [
        """UPDATE objects SET registered = 1,
            first_referenced_by_flow = (
                SELECT media.first_referenced_by_flow FROM objects AS media
                WHERE media.init_object_id = objects.id AND media.registered = 1
                ORDER BY media.allocated_ns, media.id LIMIT 1
            ),
            doc = json_set(doc, '$.role', 'init')
        WHERE registered = 0 AND id IN (
            SELECT init_object_id FROM objects
            WHERE init_object_id IS NOT NULL AND registered = 1
        )""",
    ],
    # 12: outcomes found by age without reading them (`forget_outcomes`).
    [
        "CREATE INDEX command_outcomes_recorded ON command_outcomes (recorded_ns)",
    ],
    # 13: a webhook's signing secret (docs/webhooks.md, signed deliveries), sealed as
    # `api_key_value` is.
    [
        "ALTER TABLE webhooks ADD COLUMN signing_secret TEXT",
    ],
    # 14: storage figures count an object in every backend holding a controlled copy of it,
    # not only where it was allocated (docs/analytics.md).
    STORAGE_BY_COPIES_STEP,
    # 15: objects whose last segment went before step 6 (a flow deleted by a release that
    # had no object collection) stayed registered, used by no segment and waiting for
    # nothing: never forgotten, their bytes never deleted, counted in the storage figures
    # for ever. Each gets the `release` job a segment deletion has queued since, due now:
    # the collector forgets it, and its init object, only if nothing uses them by then. An
    # object already waiting out its release grace keeps its job.
    [
        """INSERT INTO media_jobs (kind, object_id, storage_id, created_ns, lease_until_ns)
        SELECT 'release', o.id, '', now.ns, now.ns
        FROM objects AS o,
            (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) * 1000000
                AS ns) AS now
        WHERE o.registered = 1
            AND NOT EXISTS (SELECT 1 FROM segments AS s WHERE s.object_id = o.id)
            AND NOT EXISTS (SELECT 1 FROM objects AS m WHERE m.init_object_id = o.id)
        ON CONFLICT (kind, object_id, storage_id) DO NOTHING""",
    ],
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending steps, each in its own transaction; returns the resulting version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the lock.
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current >= number:
                conn.execute("COMMIT")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        except BaseException:
            if conn.in_transaction:  # not after a full disk, which rolled it back already
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
