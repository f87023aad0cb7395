"""Flow collections' effects beyond the flow: a flow that goes (deleted or soft-deleted)
leaves the collections that hold it, and a change of collection changes the sources'
derived `source_collection` and `collected_by`, each a `sources/updated`."""

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
        sources = sources_touched(tx, collector, updated)
        tx.put_flow(domain.touch_flow(updated, now))
        changed = tx.get_flow(collector_id)
        assert changed is not None
        context = events.flow_context(tx, changed)
        changes.append(events.flow_event("updated", {"flow": changed}, context, now))
        changes.extend(source_updates(tx, sources, now))
    return changes


def sources_touched(tx: WriteTx, old: Doc, new: Doc) -> dict[str, Doc]:
    """The sources whose derived collections a flow's change from `old` to `new` may change,
    as they are now (before it): its own, old and new (`source_collection`), its members',
    old and new (`collected_by`), and, when it moves to another source, those of the flows
    that collect it (`source_collection`). None when neither its `flow_collection` nor its
    `source_id` changes."""
    old_members = old.get("flow_collection") or []
    new_members = new.get("flow_collection") or []
    moved = old["source_id"] != new["source_id"]
    if old_members == new_members and not moved:
        return {}
    ids = {old["source_id"], new["source_id"]}
    for item in old_members + new_members:
        member = tx.get_flow(item["id"])
        if member is not None:
            ids.add(member["source_id"])
    if moved:
        for collector_id in old.get("collected_by") or []:
            collector = tx.get_flow(collector_id)
            if collector is not None:
                ids.add(collector["source_id"])
    views = {source_id: tx.get_source(source_id) for source_id in sorted(ids)}
    return {source_id: view for source_id, view in views.items() if view is not None}


def source_updates(tx: WriteTx, before: dict[str, Doc], now: datetime) -> list[TamsEvent]:
    """`sources/updated` for each of `before`'s sources whose view has changed since. Its
    `updated` moves too: the collections are part of the source's metadata (source.json),
    and `sort_by=updated` must see the change the event announces. `updated_by` stays: no
    one wrote to the source itself."""
    changes = []
    for source_id, old in before.items():
        new = tx.get_source(source_id)
        if new is not None and new != old:
            tx.put_source(domain.touch_source(new, now))  # the store keeps no derived keys
            new = tx.get_source(source_id)
            assert new is not None
            context = events.source_context(new)
            changes.append(events.source_event("updated", {"source": new}, context, now))
    return changes
