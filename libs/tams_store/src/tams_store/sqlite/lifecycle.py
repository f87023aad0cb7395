"""Deletion requests and the queue of work on object bytes, in SQLite.

Deletion requests are few and short-lived: a table with the TAMS document as JSON plus the
columns their listing sorts on and the resumer filters on. The media job queue has one row
per (kind, object, backend); a worker leases rows by moving `lease_until_ns` forward, which
in one `BEGIN IMMEDIATE` transaction is atomic against every other process.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from tams_store.documents import to_ns
from tams_store.port import (
    DeletionRequestRecord,
    DeletionRequestSort,
    MediaJob,
    MediaJobKind,
    Page,
)
from tams_store.sqlite.catalog import SortSpec, _page

# --- deletion requests -----------------------------------------------------------------

DELETION_SORTS = {
    "created": SortSpec(("deletion_requests.created_ns", "deletion_requests.id"), (int, str), True),
    "expiry": SortSpec(("deletion_requests.expiry_ns", "deletion_requests.id"), (int, str), True),
}


def _deletion_record(row: sqlite3.Row) -> DeletionRequestRecord:
    return DeletionRequestRecord(
        doc=json.loads(row["doc"]),
        object_id=row["object_id"],
        step=row["step"],
        resumes=row["resumes"],
    )


_DELETION_COLUMNS = "doc, object_id, step, resumes"


def get_deletion_request(conn: sqlite3.Connection, request_id: str) -> DeletionRequestRecord | None:
    row = conn.execute(
        f"SELECT {_DELETION_COLUMNS} FROM deletion_requests WHERE id = ?", (request_id,)
    ).fetchone()
    return None if row is None else _deletion_record(row)


def put_deletion_request(conn: sqlite3.Connection, record: DeletionRequestRecord) -> None:
    doc = record.doc
    created = to_ns(doc["created"])
    updated = to_ns(doc.get("updated") or doc["created"])
    expiry = to_ns(doc["expiry"]) if doc.get("expiry") else updated
    conn.execute(
        "INSERT INTO deletion_requests (id, flow_id, status, created_ns, updated_ns, expiry_ns, "
        "object_id, step, resumes, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
        "updated_ns = excluded.updated_ns, expiry_ns = excluded.expiry_ns, "
        "step = excluded.step, resumes = excluded.resumes, doc = excluded.doc",
        (
            record.id,
            record.flow_id,
            record.status,
            created,
            updated,
            expiry,
            record.object_id,
            record.step,
            record.resumes,
            json.dumps(doc),
        ),
    )


def list_deletion_requests(
    conn: sqlite3.Connection,
    sort_by: DeletionRequestSort,
    reverse_order: bool,
    page: str | None,
    limit: int,
) -> Page:
    rows, next_key = _page(
        conn, "deletion_requests", [], [], DELETION_SORTS[sort_by], reverse_order, page, limit
    )
    return Page(items=[json.loads(r["doc"]) for r in rows], limit=limit, next_key=next_key)


def unfinished_deletion_requests(
    conn: sqlite3.Connection, updated_before_ns: int, limit: int
) -> list[DeletionRequestRecord]:
    rows = conn.execute(
        f"SELECT {_DELETION_COLUMNS} FROM deletion_requests "
        "WHERE status IN ('created', 'started') AND updated_ns < ? ORDER BY updated_ns LIMIT ?",
        (updated_before_ns, limit),
    )
    return [_deletion_record(r) for r in rows]


def purge_deletion_requests(conn: sqlite3.Connection, expired_before_ns: int) -> int:
    cursor = conn.execute(
        "DELETE FROM deletion_requests WHERE status IN ('done', 'error') AND expiry_ns < ?",
        (expired_before_ns,),
    )
    return cursor.rowcount


# --- media jobs ------------------------------------------------------------------------

_JOB_COLUMNS = "kind, object_id, storage_id, created_ns, attempts, lease_owner, lease_until_ns"


def _job(row: sqlite3.Row) -> MediaJob:
    return MediaJob(
        kind=row["kind"],
        object_id=row["object_id"],
        storage_id=row["storage_id"],
        created_ns=row["created_ns"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_until_ns=row["lease_until_ns"],
    )


def queue_media_jobs(conn: sqlite3.Connection, jobs: list[MediaJob]) -> None:
    conn.executemany(
        "INSERT INTO media_jobs (kind, object_id, storage_id, created_ns, lease_until_ns) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, object_id, storage_id) DO NOTHING",
        [(j.kind, j.object_id, j.storage_id, j.created_ns, j.lease_until_ns) for j in jobs],
    )


def media_jobs_of(conn: sqlite3.Connection, object_ids: list[str]) -> list[MediaJob]:
    found: list[MediaJob] = []
    unique = sorted(set(object_ids))
    for offset in range(0, len(unique), 500):
        chunk = unique[offset : offset + 500]
        rows = conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM media_jobs WHERE object_id IN "
            f"({','.join('?' * len(chunk))}) ORDER BY object_id, kind, storage_id",
            chunk,
        )
        found += [_job(r) for r in rows]
    return found


def renew_media_jobs(
    conn: sqlite3.Connection, jobs: list[MediaJob], owner: str, until_ns: int
) -> int:
    renewed = 0
    for job in jobs:
        renewed += conn.execute(
            "UPDATE media_jobs SET lease_until_ns = ? "
            "WHERE kind = ? AND object_id = ? AND storage_id = ? AND lease_owner = ?",
            (until_ns, job.kind, job.object_id, job.storage_id, owner),
        ).rowcount
    return renewed


def claim_media_jobs(
    conn: sqlite3.Connection,
    kind: MediaJobKind,
    owner: str,
    now_ns: int,
    lease_ns: int,
    limit: int,
) -> list[MediaJob]:
    rows = conn.execute(
        # Ordered by the index alone (ties in insertion order): sorting a long queue by a
        # second key would cost a full sort per claim.
        f"SELECT {_JOB_COLUMNS} FROM media_jobs WHERE kind = ? AND lease_until_ns <= ? "
        "ORDER BY lease_until_ns LIMIT ?",
        (kind, now_ns, limit),
    ).fetchall()
    until = now_ns + lease_ns
    conn.executemany(
        "UPDATE media_jobs SET lease_owner = ?, lease_until_ns = ?, attempts = attempts + 1 "
        "WHERE kind = ? AND object_id = ? AND storage_id = ?",
        [(owner, until, r["kind"], r["object_id"], r["storage_id"]) for r in rows],
    )
    return [
        replace(job, attempts=job.attempts + 1, lease_owner=owner, lease_until_ns=until)
        for job in map(_job, rows)
    ]


def finish_media_jobs(conn: sqlite3.Connection, jobs: list[MediaJob]) -> None:
    conn.executemany(
        "DELETE FROM media_jobs WHERE kind = ? AND object_id = ? AND storage_id = ?",
        [(j.kind, j.object_id, j.storage_id) for j in jobs],
    )
