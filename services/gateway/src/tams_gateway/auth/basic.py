"""HTTP Basic users from configuration, with scrypt password hashes.

Checking a hash is slow on purpose (tams_runtime.passwords), so credentials that verified are
remembered for `TAMS_AUTH_BASIC_CACHE_S`, keyed by a keyed hash of `user:password` (the
password itself is never kept). Unknown users cost a check too, against a dummy hash, so a
response time does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tams_gateway.auth.settings import AuthSettings
from tams_runtime.passwords import InvalidHash, check_hash, hash_password, verify_password
from tams_schema.auth import Principal, parse_scopes

CACHE_ENTRIES = 4096


class UsersError(ValueError):
    """The configured users are not valid (refused at start-up)."""


@dataclass(frozen=True)
class BasicUser:
    principal: Principal
    password_hash: str


def _user(name: str, entry: Any, prefix: str) -> BasicUser:
    if not isinstance(entry, dict):
        raise UsersError(f"user {name!r} must be an object with password, scopes and groups")
    unknown = sorted(set(entry) - {"password", "scopes", "groups"})
    if unknown:
        raise UsersError(f"user {name!r} has unknown field(s) {', '.join(unknown)}")
    password = entry.get("password")
    if not isinstance(password, str):
        raise UsersError(f"user {name!r} needs password: a hash from `tams hash-password`")
    try:
        check_hash(password)
    except InvalidHash as exc:
        raise UsersError(f"user {name!r}: {exc}") from exc
    scopes, groups = entry.get("scopes", []), entry.get("groups", [])
    for what, values in (("scopes", scopes), ("groups", groups)):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsersError(f"user {name!r}: {what} must be a list of strings")
    parsed = parse_scopes(scopes, prefix)
    if len(parsed) != len(scopes):
        raise UsersError(
            f"user {name!r}: scopes are read, write, delete and admin (or {prefix}read, ...)"
        )
    if ":" in name or not name:
        raise UsersError(f"user name {name!r} is empty or has a colon")
    return BasicUser(Principal(name=name, scopes=parsed, groups=tuple(groups)), password)


def load_users(settings: AuthSettings) -> dict[str, BasicUser]:
    documents: list[Any] = []
    if settings.users is not None:
        documents.append(_parse(settings.users.get_secret_value(), "TAMS_AUTH_USERS"))
    if settings.users_file:
        documents.append(_parse(Path(settings.users_file).read_text(), settings.users_file))
    users: dict[str, BasicUser] = {}
    for document in documents:
        if not isinstance(document, dict):
            raise UsersError("users must be a JSON object: name -> {password, scopes, groups}")
        for name, entry in document.items():
            users[name] = _user(name, entry, settings.scope_prefix)
    return users


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        # Never echo the text: it holds password hashes.
        raise UsersError(f"{where} is not valid JSON (line {getattr(exc, 'lineno', '?')})") from exc


class BasicAuthenticator:
    def __init__(self, users: dict[str, BasicUser], cache_s: float) -> None:
        self.users = users
        self.cache_s = cache_s
        self._cache_key = os.urandom(32)
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._checking: dict[bytes, asyncio.Future[Principal | None]] = {}
        self._dummy_hash = hash_password(os.urandom(16).hex())

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def _fingerprint(self, name: str, password: str) -> bytes:
        return hmac.digest(self._cache_key, f"{name}:{password}".encode(), "sha256")

    async def authenticate(self, name: str, password: str) -> Principal | None:
        key = self._fingerprint(name, password)
        hit = self._verified.get(key)
        if hit is not None and hit[0] > time.monotonic():
            self._verified.move_to_end(key)
            return hit[1]
        # Concurrent requests with the same credentials (a client opening many connections
        # at once) share one check instead of each paying for scrypt.
        pending = self._checking.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._check(key, name, password))
            self._checking[key] = pending
            pending.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(pending)

    async def _check(self, key: bytes, name: str, password: str) -> Principal | None:
        user = self.users.get(name)
        stored = user.password_hash if user is not None else self._dummy_hash
        # Off the event loop: scrypt holds the CPU for tens of milliseconds.
        ok = await asyncio.to_thread(verify_password, password, stored)
        if not ok or user is None:
            return None
        if self.cache_s > 0:
            self._verified[key] = (time.monotonic() + self.cache_s, user.principal)
            while len(self._verified) > CACHE_ENTRIES:
                self._verified.popitem(last=False)
        return user.principal
