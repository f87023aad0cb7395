"""Sealing webhook secrets (`api_key_value`, `signing_secret`): encrypted in commands and at
rest when a key is set.

With `TAMS_WEBHOOKS_SECRET_KEYS` set (Fernet keys, newest first), the gateway seals a value as
soon as it has read it from the request; the command, the store and backups then only ever
hold the token, and the webhooks service opens it just before a delivery. Older keys stay
listed to open values sealed before a key rotation (a value is re-sealed with the newest key
when its webhook is next replaced). Without keys, values are stored as given, marked `plain:`
so that values stored before a key was configured can still be read.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tams_runtime.settings import WebhookSettings

PLAIN = "plain:"
SEALED = "fernet:"


class SecretUnavailable(Exception):
    """A sealed value cannot be opened here (no key configured, or not one of ours)."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys]) if keys else None

    @classmethod
    def from_settings(cls, settings: WebhookSettings | None = None) -> SecretBox:
        raw = (settings or WebhookSettings()).secret_keys or ""
        return cls([key.strip() for key in raw.split(",") if key.strip()])

    @property
    def encrypting(self) -> bool:
        return self._fernet is not None

    def seal(self, value: str) -> str:
        if self._fernet is None:
            return PLAIN + value
        return SEALED + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        if stored.startswith(PLAIN):
            return stored[len(PLAIN) :]
        if not stored.startswith(SEALED):
            raise SecretUnavailable(
                "a stored webhook secret (api_key_value, signing_secret) has an unknown format"
            )
        if self._fernet is None:
            raise SecretUnavailable(
                "the webhook's secrets are encrypted and TAMS_WEBHOOKS_SECRET_KEYS is not set here"
            )
        try:
            return self._fernet.decrypt(stored[len(SEALED) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretUnavailable(
                "the webhook's secrets were encrypted with a key not in TAMS_WEBHOOKS_SECRET_KEYS"
            ) from exc
