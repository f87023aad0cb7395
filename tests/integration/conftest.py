"""Fixtures of the authentication tests: a token issuer and a gateway that trusts it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tams_stack.stack import Stack

from .auth_support import TokenIssuer, auth_gateway_env, extra_gateway


@pytest_asyncio.fixture(scope="session")
async def issuer() -> AsyncIterator[TokenIssuer]:
    found = TokenIssuer()
    await found.start()
    yield found
    await found.stop()


@pytest_asyncio.fixture(scope="session")
async def auth_url(tams_stack: Stack, issuer: TokenIssuer) -> AsyncIterator[str]:
    """A gateway with every test identity as a Basic user and the issuer's JWKS."""
    async with extra_gateway(tams_stack, auth_gateway_env(issuer), "gateway-auth") as url:
        yield url
