"""Benchmark: what authentication costs per request, GET /flows/{id} through the gateway.

    uv run python bench/auth.py [--requests 3000]

Starts a stack in a temporary directory whose gateway accepts Basic users and Bearer JWTs
(RS256 and ES256, verified against a static public key each: one gateway per key type), plus
a gateway with authentication switched off as the baseline, all on the same broker, store
and services. Runs the same closed-loop load (32 clients) with each scheme and prints
throughput and latency percentiles, then the same with fine-grained authorisation on for a
caller who is not an admin (one more store read per request, and the permission check).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from catalog import flow_body, run_load
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tams_runtime.passwords import hash_password
from tams_stack.ports import free_port
from tams_stack.process import spawn
from tams_stack.stack import Stack

ISSUER, AUDIENCE = "https://bench.example", "tams-bench"
POLICY = {"classes": {"news": {"news": ["read", "write", "delete"]}}, "unclassified": []}


def pem(key: Any) -> str:
    public: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def token(key: Any, algorithm: str, groups: list[str]) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench",
        "iat": now,
        "exp": now + 3600,
        "scope": "tams-api/read tams-api/write",
        "groups": groups,
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "bench"})


@asynccontextmanager
async def gateway(stack: Stack, name: str, env: dict[str, str]) -> AsyncIterator[str]:
    port = free_port()
    process = spawn(
        name,
        [sys.executable, "-m", "tams_gateway"],
        env={**stack.env, **env, "TAMS_GATEWAY_PORT": str(port)},
        cwd=stack.data_dir,
        log_dir=stack.data_dir / "logs",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"{url}/ready") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.stop()


async def measure(url: str, name: str, headers: dict[str, str], flow_id: str, total: int) -> Any:
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=64)) as http:

        async def get(_: int) -> int:
            async with http.get(f"/flows/{flow_id}", headers=headers) as resp:
                await resp.read()
                return resp.status

        await run_load(f"{name} (warm-up)", get, 200, total=200, rate=None)
        return await run_load(name, get, 200, total=total, rate=None)


async def bench(stack: Stack, total: int) -> list[Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    password = uuid.uuid4().hex
    users = {
        "bench": {
            "password": hash_password(password),
            "scopes": ["read", "write"],
            "groups": ["news"],
        }
    }
    common = {
        "TAMS_AUTH_USERS": json.dumps(users),
        "TAMS_AUTH_JWT_ISSUER": ISSUER,
        "TAMS_AUTH_JWT_AUDIENCE": AUDIENCE,
    }
    basic = "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()
    flow = flow_body(str(uuid.uuid4()), str(uuid.uuid4()), 0)
    flow["tags"]["auth_classes"] = ["news"]
    async with (
        aiohttp.ClientSession(stack.gateway_url, headers=stack.client_headers()) as admin,
        admin.put(f"/flows/{flow['id']}", json=flow) as resp,
    ):
        assert resp.status == 201, await resp.text()
    results = []
    with_rsa = {**common, "TAMS_AUTH_JWT_PUBLIC_KEY": pem(rsa_key)}
    with_ec = {**common, "TAMS_AUTH_JWT_PUBLIC_KEY": pem(ec_key)}
    with_policy = {**with_rsa, "TAMS_AUTH_POLICY": json.dumps(POLICY)}
    async with (
        gateway(stack, "gateway-open", {"TAMS_AUTH_DISABLED": "true"}) as open_url,
        gateway(stack, "gateway-rsa", with_rsa) as rsa_url,
        gateway(stack, "gateway-ec", with_ec) as ec_url,
        gateway(stack, "gateway-policy", with_policy) as policy_url,
    ):
        rs256 = {"Authorization": f"Bearer {token(rsa_key, 'RS256', ['news'])}"}
        es256 = {"Authorization": f"Bearer {token(ec_key, 'ES256', ['news'])}"}
        for url, name, headers in (
            (open_url, "no authentication", {}),
            (rsa_url, "Basic (remembered)", {"Authorization": basic}),
            (rsa_url, "Bearer RS256", rs256),
            (ec_url, "Bearer ES256", es256),
            (policy_url, "Bearer RS256 + policy", rs256),
        ):
            results.append(await measure(url, name, headers, flow["id"], total))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per scheme")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="tams-bench-")))
    try:
        stack.start_infrastructure()
        asyncio.run(stack.start_services())
        results = asyncio.run(bench(stack, args.requests))
    finally:
        stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
