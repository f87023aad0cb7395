"""Password hashes for HTTP Basic users: scrypt from the standard library, salted and slow.

A hash is one string, `scrypt:<n>:<r>:<p>:<salt>:<key>` (salt and key in unpadded
URL-safe base64), so the cost can be raised later without breaking stored hashes. (No `$`
in it: shells, `.env` files and compose would take that for a variable.) Make one
with `tams hash-password`. Checking a password costs tens of milliseconds on purpose; the
gateway remembers recently verified credentials (tams_gateway.auth) so that a client sending
Basic credentials on every request does not pay it every time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
SEPARATOR = ":"
# RFC 7914's interactive parameters: 16 MiB of memory, ~50 ms on a small server.
N, R, P = 2**14, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
MAX_N = 2**20


class InvalidHash(ValueError):
    """A stored hash this module cannot read."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=length
    )


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return SEPARATOR.join((SCHEME, str(N), str(R), str(P), _b64(salt), _b64(key)))


def check_hash(stored: str) -> None:
    """Raise `InvalidHash` unless `stored` is a hash this module can verify."""
    parts = stored.split(SEPARATOR)
    if len(parts) != 6 or parts[0] != SCHEME:
        raise InvalidHash("a password hash looks like scrypt:n:r:p:salt:key (tams hash-password)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise InvalidHash(f"malformed password hash: {exc}") from exc
    if n < 2 or n > MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise InvalidHash("password hash parameters out of range")
    if len(salt) < 8 or len(key) < 16:
        raise InvalidHash("password hash salt or key too short")


def verify_password(password: str, stored: str) -> bool:
    check_hash(stored)
    _, n, r, p, salt, key = stored.split(SEPARATOR)
    expected = _unb64(key)
    derived = _derive(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    return hmac.compare_digest(derived, expected)
