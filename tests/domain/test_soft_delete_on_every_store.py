"""Soft delete (docs/ext-soft-delete.md) through the real handlers and applier, on SQLite and
on the VAST adapter's SDK double: hide, restore, a purge chain and the worker's expiry purge
give the same replies, events and read-backs on both."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tams_catalog.handlers import handlers as catalog_handlers
from tams_runtime import deletion
from tams_runtime.applier import CommandApplier
from tams_runtime.settings import S3Settings, SoftDeleteSettings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_segments.deletion import DeletionStep
from tams_segments.registration import ObjectChecker, Registrar
from tams_store import FlowQuery, Store, StoreUnavailable, TagFilter
from tams_store.analytics import FlowFilter

from .test_commands_on_every_store import (
    AUDIO,
    MEDIA,
    MULTI,
    OTHER,
    SOURCE_IDS,
    START,
    VIDEO,
    RequestIds,
    comparable,
    external,
    flow_body,
    request_ids,
    stores,
)

__all__ = ["request_ids", "stores"]

SOFT = SoftDeleteSettings(retention_s=60)


def script() -> list[tuple[str, str, dict[str, Any]]]:
    def segments(flow_id: str, prefix: str, count: int) -> tuple[str, str, dict[str, Any]]:
        return (
            "segments.add",
            flow_id,
            {
                "flow_id": flow_id,
                "single": False,
                "segments": [external(i * 2, i * 2 + 2, f"{prefix}{i}") for i in range(count)],
            },
        )

    return [
        ("flows.put", VIDEO, {"flow": flow_body(VIDEO, tags={"lang": "cy"})}),
        ("flows.put", AUDIO, {"flow": flow_body(AUDIO, "audio")}),
        (
            "flows.put",
            MULTI,
            {"flow": flow_body(MULTI, "multi", flow_collection=[{"id": VIDEO}, {"id": AUDIO}])},
        ),
        ("flows.put", OTHER, {"flow": flow_body(OTHER)}),
        segments(VIDEO, "v", 3),
        segments(OTHER, "o", 5),
        # VIDEO shares its source with OTHER: the source stays. AUDIO's goes with it.
        ("flows.delete", VIDEO, {"flow_id": VIDEO}),  # 3 segments, above the sync limit: 204
        ("flows.delete", AUDIO, {"flow_id": AUDIO}),
        ("flows.put", VIDEO, {"flow": flow_body(VIDEO)}),  # a hidden id: 409
        (
            "segments.add",
            VIDEO,
            {"flow_id": VIDEO, "single": True, "segments": [external(9, 10, "z")]},
        ),
        (deletion.RESTORE_COMMAND, VIDEO, {"flow_id": VIDEO}),  # 200
        (deletion.RESTORE_COMMAND, VIDEO, {"flow_id": VIDEO}),  # not deleted any more: 404
        (deletion.RESTORE_COMMAND, AUDIO, {"flow_id": AUDIO}),  # its source comes back too
        ("flows.delete", OTHER, {"flow_id": OTHER}),
        (deletion.PURGE_COMMAND, OTHER, {"flow_id": OTHER}),  # 5 segments: 202 and a chain
        (deletion.RESTORE_COMMAND, OTHER, {"flow_id": OTHER}),  # purged: 404
        (deletion.PURGE_COMMAND, OTHER, {"flow_id": OTHER}),  # purged: 404
        ("flows.delete", AUDIO, {"flow_id": AUDIO}),
        (deletion.PURGE_COMMAND, AUDIO, {"flow_id": AUDIO}),  # no segments: 204
    ]


async def run_script(store: Store) -> list[Any]:
    backends = StorageBackends.from_settings(
        S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
    )
    handlers = {
        **catalog_handlers(MEDIA, SOFT),
        "segments.add": Registrar(store, ObjectChecker(BackendClients(backends))),
        "deletion.step": DeletionStep(MEDIA),
    }
    applier = CommandApplier(
        store, handlers, is_retryable=lambda exc: isinstance(exc, StoreUnavailable)
    )
    seen: list[Any] = []
    for n, (name, key, payload) in enumerate(script()):
        at = START + timedelta(seconds=n)
        pending = [
            CommandEnvelope(command_id=f"c{n}", name=name, key=key, issued_at=at, payload=payload)
        ]
        while pending:
            outcomes: list[Outcome] = await applier(pending)
            seen += [comparable(o.model_dump(mode="json")) for o in outcomes]
            pending = [
                f.command.model_copy(update={"issued_at": at}) for o in outcomes for f in o.commands
            ]
        seen.append(comparable(await store.read(read_back)))
    return seen


def read_back(tx: Any) -> dict[str, Any]:
    hidden, _ = tx.list_deleted_flows(None, 10)
    return {
        "flows": [f["id"] for f in tx.list_flows(FlowQuery(limit=10)).items],
        "sources": {k: tx.get_source(k) is not None for k in SOURCE_IDS.values()},
        "multi": tx.get_flow(MULTI),
        "deleted": [r.view() for r in hidden],
        "video_segments": [
            s.timerange
            for s in tx.list_segments(
                VIDEO, timerange=None, object_id=None, reverse=False, page=None, limit=10
            ).items
        ],
        "v0_users": tx.object_flows("v0", TagFilter(), None, 10)[0],
        "objects": sorted(tx.get_objects([f"o{i}" for i in range(5)] + ["v0"])),
        "usage": tx.flow_usage(FlowFilter(), None, 10),
        "counts": tx.catalog_counts(),
        "requests": [
            r["status"]
            for r in tx.list_deletion_requests(
                sort_by="created", reverse_order=False, page=None, limit=10
            ).items
        ],
    }


async def test_soft_delete_answers_alike_on_sqlite_and_vast(
    stores: tuple[Store, Store], request_ids: RequestIds
) -> None:
    sqlite, vast = stores
    expected = await run_script(sqlite)
    request_ids.restart()
    got = await run_script(vast)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
    statuses = [o["status"] for o in expected if "status" in o]
    assert statuses.count(409) == 1 and 202 in statuses
    final = expected[-1]
    assert final["deleted"] == []
    assert final["flows"] and OTHER not in final["flows"] and VIDEO in final["flows"]
    assert final["video_segments"] == ["[0:0_2:0)", "[2:0_4:0)", "[4:0_6:0)"]
    assert final["v0_users"] == [VIDEO]
    assert final["objects"] == ["v0"]  # the purged flow's objects were released
    assert final["requests"] == ["done"]
