"""Deletion requests and the queue of work on object bytes, on VAST.

Deletion requests are few and short-lived (purged a day after they finish): the TAMS
document as JSON next to the columns their listing sorts on, listed like flows (key columns
of the matching rows, sorted here, then the page's documents).

The media job queue has one row per (kind, object, backend), sorted on the object (lookups by
object), with a projection on (kind, lease_until_ns) for claims. A claim takes the jobs with
the oldest lease (`ordered.first_rows`: bounded selects, no ORDER BY needed) and moves their
lease forward by updating those rows in the claiming transaction: two instances claiming the
same rows at once touch the same rows, and the second commit conflicts and is retried (it
then sees them leased). That VAST detects this conflict is one of the behaviours to confirm
on a real cluster (docs/vast.md §7).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from ibis import _

from tams_store.documents import to_ns
from tams_store.port import (
    DeletionRequestRecord,
    DeletionRequestSort,
    MediaJob,
    MediaJobKind,
    Page,
)
from tams_store.vast.listing import Ordering, date_order, newest_per_id, page_of
from tams_store.vast.ordered import first_rows
from tams_store.vast.tables import Row, Tables, all_of, take

# --- deletion requests ---------------------------------------------------------------------

DELETION_ORDERS: dict[str, Ordering] = {
    "created": date_order("created_ns"),
    "expiry": date_order("expiry_ns"),
}
_REQUEST_COLUMNS = ["id", "updated_ns", "doc", "object_id", "step", "resumes"]
UNFINISHED = ["created", "started"]
FINISHED = ["done", "error"]


def _request(row: Row) -> DeletionRequestRecord:
    return DeletionRequestRecord(
        doc=json.loads(row["doc"]),
        object_id=row["object_id"],
        step=row["step"] or 0,
        resumes=row["resumes"] or 0,
    )


def get_deletion_request(tables: Tables, request_id: str) -> DeletionRequestRecord | None:
    rows = tables["deletion_requests"].rows(_REQUEST_COLUMNS, _.id == request_id)
    newest = newest_per_id(rows, "updated_ns")
    return _request(newest[0]) if newest else None


def put_deletion_request(tables: Tables, record: DeletionRequestRecord) -> None:
    doc = record.doc
    created = to_ns(doc["created"])
    updated = to_ns(doc.get("updated") or doc["created"])
    expiry = to_ns(doc["expiry"]) if doc.get("expiry") else updated
    tables["deletion_requests"].upsert(
        "id",
        {
            "id": record.id,
            "status": record.status,
            "updated_ns": updated,
            "expiry_ns": expiry,
            "step": record.step,
            "resumes": record.resumes,
            "doc": json.dumps(doc),
        },
        # Fixed at creation, as the SQLite adapter keeps them.
        insert_only={
            "flow_id": record.flow_id,
            "created_ns": created,
            "object_id": record.object_id,
        },
    )


def list_deletion_requests(
    tables: Tables,
    sort_by: DeletionRequestSort,
    reverse_order: bool,
    page: str | None,
    limit: int,
) -> Page:
    """Newest `created` (or `expiry`) first, then by id; keyset pages."""
    ordering = DELETION_ORDERS[sort_by]
    after = ordering.decode(page) if page is not None else None
    where = None if after is None else ordering.bound(after, reverse_order)
    columns = sorted({*ordering.columns, "updated_ns"})
    rows = newest_per_id(tables["deletion_requests"].rows(columns, where, scan=True), "updated_ns")
    chosen, next_key = page_of(rows, ordering, reverse_order, page, limit)
    found = tables["deletion_requests"].rows_in(
        ["id", "updated_ns", "doc"], "id", [r["id"] for r in chosen]
    )
    docs = {r["id"]: r for r in newest_per_id(found, "updated_ns")}
    items = [json.loads(docs[r["id"]]["doc"]) for r in chosen if r["id"] in docs]
    return Page(items=items, limit=limit, next_key=next_key)


def unfinished_deletion_requests(
    tables: Tables, updated_before_ns: int, limit: int
) -> list[DeletionRequestRecord]:
    """Requests still `created` or `started` not updated since this time, oldest first."""
    oldest = first_rows(
        tables["deletion_requests"],
        _REQUEST_COLUMNS,
        all_of(_.status.isin(UNFINISHED), _.updated_ns < updated_before_ns),
        "updated_ns",
        limit,
    )
    rows = newest_per_id(oldest.to_pylist(), "updated_ns")
    return [_request(r) for r in sorted(rows, key=lambda r: (r["updated_ns"], r["id"]))]


def purge_deletion_requests(tables: Tables, expired_before_ns: int) -> int:
    """Delete finished requests whose expiry has passed; returns how many."""
    table = tables["deletion_requests"]
    found = table.select(
        ["id"],
        all_of(_.status.isin(FINISHED), _.expiry_ns < expired_before_ns),
        row_ids=True,
        scan=True,
    )
    table.delete(found)
    return len(set(found["id"].to_pylist()))


# --- media jobs -----------------------------------------------------------------------------

_JOB_COLUMNS = [
    "kind",
    "object_id",
    "storage_id",
    "created_ns",
    "attempts",
    "lease_owner",
    "lease_until_ns",
]
JobKey = tuple[str, str, str]


def _key(job: MediaJob | Row) -> JobKey:
    if isinstance(job, MediaJob):
        return (job.kind, job.object_id, job.storage_id)
    return (job["kind"], job["object_id"], job["storage_id"])


def _job(row: Row) -> MediaJob:
    return MediaJob(
        kind=row["kind"],
        object_id=row["object_id"],
        storage_id=row["storage_id"],
        created_ns=row["created_ns"],
        attempts=row["attempts"] or 0,
        lease_owner=row["lease_owner"],
        lease_until_ns=row["lease_until_ns"] or 0,
    )


def queue_media_jobs(tables: Tables, jobs: Sequence[MediaJob]) -> None:
    """Queue jobs not queued yet (a job already queued is kept as it is)."""
    if not jobs:
        return
    table = tables["media_jobs"]
    queued = {
        _key(r)
        for r in table.rows_in(
            ["kind", "object_id", "storage_id"], "object_id", [j.object_id for j in jobs]
        )
    }
    new = {_key(j): j for j in jobs if _key(j) not in queued}
    table.insert(
        [
            {
                "kind": j.kind,
                "object_id": j.object_id,
                "storage_id": j.storage_id,
                "created_ns": j.created_ns,
                "attempts": 0,
                # Not claimable before then (a sweep); 0: at once.
                "lease_until_ns": j.lease_until_ns,
            }
            for j in new.values()
        ]
    )


def media_jobs_of(tables: Tables, object_ids: Sequence[str]) -> list[MediaJob]:
    rows = tables["media_jobs"].rows_in(_JOB_COLUMNS, "object_id", object_ids)
    # A duplicate row of one job (two racing queueings) counts once: the most attempted.
    jobs: dict[JobKey, MediaJob] = {}
    for row in rows:
        job = _job(row)
        current = jobs.get(_key(job))
        if current is None or job.attempts > current.attempts:
            jobs[_key(job)] = job
    return [jobs[k] for k in sorted(jobs, key=lambda k: (k[1], k[0], k[2]))]


def claim_media_jobs(
    tables: Tables, kind: MediaJobKind, owner: str, now_ns: int, lease_ns: int, limit: int
) -> list[MediaJob]:
    """Lease up to `limit` jobs of this kind nobody holds (or whose lease expired), oldest
    lease first, to `owner` until `now_ns + lease_ns`, counting the attempt."""
    table = tables["media_jobs"]
    due = first_rows(
        table,
        _JOB_COLUMNS,
        all_of(_.kind == kind, _.lease_until_ns <= now_ns),
        "lease_until_ns",
        limit,
        row_ids=True,
    )
    rows = due.select(_JOB_COLUMNS).to_pylist()
    until = now_ns + lease_ns
    table.update_each(
        due,
        [
            {"lease_owner": owner, "lease_until_ns": until, "attempts": (r["attempts"] or 0) + 1}
            for r in rows
        ],
    )
    claimed: dict[JobKey, MediaJob] = {}
    for row in rows:
        job = _job(row)
        claimed.setdefault(
            _key(job),
            replace(job, attempts=job.attempts + 1, lease_owner=owner, lease_until_ns=until),
        )
    return list(claimed.values())


def renew_media_jobs(tables: Tables, jobs: Sequence[MediaJob], owner: str, until_ns: int) -> int:
    """Extend the lease of these jobs' rows that `owner` holds (duplicate rows of a job
    too); returns how many jobs."""
    if not jobs:
        return 0
    wanted = {_key(j) for j in jobs}
    table = tables["media_jobs"]
    columns = ["kind", "object_id", "storage_id"]
    found = table.select_in(
        columns, "object_id", [j.object_id for j in jobs], _.lease_owner == owner, row_ids=True
    )
    keys = [_key(r) for r in found.select(columns).to_pylist()]
    mine = take(found, [i for i, key in enumerate(keys) if key in wanted])
    table.update_each(mine, [{"lease_until_ns": until_ns}] * mine.num_rows)
    return len({key for key in keys if key in wanted})


def finish_media_jobs(tables: Tables, jobs: Sequence[MediaJob]) -> None:
    """Drop done jobs (and any duplicate rows of them)."""
    if not jobs:
        return
    done = {_key(j) for j in jobs}
    table = tables["media_jobs"]
    columns = ["kind", "object_id", "storage_id"]
    found = table.select_in(columns, "object_id", [j.object_id for j in jobs], row_ids=True)
    keys = [_key(r) for r in found.select(columns).to_pylist()]
    table.delete(take(found, [i for i, key in enumerate(keys) if key in done]))
