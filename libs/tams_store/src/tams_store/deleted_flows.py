"""The stored form of a soft-deleted flow, the same in every adapter.

A `deleted_flows` row keeps its key columns (`id`, `deleted_ns`, `purge_after_ns`,
`purge_request_id`) for queries, and the rest of the `DeletedFlowRecord` as one JSON
document, `record`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tams_store.port import DeletedFlowRecord, Doc


class DeletedFlowRow(Protocol):
    def __getitem__(self, column: str) -> Any: ...


def record_json(record: DeletedFlowRecord) -> str:
    """The `record` column of a deleted flow."""
    data: Doc = {
        "flow": record.flow,
        "deleted": record.deleted,
        "purge_after": record.purge_after,
        "timerange": record.timerange,
    }
    if record.deleted_by is not None:
        data["deleted_by"] = record.deleted_by
    if record.source is not None:
        data["source"] = record.source
    return json.dumps(data)


def record_of(row: DeletedFlowRow) -> DeletedFlowRecord:
    """A deleted flow from its row (key columns and `record`)."""
    data = json.loads(row["record"])
    return DeletedFlowRecord(
        flow=data["flow"],
        deleted=data["deleted"],
        deleted_ns=row["deleted_ns"],
        purge_after=data["purge_after"],
        purge_after_ns=row["purge_after_ns"],
        deleted_by=data.get("deleted_by"),
        timerange=data.get("timerange", "()"),
        source=data.get("source"),
        purge_request_id=row["purge_request_id"],
    )
