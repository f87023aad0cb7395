"""The gateway's gate, piece by piece: scopes per route, rate limits, Basic users."""

from __future__ import annotations

import asyncio
import json

import pytest

from tams_gateway.auth.basic import BasicAuthenticator, UsersError, load_users
from tams_gateway.auth.ratelimit import RateLimiter, retry_after
from tams_gateway.auth.scopes import ANYONE, required_scopes
from tams_gateway.auth.settings import AuthSettings
from tams_runtime import passwords
from tams_runtime.passwords import hash_password


@pytest.mark.parametrize(
    ("method", "route", "scopes"),
    [
        ("GET", "/", ANYONE),
        ("HEAD", "/service", ANYONE),
        ("GET", "/service/storage-backends", ANYONE),
        ("POST", "/service", ("admin",)),
        ("GET", "/flows", ("read",)),
        ("PUT", "/flows/{flow_id}", ("write",)),
        ("DELETE", "/flows/{flow_id}", ("delete",)),
        ("DELETE", "/flows/{flow_id}/segments", ("delete",)),
        ("DELETE", "/flows/{flow_id}/tags/{name}", ("write",)),
        # The segment tags extension (docs/ext-segment-tags.md): like every tag route.
        ("PUT", "/flows/{flow_id}/segments/tags/{name}", ("write",)),
        ("DELETE", "/flows/{flow_id}/segments/tags/{name}", ("write",)),
        ("DELETE", "/flows/{flow_id}/label", ("write",)),
        ("POST", "/flows/{flow_id}/storage", ("write",)),
        ("DELETE", "/objects/{object_id}/instances", ("write",)),
        ("PUT", "/service/webhooks/{webhook_id}", ("write",)),
        ("DELETE", "/service/webhooks/{webhook_id}", ("delete",)),
        ("GET", "/flow-delete-requests", ("admin",)),
        ("GET", "/flow-delete-requests/{request_id}", ("admin", "delete")),
        ("POST", "/service/profiles/{profile_id}", ("write",)),
        ("GET", "/deleted-flows", ("read",)),
        ("HEAD", "/deleted-flows/{flow_id}", ("read",)),
        ("POST", "/deleted-flows/{flow_id}/restore", ("delete",)),
        ("DELETE", "/deleted-flows/{flow_id}", ("delete",)),
        ("POST", "/flows/{flow_id}/segments", ("write",)),
    ],
)
def test_scopes_follow_appnote_0016(method: str, route: str, scopes: tuple[str, ...]) -> None:
    assert required_scopes(method, route) == scopes


def test_a_bucket_allows_its_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)
    assert limiter.take("b", now=0.0) == 0.0  # another principal, another bucket
    assert limiter.take("a", now=0.5) == 0.0  # refilled one token
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"
    assert RateLimiter(rate=0, burst=1).take("a") == 0.0  # off


def test_users_are_checked_at_start_and_never_echoed() -> None:
    good = {"alice": {"password": hash_password("pw"), "scopes": ["tams-api/read"]}}
    users = load_users(AuthSettings(_env_file=None, users=json.dumps(good)))
    assert users["alice"].principal.scopes == ("read",)
    for bad in (
        {"bob": {"password": "plain"}},
        {"bob": {"password": hash_password("x"), "scopes": ["superuser"]}},
        {"bob": {"password": hash_password("x"), "role": "x"}},
        {"b:b": {"password": hash_password("x")}},
    ):
        with pytest.raises(UsersError):
            load_users(AuthSettings(_env_file=None, users=json.dumps(bad)))
    with pytest.raises(UsersError) as caught:
        load_users(AuthSettings(_env_file=None, users='{"x": "scrypt:secret'))
    assert "secret" not in str(caught.value)


async def test_verified_credentials_are_remembered_not_rehashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = load_users(
        AuthSettings(
            _env_file=None,
            users=json.dumps({"alice": {"password": hash_password("pw"), "scopes": ["read"]}}),
        )
    )
    basic = BasicAuthenticator(users, cache_s=60)
    checks = 0
    real = passwords.verify_password

    def counting(password: str, stored: str) -> bool:
        nonlocal checks
        checks += 1
        return real(password, stored)

    monkeypatch.setattr("tams_gateway.auth.basic.verify_password", counting)
    for _ in range(5):
        principal = await basic.authenticate("alice", "pw")
        assert principal is not None and principal.name == "alice"
    assert checks == 1
    assert await basic.authenticate("alice", "wrong") is None
    assert await basic.authenticate("mallory", "pw") is None  # costs a check as well
    assert checks == 3


async def test_concurrent_requests_with_the_same_credentials_share_one_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = load_users(
        AuthSettings(
            _env_file=None,
            users=json.dumps({"alice": {"password": hash_password("pw"), "scopes": ["read"]}}),
        )
    )
    basic = BasicAuthenticator(users, cache_s=60)
    checks = 0
    real = passwords.verify_password

    def counting(password: str, stored: str) -> bool:
        nonlocal checks
        checks += 1
        return real(password, stored)

    monkeypatch.setattr("tams_gateway.auth.basic.verify_password", counting)
    found = await asyncio.gather(*(basic.authenticate("alice", "pw") for _ in range(16)))
    assert all(p is not None and p.name == "alice" for p in found)
    assert checks == 1
