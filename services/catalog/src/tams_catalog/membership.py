"""A flow that goes (deleted or soft-deleted) leaves the collections that hold it."""

from __future__ import annotations

from datetime import datetime

from tams_catalog import domain
from tams_catalog.domain import Doc
from tams_runtime import events
from tams_schema.envelopes import TamsEvent
from tams_store import WriteTx
from tams_store.documents import COMPUTED_KEYS


def leave_collections(tx: WriteTx, flow: Doc, now: datetime) -> list[TamsEvent]:
    """Take `flow` out of the `flow_collection` of every flow that collects it, each a
    metadata change of that flow (a new `metadata_version`, `flows/updated`). A read-only
    collector changes too: read-only stops clients editing a flow, and a collection never
    names a flow that does not exist."""
    changes = []
    for collector_id in sorted(flow.get("collected_by") or []):
        collector = tx.get_flow(collector_id)
        if collector is None:
            continue
        kept = [m for m in collector.get("flow_collection", []) if m["id"] != flow["id"]]
        updated = {
            k: v for k, v in collector.items() if k not in COMPUTED_KEYS and k != "flow_collection"
        }
        if kept:
            updated["flow_collection"] = kept
        tx.put_flow(domain.touch_flow(updated, now))
        changed = tx.get_flow(collector_id)
        assert changed is not None
        context = events.flow_context(tx, changed)
        changes.append(events.flow_event("updated", {"flow": changed}, context, now))
    return changes
