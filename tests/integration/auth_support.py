"""What the authentication tests need: an identity provider and a gateway that trusts it.

`TokenIssuer` is a real JWKS endpoint (an aiohttp server on loopback) with RSA and EC keys
generated at test time; it mints JWTs the way an OAuth2 server would. `extra_gateway` starts
one more gateway process on the shared stack (same broker, store and services, as a second
replica would be) with its own authentication settings: Basic users for every test identity,
the issuer's JWKS, and storage backends whose deploy-time tags carry auth classes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tams_runtime.passwords import hash_password
from tams_stack.ports import free_port
from tams_stack.process import spawn
from tams_stack.stack import Stack
from tams_stack.testing import ARCHIVE_BACKEND

ISSUER = "https://login.test.example"
AUDIENCE = "tams-test"
ALL_SCOPES = ("read", "write", "delete")


@dataclass(frozen=True)
class Identity:
    """A test principal: the same name, scopes and groups as a Basic user and in JWTs."""

    name: str
    scopes: tuple[str, ...]
    groups: tuple[str, ...] = ()
    password: str = field(default_factory=lambda: uuid.uuid4().hex)


IDENTITIES = {
    i.name: i
    for i in (
        Identity("news", ALL_SCOPES, ("news",)),
        Identity("sport", ALL_SCOPES, ("sport",)),
        Identity("reader", ("read",), ("news",)),
        Identity("writer", ("write",), ("news",)),
        Identity("deleter", ("delete",), ("news",)),
        Identity("intern", ("read", "write"), ("interns",)),
        Identity("copyed", ALL_SCOPES, ("copyeds",)),
        Identity("nobody", ALL_SCOPES),
        Identity("archivist", ALL_SCOPES, ("archivists", "news")),
        Identity("boss", ("admin",)),
    )
}


def users_json() -> str:
    return json.dumps(
        {
            i.name: {
                "password": hash_password(i.password),
                "scopes": list(i.scopes),
                "groups": list(i.groups),
            }
            for i in IDENTITIES.values()
        }
    )


def basic(identity: Identity) -> dict[str, str]:
    token = base64.b64encode(f"{identity.name}:{identity.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def algorithm_of(key: Any) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"


class TokenIssuer:
    """Signing keys, their JWKS served over HTTP, and JWTs signed with them."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
        }
        self.fetches = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    def algorithm(self, kid: str) -> str:
        return algorithm_of(self.keys[kid])

    def add_key(self, kid: str) -> None:
        """Rotate in a new key (the gateway must fetch the JWKS again to know it)."""
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        entries = []
        for kid, key in self.keys.items():
            algorithm = jwt.get_algorithm_by_name(self.algorithm(kid))
            entry = json.loads(algorithm.to_jwk(key.public_key()))
            entries.append({**entry, "kid": kid, "use": "sig", "alg": self.algorithm(kid)})
        return {"keys": entries}

    async def start(self) -> None:
        async def serve(_: web.Request) -> web.Response:
            self.fetches += 1
            return web.json_response(self.jwks())

        app = web.Application()
        app.router.add_get("/jwks", serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/jwks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def token(
        self,
        identity: Identity | None = None,
        *,
        kid: str = "rsa-1",
        key: Any = None,
        algorithm: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
        if identity is not None:
            body.update(
                sub=identity.name,
                scope=" ".join(f"tams-api/{s}" for s in identity.scopes),
                groups=list(identity.groups),
            )
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = key if key is not None else self.keys[kid]
        return jwt.encode(
            body,
            key,
            algorithm=algorithm or algorithm_of(key),
            headers={"kid": kid, **(headers or {})},
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_ready(url: str, alive: Any, log_tail: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            assert alive(), f"the gateway exited:\n{log_tail()}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{url}/ready") as resp:
                    if resp.status == 200:
                        return
            assert time.monotonic() < deadline, f"gateway not ready:\n{log_tail()}"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def extra_gateway(stack: Stack, env: dict[str, str], name: str) -> AsyncIterator[str]:
    """One more gateway on the shared stack, with these settings on top of the stack's."""
    port = free_port()
    process = spawn(
        name,
        [sys.executable, "-m", "tams_gateway"],
        env={**stack.env, **env, "TAMS_GATEWAY_PORT": str(port)},
        cwd=stack.data_dir,
        log_dir=stack.data_dir / "logs",
        stop_timeout=10.0,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process.alive, process.log_tail)
        yield url
    finally:
        process.stop()


def auth_gateway_env(issuer: TokenIssuer) -> dict[str, str]:
    return {
        # Inline users next to the stack's own users file (the local admin): both count.
        "TAMS_AUTH_USERS": users_json(),
        "TAMS_AUTH_JWT_JWKS_URL": issuer.url,
        "TAMS_AUTH_JWT_ISSUER": ISSUER,
        "TAMS_AUTH_JWT_AUDIENCE": AUDIENCE,
        "TAMS_AUTH_JWT_LEEWAY_S": "5",
        # Rotation tests refetch the JWKS at once.
        "TAMS_AUTH_JWKS_MIN_REFRESH_S": "0",
        # The same archive backend as the stack's, with deploy-time classes (ADR 0055).
        "TAMS_S3_EXTRA_BACKENDS": json.dumps(
            [{**ARCHIVE_BACKEND, "tags": {"auth_classes": ["archive"]}}]
        ),
        "TAMS_GATEWAY_CORS_ORIGINS": "https://tools.example.com",
    }
