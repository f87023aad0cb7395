"""Webhook POST and PUT bodies, checked before they become commands (checklist §5.1).

A webhook that silently ignores part of its registration is dangerous (an ignored
`accept_get_urls: []` would send presigned URLs to a receiver that asked for none), so every
field this server does not implement, every unknown event name and every malformed id is a
400 naming it. `api_key_value` is sealed here (tams_runtime.secret_box), as soon as it is read,
and so is `signing_secret`, this server's one addition (docs/webhooks.md, signed deliveries).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from tams_gateway.errors import bad_request
from tams_gateway.queries import UUID_RE
from tams_runtime.egress import DestinationRefused, EgressPolicy
from tams_runtime.secret_box import SecretBox
from tams_schema.envelopes import EVENT_TYPES
from tams_schema.models import WebhookPost, WebhookPut

ID_FILTERS = ("flow_ids", "source_ids", "flow_collected_by_ids", "source_collected_by_ids")
URL_OPTIONS = ("presigned", "verbose_storage", "include_object_timerange")
REGISTRATION_FIELDS = (
    "url",
    "events",
    "api_key_name",
    *ID_FILTERS,
    "accept_get_urls",
    "accept_storage_ids",
    *URL_OPTIONS,
    "tags",
)
# Read-only fields a client may send back from a GET (`error` is the server's to set).
PUT_IGNORED = ("error",)
MAX_LIST = 1000
# RFC 9110 token characters; headers the HTTP client must own are refused as key names.
HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "user-agent",
        "tams-event-id",
        "tams-delivery-attempt",
        # The trace context each delivery carries.
        "traceparent",
        "tracestate",
        "baggage",
        # Would make a receiver wait for a `100 Continue` the sender never waits for.
        "expect",
        # Signed deliveries (Standard Webhooks).
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
# A signing secret as Standard Webhooks writes one: `whsec_`, then the base64 of 24 to 64
# random bytes.
SIGNING_SECRET_PREFIX = "whsec_"
# A registration that sets or removes a signing secret goes by a command name of its own: a
# webhooks service older than signed deliveries knows only `webhooks.create` and
# `webhooks.replace`, and would apply them without the secret it does not know (a 201, and
# deliveries never signed, for good); an unknown name it refuses, changing nothing, and the
# gateway answers 503 (tams_gateway.commands).
SIGNING_COMMANDS = {
    "webhooks.create": "webhooks.create_signed",
    "webhooks.replace": "webhooks.replace_signed",
}
SIGNING_SECRET_BYTES = (24, 64)


@dataclass(frozen=True)
class WebhookBody:
    """What the webhooks service needs: the registration document (as GET will show it,
    without id, status and error), the requested status and the sealed key value if given."""

    doc: dict[str, Any]
    status: str
    sealed_key_value: str | None
    # Sealed; "" to stop signing; None when not given (a PUT then keeps the stored one).
    signing_secret: str | None = None

    def command_name(self, name: str) -> str:
        """`webhooks.create` or `webhooks.replace`, or their signing variant."""
        return SIGNING_COMMANDS[name] if self.signing_secret is not None else name

    def payload(self, webhook_id: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"webhook_id": webhook_id, "webhook": self.doc}
        payload["status"] = self.status
        if self.sealed_key_value is not None:
            payload["api_key_value"] = self.sealed_key_value
        if self.signing_secret is not None:
            payload["signing_secret"] = self.signing_secret
        return payload


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _check_list(body: dict[str, Any], name: str) -> None:
    values = body.get(name)
    if values is None:
        return
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"{name} must be an array of strings")
    if len(values) > MAX_LIST:
        raise bad_request(f"{name} lists more than {MAX_LIST} values")


def _check_ids(body: dict[str, Any], name: str) -> None:
    _check_list(body, name)
    for value in body.get(name) or []:
        if not UUID_RE.fullmatch(value):
            raise bad_request(f"{name} lists {value!r}, which is not a UUID")


def parse_webhook(body: Any, *, put: bool, policy: EgressPolicy, secrets: SecretBox) -> WebhookBody:
    if not isinstance(body, dict):
        raise bad_request("the webhook must be a JSON object")
    allowed = {*REGISTRATION_FIELDS, "api_key_value", "signing_secret", "status"}
    if put:
        allowed |= {"id", *PUT_IGNORED}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(
            f"unsupported webhook field(s) {', '.join(unknown)}: this server does not implement "
            "them and will not silently ignore them"
        )
    # Explicit nulls mean "not set", like absent fields.
    body = {k: v for k, v in body.items() if v is not None}
    if "url" not in body or "events" not in body:
        raise bad_request("a webhook needs url and events")
    _check_list(body, "events")
    unknown_events = [e for e in body["events"] if e not in EVENT_TYPES]
    if unknown_events:
        raise bad_request(
            f"unknown event type(s) {', '.join(map(repr, unknown_events))}; "
            f"known: {', '.join(EVENT_TYPES)}"
        )
    for name in (*ID_FILTERS, "accept_storage_ids"):
        _check_ids(body, name)
    _check_list(body, "accept_get_urls")
    if put and "status" not in body:
        raise bad_request("a webhook PUT needs status (created or disabled)")
    status = body.get("status", "created")
    if status not in ("created", "disabled"):
        raise bad_request(f"status {status!r} must be created or disabled")
    # Everything else (types, tags) against the spec's models; strictly, so that "yes" is
    # not taken for true.
    (WebhookPut if put else WebhookPost).model_validate(body, strict=True)
    if not isinstance(body["url"], str):
        raise bad_request("url must be a string")
    try:
        policy.check_url(body["url"])
    except DestinationRefused as exc:
        raise bad_request(f"url is not acceptable: {exc}") from exc
    name = body.get("api_key_name")
    value = body.get("api_key_value")
    if name is not None:
        if not HEADER_TOKEN.match(name) or name.lower() in RESERVED_HEADERS:
            raise bad_request(f"api_key_name {name!r} is not a header name this server can set")
        if value is None and not put:
            raise bad_request("api_key_value is required with api_key_name")
    elif value is not None:
        raise bad_request("api_key_value needs api_key_name (the header to send it in)")
    if value is not None and not (value.isascii() and value.isprintable()):
        raise bad_request(
            "api_key_value must be printable ASCII (a header value: no line breaks or controls)"
        )
    signing_secret = body.get("signing_secret")
    if signing_secret is not None:
        _check_signing_secret(signing_secret)
    doc = {k: body[k] for k in REGISTRATION_FIELDS if k in body}
    doc["events"] = _unique(doc["events"])
    return WebhookBody(
        doc=doc,
        status=status,
        sealed_key_value=None if value is None else secrets.seal(value),
        signing_secret=signing_secret and secrets.seal(signing_secret),
    )


def _check_signing_secret(secret: object) -> None:
    """`""` (stop signing) or a Standard Webhooks symmetric secret."""
    problem = (
        f"signing_secret must be {SIGNING_SECRET_PREFIX} followed by the base64 of "
        f'{SIGNING_SECRET_BYTES[0]} to {SIGNING_SECRET_BYTES[1]} random bytes (or "" to stop '
        "signing)"
    )
    if not isinstance(secret, str):
        raise bad_request(problem)
    if secret == "":
        return
    if not secret.startswith(SIGNING_SECRET_PREFIX):
        raise bad_request(problem)
    try:
        key = base64.b64decode(secret[len(SIGNING_SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise bad_request(problem) from exc
    if not SIGNING_SECRET_BYTES[0] <= len(key) <= SIGNING_SECRET_BYTES[1]:
        raise bad_request(problem)
