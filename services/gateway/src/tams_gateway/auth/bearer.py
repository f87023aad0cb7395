"""Bearer JWTs: verified offline against a JWKS URL (cached) or a static public key.

A token must be signed with one of the allowed asymmetric algorithms by a key we trust (the
JWKS key named by its `kid`, or the static key), carry our issuer (`iss`) and one of our
audiences (`aud`), and be inside its `nbf`/`exp` window give or take the leeway. An unknown
`kid` refetches the JWKS (keys rotate), at most every `TAMS_AUTH_JWKS_MIN_REFRESH_S`, so a
flood of forged `kid`s cannot hammer the identity provider.

Scopes come from `scope` (space-separated, OAuth 2) or `scp` (a list or a string); groups from
the configured claim; the name (`created_by`) from `sub` unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from jwt import PyJWK

from tams_gateway.auth.settings import AuthSettings
from tams_schema.auth import Principal, parse_scopes

log = logging.getLogger(__name__)

# Verified tokens are remembered at most this long (and never past their `exp`).
TOKEN_CACHE_S = 60.0
TOKEN_CACHE_ENTRIES = 4096


class TokenRejected(Exception):
    """The token is not acceptable; the message says why (safe to show the client)."""


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no cached keys can verify the token."""


def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by exact name, else by dotted path into nested objects."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


class JwksCache:
    """The keys of a JWKS URL by `kid`."""

    def __init__(self, settings: AuthSettings) -> None:
        assert settings.jwt_jwks_url
        self.url = settings.jwt_jwks_url
        self.max_age_s = settings.jwks_cache_s
        self.min_refresh_s = settings.jwks_min_refresh_s
        self.timeout_s = settings.jwks_timeout_s
        self.algorithms = set(settings.algorithms)
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK:
        now = time.monotonic()
        stale = self._fetched_at is None or now - self._fetched_at > self.max_age_s
        if stale or kid not in self._keys:
            await self._refresh()
        found = self._keys.get(kid)
        if found is None:
            if self._fetched_at is None:
                raise KeysUnavailable("the token signing keys (JWKS) could not be fetched")
            raise TokenRejected(f"unknown signing key id (kid) {kid!r}")
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh_s:
                return  # fetched (or tried) a moment ago, perhaps by a concurrent request
            self._attempted_at = now
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout_s)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as http,
                    http.get(self.url) as response,
                ):
                    response.raise_for_status()
                    document = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                # Keep the keys we have: the identity provider may be down for a moment.
                log.warning("could not fetch the JWKS", extra={"url": self.url, "error": str(exc)})
                return
            self._keys = self._parse(document)
            self._fetched_at = now
            log.info("fetched the JWKS", extra={"url": self.url, "keys": len(self._keys)})

    def _parse(self, document: Any) -> dict[str, PyJWK]:
        keys: dict[str, PyJWK] = {}
        for entry in (document or {}).get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or "kid" not in entry:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[str(entry["kid"])] = PyJWK.from_dict(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError):
                log.warning(
                    "skipping a JWKS key this server cannot use", extra={"kid": entry["kid"]}
                )
        return keys


class BearerAuthenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.algorithms = settings.algorithms
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError("TAMS_AUTH_JWT_ALGORITHMS: only asymmetric algorithms are accepted")
        self.audiences = settings.audiences
        if not settings.jwt_issuer or not self.audiences:
            raise ValueError(
                "JWT authentication needs TAMS_AUTH_JWT_ISSUER and TAMS_AUTH_JWT_AUDIENCE"
            )
        self.jwks = JwksCache(settings) if settings.jwt_jwks_url else None
        # sha256(token) -> (when to check it again, its principal)
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self.static_key: Any = None
        if self.jwks is None:
            pem = settings.jwt_public_key.get_secret_value() if settings.jwt_public_key else None
            if settings.jwt_public_key_file:
                pem = Path(settings.jwt_public_key_file).read_text()
            assert pem
            self.static_key = serialization.load_pem_public_key(pem.encode())

    async def authenticate(self, token: str) -> Principal:
        key = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(key)
        if hit is not None and hit[0] > time.time():
            self._verified.move_to_end(key)
            return hit[1]
        principal, expires = await self._verify(token)
        # A client sends the same token until it expires: remember it, briefly (a key removed
        # from the JWKS stops working within TOKEN_CACHE_S).
        self._verified[key] = (min(expires, time.time() + TOKEN_CACHE_S), principal)
        while len(self._verified) > TOKEN_CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("the bearer token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRejected(f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        key: Any
        if self.jwks is not None:
            if not isinstance(kid, str):
                raise TokenRejected("the token names no signing key id (kid)")
            key = (await self.jwks.key(kid)).key
        else:
            if self.settings.jwt_key_id is not None and kid != self.settings.jwt_key_id:
                raise TokenRejected(f"unknown signing key id (kid) {kid!r}")
            key = self.static_key
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audiences,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("the token is not valid yet (nbf/iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the token is not for this service (aud)") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("the token is from an untrusted issuer (iss)") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the token is not acceptable: {exc}") from exc
        except (TypeError, ValueError) as exc:
            # PyJWT's answer to an algorithm that does not fit the key's type (an RS256
            # header naming an EC key, say): the token is bad, not the server.
            raise TokenRejected(f"the token's algorithm {alg} does not fit its key") from exc
        return self.principal(claims), float(claims["exp"])

    def principal(self, claims: dict[str, Any]) -> Principal:
        name = claim(claims, self.settings.jwt_name_claim) or claims.get("sub")
        if not isinstance(name, str) or not name:
            raise TokenRejected(f"the token has no {self.settings.jwt_name_claim!r} claim")
        scopes = _strings(claims.get("scope")) + _strings(claims.get("scp"))
        groups = _strings(claim(claims, self.settings.jwt_groups_claim))
        return Principal(
            name=name,
            # Only prefixed scopes: an identity provider shared with other APIs may grant
            # a bare `admin` or `write` that means something else there.
            scopes=parse_scopes(scopes, self.settings.scope_prefix, bare=False),
            groups=tuple(groups),
        )
