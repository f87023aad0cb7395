"""Moving a flow to another source deletes the old source when it was its last flow: the
catalog decides that when it applies the move, from what the gateway says the caller may
delete (`deletable_source`), since the source's other flows may go meanwhile."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tams_catalog.handlers import put_flow
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store.sqlite import SqliteStore

STAMP = "2026-01-01T00:00:00.000000Z"
OLD_SOURCE = str(uuid.uuid4())


def flow_doc(flow_id: str, source_id: str) -> dict[str, Any]:
    return {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:data",
        "codec": "text/plain",
        "container": "video/mp2t",
    }


async def put(store: SqliteStore, flow: dict[str, Any], **payload: Any) -> Outcome:
    command = CommandEnvelope(name="flows.put", key=flow["id"], payload={"flow": flow, **payload})
    return await store.write(lambda tx: put_flow(tx, command))


async def source_exists(store: SqliteStore, source_id: str) -> bool:
    return await store.read(lambda tx: tx.get_source(source_id)) is not None


@pytest.mark.parametrize(
    ("deletable", "moved"),
    [
        ({}, True),  # a caller who may delete any source (the field is absent)
        ({"deletable_source": OLD_SOURCE}, True),
        ({"deletable_source": None}, False),
        ({"deletable_source": str(uuid.uuid4())}, False),  # another source than the one left
    ],
)
async def test_the_last_flow_leaves_its_source_only_if_the_caller_may_delete_it(
    store: SqliteStore, deletable: dict[str, Any], moved: bool
) -> None:
    flow_id = str(uuid.uuid4())
    assert (await put(store, flow_doc(flow_id, OLD_SOURCE))).status == 201
    outcome = await put(store, flow_doc(flow_id, str(uuid.uuid4())), **deletable)
    if moved:
        assert outcome.status == 204
        assert not await source_exists(store, OLD_SOURCE)
        return
    assert outcome.status == 403, outcome
    assert f"last flow of source {OLD_SOURCE}" in outcome.body["summary"]
    assert await source_exists(store, OLD_SOURCE)
    flow = await store.read(lambda tx: tx.get_flow(flow_id))
    assert flow is not None and flow["source_id"] == OLD_SOURCE  # nothing was written


async def test_a_source_that_keeps_another_flow_needs_no_delete_permission(
    store: SqliteStore,
) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for flow_id in (first, second):
        assert (await put(store, flow_doc(flow_id, OLD_SOURCE))).status == 201
    outcome = await put(store, flow_doc(first, str(uuid.uuid4())), deletable_source=None)
    assert outcome.status == 204
    assert await source_exists(store, OLD_SOURCE)
    # The other flow is the last now: moving it needs the permission after all.
    outcome = await put(store, flow_doc(second, str(uuid.uuid4())), deletable_source=None)
    assert outcome.status == 403
