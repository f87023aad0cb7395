"""A registration the gateway sends while an older webhooks service still runs (a rolling
upgrade, or a rollback): a signing secret it cannot keep is refused, not dropped."""

from __future__ import annotations

import json
import uuid

from aiohttp.test_utils import make_mocked_request

from tams_gateway.commands import reply_response
from tams_gateway.webhook_bodies import WebhookBody
from tams_runtime.applier import CommandApplier
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store.sqlite import SqliteStore
from tams_webhooks.registrations import HANDLERS

# The commands of a webhooks service released before signed deliveries.
BEFORE_SIGNING = ("webhooks.create", "webhooks.replace", "webhooks.delete")
DOC = {"url": "https://a.example/", "events": ["flows/created"]}


async def apply(store: SqliteStore, names: tuple[str, ...], command: CommandEnvelope) -> Outcome:
    applier = CommandApplier(
        store, {name: HANDLERS[name] for name in names}, is_retryable=lambda _: False
    )
    (outcome,) = await applier([command])
    return outcome


def registration(body: WebhookBody, name: str, webhook_id: str) -> CommandEnvelope:
    """The command the gateway sends for `body`."""
    return CommandEnvelope(
        name=body.command_name(name), key=webhook_id, payload=body.payload(webhook_id)
    )


async def test_an_older_service_refuses_a_signing_secret_instead_of_dropping_it(
    store: SqliteStore,
) -> None:
    webhook_id = str(uuid.uuid4())
    signed = WebhookBody(doc=DOC, status="created", sealed_key_value=None, signing_secret="s:1")
    old = await apply(store, BEFORE_SIGNING, registration(signed, "webhooks.create", webhook_id))
    # It took `webhooks.create` and answered 201, with deliveries never signed.
    assert old.status == 400 and old.body["type"] == "UnknownCommand"
    # The client is told to come back once the upgrade is through.
    reply = old.reply_for(registration(signed, "webhooks.create", webhook_id))
    response = reply_response(reply, make_mocked_request("POST", "/service/webhooks"))
    assert response.status == 503 and response.headers["Retry-After"]
    assert response.body is not None
    assert json.loads(bytes(response.body))["type"] == "ServiceUnavailable"
    assert await store.read(lambda tx: tx.get_webhook(webhook_id)) is None

    # Registrations without a secret are still the commands an older service knows.
    plain = WebhookBody(doc=DOC, status="created", sealed_key_value=None)
    outcome = await apply(store, BEFORE_SIGNING, registration(plain, "webhooks.create", webhook_id))
    assert outcome.status == 201
    # Nor may a replacement that sets or removes the secret be applied without it.
    for secret in ("s:2", ""):
        body = WebhookBody(doc=DOC, status="created", sealed_key_value=None, signing_secret=secret)
        old = await apply(store, BEFORE_SIGNING, registration(body, "webhooks.replace", webhook_id))
        assert old.status == 400 and old.body["type"] == "UnknownCommand"

    # This build's service applies every one of them.
    everything = tuple(HANDLERS)
    outcome = await apply(store, everything, registration(signed, "webhooks.replace", webhook_id))
    assert outcome.status == 201
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.signing_secret == "s:1"
    unsigned = WebhookBody(doc=DOC, status="created", sealed_key_value=None, signing_secret="")
    outcome = await apply(store, everything, registration(unsigned, "webhooks.replace", webhook_id))
    assert outcome.status == 201
    record = await store.read(lambda tx: tx.get_webhook(webhook_id))
    assert record is not None and record.signing_secret is None
    other_id = str(uuid.uuid4())
    outcome = await apply(store, everything, registration(signed, "webhooks.create", other_id))
    assert outcome.status == 201
    record = await store.read(lambda tx: tx.get_webhook(other_id))
    assert record is not None and record.signing_secret == "s:1"
