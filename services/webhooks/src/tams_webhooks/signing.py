"""Signed deliveries: the Standard Webhooks symmetric scheme (standardwebhooks.com, v1).

A webhook registered with a `signing_secret` (`whsec_` and the base64 of 24 to 64 random
bytes) gets three more headers on every attempt: `webhook-id` (the event id, the same on
every retry, as `Tams-Event-Id`), `webhook-timestamp` (this attempt's Unix time in seconds)
and `webhook-signature`, `v1,` and the base64 HMAC-SHA256, under the secret's bytes, of
`{webhook-id}.{webhook-timestamp}.{body}`. A receiver checks the signature with the bytes it
received, and refuses a timestamp far from its own clock (a replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for (the gateway checked its form)."""
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature_headers(
    key: bytes, event_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    signed = f"{event_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
