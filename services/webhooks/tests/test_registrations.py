"""Registration commands on a real SQLite store: the status state machine and key values."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store.port import QueuedEvent
from tams_store.sqlite import SqliteStore
from tams_webhooks.registrations import HANDLERS


async def run(store: SqliteStore, name: str, webhook_id: str, **payload: Any) -> Outcome:
    command = CommandEnvelope(
        name=name, key=webhook_id, payload={"webhook_id": webhook_id, **payload}
    )
    return await store.write(lambda tx: HANDLERS[name](tx, command))


DOC = {"url": "https://a.example/", "events": ["flows/created"], "api_key_name": "X-Key"}


async def created(store: SqliteStore, status: str = "created") -> str:
    webhook_id = str(uuid.uuid4())
    outcome = await run(
        store, "webhooks.create", webhook_id, webhook=DOC, status=status, api_key_value="plain:k"
    )
    assert outcome.status == 201
    assert outcome.body == {"id": webhook_id, **DOC, "status": status}
    return webhook_id


async def set_status(store: SqliteStore, webhook_id: str, status: str) -> None:
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None
    await store.write(
        lambda tx: tx.set_webhook_status(webhook_id, status, None, generation=record.generation)  # type: ignore[arg-type]
    )


async def replace(store: SqliteStore, webhook_id: str, status: str, **changes: Any) -> Outcome:
    return await run(
        store, "webhooks.replace", webhook_id, webhook={**DOC, **changes}, status=status
    )


@pytest.mark.parametrize(
    ("current", "requested", "result"),
    [
        ("created", "disabled", "disabled"),
        ("started", "disabled", "disabled"),
        ("disabled", "created", "created"),
        ("error", "created", "created"),
        ("started", "created", "started"),  # a configuration change only
        ("created", "created", "created"),
        ("disabled", "disabled", "disabled"),
        ("error", "disabled", 400),
    ],
)
async def test_status_state_machine(
    store: SqliteStore, current: str, requested: str, result: str | int
) -> None:
    webhook_id = await created(store)
    await set_status(store, webhook_id, current)
    outcome = await replace(store, webhook_id, requested)
    if isinstance(result, int):
        assert outcome.status == result
        assert "in error" in outcome.body["summary"]
        return
    assert outcome.status == 201
    assert outcome.body["status"] == result
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.status == result and record.generation == 2


@pytest.mark.parametrize(
    ("current", "requested", "emptied"),
    [
        ("started", "disabled", True),
        ("error", "created", True),
        ("disabled", "created", True),
        ("started", "created", False),
    ],
)
async def test_disabling_and_re_enabling_empty_the_queue(
    store: SqliteStore, current: str, requested: str, emptied: bool
) -> None:
    webhook_id = await created(store)
    await set_status(store, webhook_id, current)
    await store.write(
        lambda tx: tx.queue_event(QueuedEvent(str(uuid.uuid4()), {}, {webhook_id: 0}), 1)
    )
    await replace(store, webhook_id, requested)
    queues = await store.read(lambda tx: tx.delivery_queues())
    assert (webhook_id not in queues) is emptied


@pytest.mark.parametrize(
    ("new_owner", "emptied"),
    [
        ({"name": "news", "scopes": ["read"], "groups": ["news"]}, False),
        ({"name": "sport", "scopes": ["read"], "groups": ["sport"]}, True),
        ({"name": "news", "scopes": ["read"], "groups": ["news", "sport"]}, True),
        (None, True),
    ],
)
async def test_a_replacement_by_another_owner_empties_the_queue(
    store: SqliteStore, new_owner: dict[str, Any] | None, emptied: bool
) -> None:
    """Queued events were matched against the owner's permissions; another owner (or the
    same name with other groups or scopes) may not read them."""
    webhook_id = str(uuid.uuid4())
    owner = {"name": "news", "scopes": ["read"], "groups": ["news"]}
    doc = {"url": "https://a.example/", "events": ["flows/created"]}
    await run(store, "webhooks.create", webhook_id, webhook=doc, status="created", owner=owner)
    await set_status(store, webhook_id, "started")
    await store.write(
        lambda tx: tx.queue_event(QueuedEvent(str(uuid.uuid4()), {}, {webhook_id: 0}), 1)
    )
    outcome = await run(
        store, "webhooks.replace", webhook_id, webhook=doc, status="created", owner=new_owner
    )
    assert outcome.status == 201
    queues = await store.read(lambda tx: tx.delivery_queues())
    assert (webhook_id not in queues) is emptied


async def test_key_value_is_kept_only_for_the_same_header_name_and_origin(
    store: SqliteStore,
) -> None:
    webhook_id = await created(store)
    same_origin = "https://a.example/elsewhere?x=1"
    assert (await replace(store, webhook_id, "created", url=same_origin)).status == 201
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.api_key_value == "plain:k"
    for other in ("https://b.example/", "http://a.example/", "https://a.example:8443/"):
        moved = await replace(store, webhook_id, "created", url=other)
        assert moved.status == 400 and "api_key_value" in moved.body["summary"], other
    renamed = await replace(store, webhook_id, "created", api_key_name="X-Other")
    assert renamed.status == 400 and "api_key_value" in renamed.body["summary"]
    # Header names are case-insensitive: the same header keeps its value.
    assert (await replace(store, webhook_id, "created", api_key_name="x-KEY")).status == 201
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.api_key_value == "plain:k"
    unnamed = {k: v for k, v in DOC.items() if k != "api_key_name"}
    outcome = await run(store, "webhooks.replace", webhook_id, webhook=unnamed, status="created")
    assert outcome.status == 201
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.api_key_value is None


async def test_unknown_webhooks_are_404(store: SqliteStore) -> None:
    unknown = str(uuid.uuid4())
    assert (await replace(store, unknown, "created")).status == 404
    assert (await run(store, "webhooks.delete", unknown)).status == 404
    webhook_id = await created(store)
    assert (await run(store, "webhooks.delete", webhook_id)).status == 204
    assert await store.read(lambda tx: tx.get_webhook(webhook_id)) is None
