"""Webhook registration commands: create, replace, delete, each `(tx, command) -> Outcome`.

The gateway has checked the body (fields, event names, ids, URL); what needs the stored
registration is decided here: existence (404) and the status state machine (checklist §5.1):

    created | started  --disabled-->  disabled        (the queue is emptied)
    disabled | error   --created--->  created         (re-enabled: starts with new events)
    error              --disabled-->  rejected, 400
    created | started  --created--->  unchanged       (a configuration change only)

`api_key_value` arrives sealed (tams_runtime.secret_box) and is never part of a reply. A
replacement that leaves it out keeps the stored value as long as `api_key_name` and the URL's
origin (scheme, host and port) are unchanged, so a client can edit a webhook it read back
(the value is write-only) without resending it, but nobody can send the stored key to a
receiver of their own choosing. `signing_secret` (sealed too) is kept the same way when a
replacement leaves it out, whatever the URL (the secret itself never leaves the server), and
`""` removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from tams_schema.auth import Principal
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import WriteTx
from tams_store.port import WebhookRecord, WebhookStatus

Handler = Callable[[WriteTx, CommandEnvelope], Outcome]


class Refused(Exception):
    def __init__(self, status: int, type_: str, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.type = type_
        self.summary = summary


def answers_refusals(handler: Handler) -> Handler:
    @wraps(handler)
    def wrapper(tx: WriteTx, command: CommandEnvelope) -> Outcome:
        try:
            return handler(tx, command)
        except Refused as exc:
            return Outcome.error(exc.status, exc.type, exc.summary)

    return wrapper


def _owner(payload: dict[str, Any]) -> Principal | None:
    """Whoever registered or replaced the webhook (its deliveries are filtered by what they
    may read); None when the gateway authenticated nobody."""
    owner = payload.get("owner")
    return Principal.model_validate(owner) if owner is not None else None


def _existing(tx: WriteTx, webhook_id: str) -> WebhookRecord:
    record = tx.get_webhook(webhook_id)
    if record is None:
        raise Refused(404, "NotFound", f"webhook {webhook_id} does not exist")
    return record


@answers_refusals
def create_webhook(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """POST /service/webhooks: 201 with the webhook (its id was chosen by the gateway)."""
    payload: dict[str, Any] = command.payload
    webhook_id = payload["webhook_id"]
    if tx.get_webhook(webhook_id) is not None:
        raise Refused(400, "BadRequest", f"webhook {webhook_id} already exists")
    record = WebhookRecord(
        id=webhook_id,
        doc=payload["webhook"],
        status=payload.get("status") or "created",
        api_key_value=payload.get("api_key_value"),
        owner=_owner(payload),
        signing_secret=payload.get("signing_secret") or None,
    )
    tx.put_webhook(record)
    return Outcome(status=201, body=record.view())


def next_status(current: WebhookStatus, requested: str, webhook_id: str) -> WebhookStatus:
    if requested == "disabled":
        if current == "error":
            raise Refused(
                400,
                "BadRequest",
                f"webhook {webhook_id} is in error: it can be re-enabled (status created) or "
                "deleted, not disabled",
            )
        return "disabled"
    if current in ("disabled", "error"):
        return "created"
    return current


def _key_value(current: WebhookRecord, doc: dict[str, Any], payload: dict[str, Any]) -> str | None:
    if "api_key_value" in payload:
        value: str = payload["api_key_value"]
        return value
    name = doc.get("api_key_name")
    if name is None:
        return None
    same_name = name.lower() == (current.doc.get("api_key_name") or "").lower()  # case-blind
    if not same_name or current.api_key_value is None:
        raise Refused(
            400,
            "BadRequest",
            f"api_key_value is needed with api_key_name {name!r}: there is no stored value for "
            "that header name to keep",
        )
    if _origin(doc.get("url")) != _origin(current.doc.get("url")):
        raise Refused(
            400,
            "BadRequest",
            "api_key_value is needed when the url moves to another scheme, host or port: the "
            "stored key goes only to the receiver it was given for",
        )
    return current.api_key_value


def _origin(url: object) -> tuple[str, str, int | None] | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


@answers_refusals
def replace_webhook(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """PUT /service/webhooks/{id}: full replacement, 201 with the webhook."""
    payload: dict[str, Any] = command.payload
    current = _existing(tx, payload["webhook_id"])
    doc: dict[str, Any] = payload["webhook"]
    status = next_status(current.status, payload["status"], current.id)
    owner = _owner(payload)
    # Nothing queued before carries over when the webhook is disabled, or re-enabled after
    # disabled/error, or gets another owner: what is queued was matched against the previous
    # owner's permissions, which the new one (or the same with other scopes or groups) may
    # not have.
    restarted = status != current.status and (status == "disabled" or current.status != "created")
    if restarted or owner != current.owner:
        tx.drop_deliveries(current.id)
    record = WebhookRecord(
        id=current.id,
        doc=doc,
        status=status,
        error=current.error if status == "error" else None,
        api_key_value=_key_value(current, doc, payload),
        generation=current.generation + 1,
        owner=owner,
        signing_secret=(
            payload["signing_secret"] or None
            if "signing_secret" in payload
            else current.signing_secret
        ),
    )
    tx.put_webhook(record)
    return Outcome(status=201, body=record.view())


@answers_refusals
def delete_webhook(tx: WriteTx, command: CommandEnvelope) -> Outcome:
    """DELETE /service/webhooks/{id}: 204; what was queued for it goes too."""
    record = _existing(tx, command.payload["webhook_id"])
    tx.delete_webhook(record.id)
    return Outcome(status=204)


HANDLERS: dict[str, Handler] = {
    "webhooks.create": create_webhook,
    "webhooks.replace": replace_webhook,
    "webhooks.delete": delete_webhook,
    # The same, with a `signing_secret` set or removed: names an older service does not know,
    # so it refuses them rather than drop the secret (tams_gateway.webhook_bodies).
    "webhooks.create_signed": create_webhook,
    "webhooks.replace_signed": replace_webhook,
}
