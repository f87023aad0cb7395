"""Authentication and authorisation over real HTTP: who may do what, by every scheme.

The matrix sends each request as a Basic user, with a Bearer JWT and with `?access_token=`
(the same identity each time) to a gateway of the shared stack configured with the test
identities and a JWKS endpoint served by this test process. Resources carry the classes of
the test policy (`tams_stack.testing.AUTH_TEST_POLICY`); the expected status is what a client
sees: 401 without valid credentials, 403 without the scope or with some permission but not
enough, 404 without any permission (as for a resource that does not exist).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

from tams_stack.testing import ARCHIVE_BACKEND

from .auth_support import (
    IDENTITIES,
    ISSUER,
    Identity,
    TokenIssuer,
    basic,
    bearer,
)
from .helpers import new_id, put_flow, video_flow

ARCHIVE = ARCHIVE_BACKEND["id"]
# Flows of the world, by name, and their classes (None: no auth_classes tag at all).
CLASSES: dict[str, list[str] | None] = {
    "news": ["news"],
    "sport": ["sport"],
    "shared": ["news", "news_ro"],
    "open": None,
    "public": ["public"],
    "desk": ["desk_write"],
    "copy": ["copyedit"],
}


@dataclass(frozen=True)
class World:
    marker: str
    flows: dict[str, dict[str, Any]]

    def ids(self) -> dict[str, str]:
        ids = {f"flow_{name}": flow["id"] for name, flow in self.flows.items()}
        ids.update({f"source_{name}": flow["source_id"] for name, flow in self.flows.items()})
        return {**ids, "archive": ARCHIVE}


@pytest_asyncio.fixture(scope="module")
async def world(gateway_url: str, admin_headers: dict[str, str]) -> World:
    """One flow per class set, made by the admin; each new source inherits its classes."""
    marker = new_id()
    flows: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(gateway_url, headers=admin_headers) as http:
        for name, classes in CLASSES.items():
            tags: dict[str, Any] = {"marker": marker}
            if classes is not None:
                tags["auth_classes"] = classes
            flow = video_flow(tags=tags, label=name)
            await put_flow(http, flow)
            flows[name] = flow
    return World(marker, flows)


@pytest_asyncio.fixture
async def client(auth_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auth_url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        yield http


def credentials(
    issuer: TokenIssuer, scheme: str, identity: Identity
) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query) presenting `identity` by `scheme`."""
    if scheme == "basic":
        return basic(identity), {}
    token = issuer.token(identity)
    if scheme == "bearer":
        return bearer(token), {}
    return {}, {"access_token": token}


SERVICE_BODY = {"name": "Studio A", "description": "Ingest"}
WEBHOOK = {"url": "https://receiver.example.com/hook", "events": ["flows/created"]}

# (who, method, path, body, expected status)
MATRIX: list[tuple[str, str, str, Any, int]] = [
    # --- scopes (AppNote 0016's table) ---
    ("reader", "GET", "/", None, 200),
    ("writer", "GET", "/service", None, 200),
    ("deleter", "GET", "/service/storage-backends", None, 200),
    ("reader", "POST", "/service", SERVICE_BODY, 403),
    ("boss", "POST", "/service", SERVICE_BODY, 200),
    ("reader", "GET", "/flow-delete-requests", None, 403),
    ("deleter", "GET", "/flow-delete-requests", None, 403),
    ("boss", "GET", "/flow-delete-requests", None, 200),
    ("writer", "GET", "/flows/{flow_open}", None, 403),
    ("reader", "PUT", "/flows/{flow_open}/label", "by reader", 403),
    ("writer", "PUT", "/flows/{flow_open}/label", "by writer", 204),
    ("writer", "DELETE", "/flows/{flow_open}/segments", None, 403),
    ("deleter", "DELETE", "/flows/{flow_news}/segments", None, 204),
    ("reader", "GET", "/service/webhooks", None, 200),
    ("reader", "POST", "/service/webhooks", WEBHOOK, 403),
    ("reader", "GET", "/service/profiles", None, 200),
    ("boss", "GET", "/flows/{flow_desk}", None, 200),
    # --- fine-grained reads ---
    ("news", "GET", "/flows/{flow_news}", None, 200),
    ("news", "GET", "/flows/{flow_sport}", None, 404),
    ("news", "GET", "/flows/{flow_shared}", None, 200),
    ("news", "GET", "/flows/{flow_desk}", None, 404),
    ("sport", "GET", "/flows/{flow_shared}", None, 200),
    ("sport", "GET", "/flows/{flow_news}/tags", None, 404),
    ("sport", "GET", "/flows/{flow_news}/label", None, 404),
    ("nobody", "GET", "/flows/{flow_open}", None, 200),
    ("nobody", "GET", "/flows/{flow_public}", None, 200),
    ("nobody", "GET", "/flows/{flow_news}", None, 404),
    ("intern", "GET", "/flows/{flow_desk}", None, 403),
    ("news", "GET", "/sources/{source_news}", None, 200),
    ("sport", "GET", "/sources/{source_news}", None, 404),
    ("sport", "GET", "/sources/{source_shared}", None, 200),
    # Segments of a flow the caller may not see at all: as for an unknown flow, 200 [].
    ("sport", "GET", "/flows/{flow_news}/segments", None, 200),
    ("intern", "GET", "/flows/{flow_desk}/segments", None, 403),
    # --- fine-grained writes and deletes ---
    ("news", "PUT", "/flows/{flow_news}/label", "news", 204),
    ("sport", "PUT", "/flows/{flow_news}/label", "taken", 404),
    ("sport", "PUT", "/flows/{flow_shared}/label", "taken", 403),
    ("intern", "PUT", "/flows/{flow_desk}/label", "desk", 204),
    ("nobody", "PUT", "/flows/{flow_public}/description", "defaced", 403),
    ("news", "PUT", "/sources/{source_news}/label", "news source", 204),
    ("sport", "PUT", "/sources/{source_shared}/label", "taken", 403),
    ("copyed", "PUT", "/flows/{flow_copy}/label", "copy", 204),
    ("copyed", "DELETE", "/flows/{flow_copy}/segments", None, 403),
    ("sport", "DELETE", "/flows/{flow_shared}", None, 403),
    ("nobody", "DELETE", "/flows/{flow_news}", None, 404),
    ("news", "POST", "/flows/{flow_news}/storage", {"limit": 1}, 201),
    ("sport", "POST", "/flows/{flow_news}/storage", {"limit": 1}, 404),
    ("sport", "POST", "/flows/{flow_shared}/storage", {"limit": 1}, 403),
    # Storage backends have classes too (ADR 0055): archive is for archivists.
    ("news", "POST", "/flows/{flow_news}/storage", {"limit": 1, "storage_id": ARCHIVE}, 403),
    ("archivist", "POST", "/flows/{flow_news}/storage", {"limit": 1, "storage_id": ARCHIVE}, 201),
]


CASES = [
    pytest.param(*row, id=f"{row[0]}-{row[1]}-{row[2]}-{row[4]}".replace("/", "_"))
    for row in MATRIX
]


@pytest.mark.parametrize("scheme", ["basic", "bearer", "query"])
@pytest.mark.parametrize(("who", "method", "path", "body", "expected"), CASES)
async def test_who_may_do_what(
    client: aiohttp.ClientSession,
    issuer: TokenIssuer,
    world: World,
    scheme: str,
    who: str,
    method: str,
    path: str,
    body: Any,
    expected: int,
) -> None:
    headers, query = credentials(issuer, scheme, IDENTITIES[who])
    url = path.format(**world.ids())
    async with client.request(method, url, json=body, headers=headers, params=query) as resp:
        text = await resp.text()
        assert resp.status == expected, f"{who} {method} {url} by {scheme}: {text}"
        if resp.status >= 400:
            error = await resp.json()
            assert set(error) >= {"type", "summary", "time"}
        if path.endswith("/segments") and method == "GET" and expected == 200:
            assert await resp.json() == []


# --- authentication -------------------------------------------------------------------------


async def test_no_credentials_is_401_with_a_challenge_per_scheme(
    client: aiohttp.ClientSession,
) -> None:
    async with client.get("/flows") as resp:
        assert resp.status == 401
        challenges = resp.headers.getall("WWW-Authenticate")
        assert any(c.startswith("Basic realm=") for c in challenges), challenges
        assert any(c.startswith("Bearer realm=") for c in challenges), challenges
        error = await resp.json()
        assert error["type"] == "Unauthorized"
        assert "authentication required" in error["summary"]
    # The probes need no credentials (orchestrators and Prometheus carry none).
    for probe in ("/health", "/ready", "/metrics"):
        async with client.get(probe) as resp:
            assert resp.status == 200, probe


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic " + "bmV3czp3cm9uZw=="},  # news:wrong
        {"Authorization": "Basic bm90LWJhc2U2NA"},  # not user:password
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest username=news"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic\tbmV3czp3cm9uZw=="},  # a tab: an unknown "scheme"
    ],
    ids=[
        "wrong-password",
        "no-colon",
        "not-base64",
        "unknown-scheme",
        "garbage-token",
        "tab-separated",
    ],
)
async def test_bad_credentials_are_401(
    client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with client.get("/service", headers=headers) as resp:
        assert resp.status == 401, await resp.text()
        assert resp.headers.getall("WWW-Authenticate")
        text = await resp.text()
        assert (await resp.json())["type"] == "Unauthorized"
        # Nothing of what was sent comes back.
        assert headers["Authorization"].split(maxsplit=1)[1] not in text


async def test_two_authorization_headers_are_refused(client: aiohttp.ClientSession) -> None:
    """Which one counts would depend on who reads them: a proxy checking the last one while
    this server took the first let one user act as another (a security audit)."""
    news, sport = basic(IDENTITIES["news"]), basic(IDENTITIES["sport"])
    both = [("Authorization", news["Authorization"]), ("Authorization", sport["Authorization"])]
    async with client.get("/service", headers=CIMultiDict(both)) as resp:
        assert resp.status == 401
        assert "more than one Authorization header" in (await resp.json())["summary"]
    async with client.get("/service", headers=news) as resp:
        assert resp.status == 200


async def test_an_unknown_user_is_refused_like_a_wrong_password(
    client: aiohttp.ClientSession,
) -> None:
    ghost = Identity("ghost", ("read",))
    async with client.get("/service", headers=basic(ghost)) as resp:
        assert resp.status == 401
        assert (await resp.json())["summary"] == "wrong user name or password"


def _rejected(issuer: TokenIssuer) -> dict[str, str]:
    news = IDENTITIES["news"]
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = issuer.jwks()["keys"][0]
    return {
        "expired": issuer.token(news, exp=now - 120, iat=now - 600),
        "not yet valid": issuer.token(news, nbf=now + 600),
        "wrong audience": issuer.token(news, aud="someone-else"),
        "wrong issuer": issuer.token(news, iss="https://evil.example"),
        "no expiry": issuer.token(news, exp=None),
        "unknown kid": issuer.token(news, key=stranger, kid="nobody-knows-me"),
        "forged signature": issuer.token(news, key=stranger, kid="rsa-1"),
        # RS256 naming the EC key: PyJWT cannot even use the key for that algorithm.
        "alg of another key type": issuer.token(news, key=stranger, kid="ec-1", algorithm="RS256"),
        "alg none": jwt.encode(
            {"iss": ISSUER, "aud": "tams-test", "sub": "x", "exp": now + 60},
            key=None,
            algorithm="none",
            headers={"kid": "rsa-1"},
        ),
        "hs256 with the public key": jwt.encode(
            {"iss": ISSUER, "aud": "tams-test", "sub": "x", "exp": now + 60},
            key=str(public_pem["n"]).encode(),
            algorithm="HS256",
            headers={"kid": "rsa-1"},
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "no expiry",
        "unknown kid",
        "forged signature",
        "alg of another key type",
        "alg none",
        "hs256 with the public key",
    ],
)
async def test_unacceptable_tokens_are_401_with_the_reason(
    client: aiohttp.ClientSession, issuer: TokenIssuer, case: str
) -> None:
    token = _rejected(issuer)[case]
    for headers, params in ((bearer(token), {}), ({}, {"access_token": token})):
        async with client.get("/service", headers=headers, params=params) as resp:
            assert resp.status == 401, f"{case}: {await resp.text()}"
            (challenge,) = resp.headers.getall("WWW-Authenticate")
            assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


async def test_rsa_and_ec_keys_of_the_jwks_are_accepted(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    for kid in ("rsa-1", "ec-1"):
        token = issuer.token(IDENTITIES["news"], kid=kid)
        async with client.get("/service", headers=bearer(token)) as resp:
            assert resp.status == 200, f"{kid}: {await resp.text()}"


async def test_a_rotated_in_key_is_fetched_on_first_sight_of_its_kid(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    kid = f"rotated-{uuid.uuid4().hex[:8]}"
    issuer.add_key(kid)
    before = issuer.fetches
    token = issuer.token(IDENTITIES["news"], kid=kid)
    async with client.get("/service", headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()
    assert issuer.fetches == before + 1
    # Known now: no further fetch.
    async with client.get("/service", headers=bearer(token)) as resp:
        assert resp.status == 200
    assert issuer.fetches == before + 1


async def test_small_clock_skew_is_tolerated(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    now = int(time.time())
    token = issuer.token(IDENTITIES["news"], nbf=now + 2, iat=now + 2)
    async with client.get("/service", headers=bearer(token)) as resp:
        assert resp.status == 200, await resp.text()


async def test_scopes_come_from_scp_as_well(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    token = issuer.token(sub="svc", scp=["tams-api/read"], groups=["news"])
    async with client.get("/flows", headers=bearer(token)) as resp:
        assert resp.status == 200
    async with client.put("/service/webhooks/x", json={}, headers=bearer(token)) as resp:
        assert resp.status == 403  # read only


async def test_bare_scope_names_in_a_token_grant_nothing(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    """A bare `admin` or `read` may be another API's scope at a shared identity provider."""
    token = issuer.token(sub="svc", scope="admin read openid", groups=["news"])
    async with client.get("/flows", headers=bearer(token)) as resp:
        assert resp.status == 403, await resp.text()
    async with client.get("/flow-delete-requests", headers=bearer(token)) as resp:
        assert resp.status == 403, await resp.text()


async def test_access_token_is_kept_in_the_next_page_link(
    client: aiohttp.ClientSession, issuer: TokenIssuer, world: World
) -> None:
    token = issuer.token(IDENTITIES["news"])
    params = {"access_token": token, "tag.marker": world.marker, "limit": "1"}
    async with client.get("/flows", params=params) as resp:
        assert resp.status == 200
        link = resp.headers["Link"]
    next_url = link[1 : link.index(">")]
    assert parse_qs(urlsplit(next_url).query)["access_token"] == [token]
    async with aiohttp.ClientSession() as anonymous, anonymous.get(next_url) as resp:
        assert resp.status == 200, await resp.text()


async def test_created_by_and_updated_by_name_the_principal(
    client: aiohttp.ClientSession, issuer: TokenIssuer
) -> None:
    flow = video_flow(tags={"auth_classes": ["news"]}, created_by="someone else")
    token = issuer.token(IDENTITIES["news"], sub="news-editor@example.com")
    async with client.put(f"/flows/{flow['id']}", json=flow, headers=bearer(token)) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    assert created["created_by"] == created["updated_by"] == "news-editor@example.com"
    editor = basic(IDENTITIES["archivist"])
    async with client.put(f"/flows/{flow['id']}/label", json="l", headers=editor) as resp:
        assert resp.status == 204
    async with client.get(f"/flows/{flow['id']}", headers=editor) as resp:
        changed = await resp.json()
    assert changed["created_by"] == "news-editor@example.com"
    assert changed["updated_by"] == "archivist"
    async with client.get(f"/sources/{flow['source_id']}", headers=editor) as resp:
        source = await resp.json()
    # The new source inherits the flow's classes and names its creator.
    assert source["tags"]["auth_classes"] == ["news"]
    assert source["created_by"] == "news-editor@example.com"


# --- OPTIONS and CORS -----------------------------------------------------------------------


async def test_options_needs_no_credentials_and_lists_the_methods(
    client: aiohttp.ClientSession, world: World
) -> None:
    origin = {"Origin": "https://tools.example.com", "Access-Control-Request-Method": "PUT"}
    async with client.options(f"/flows/{world.flows['news']['id']}", headers=origin) as resp:
        assert resp.status == 204
        assert set(resp.headers["Allow"].split(", ")) == {
            "GET",
            "HEAD",
            "PUT",
            "DELETE",
            "OPTIONS",
        }
        assert resp.headers["Access-Control-Allow-Origin"] == "https://tools.example.com"
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert "PUT" in resp.headers["Access-Control-Allow-Methods"]
    async with client.options("/nowhere") as resp:
        assert resp.status == 404
    # Another origin gets no CORS headers, but the methods still.
    other = {"Origin": "https://evil.example"}
    async with client.options("/flows", headers=other) as resp:
        assert resp.status == 204
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_headers_on_answers_to_an_allowed_origin_errors_included(
    client: aiohttp.ClientSession,
) -> None:
    origin = {"Origin": "https://tools.example.com"}
    async with client.get("/flows", headers=origin) as resp:
        assert resp.status == 401  # a browser script can read why
        assert resp.headers["Access-Control-Allow-Origin"] == "https://tools.example.com"
        exposed = resp.headers["Access-Control-Expose-Headers"]
        for name in ("Link", "X-Paging-NextKey", "X-Paging-Count", "WWW-Authenticate"):
            assert name in exposed
    headers = {**origin, **basic(IDENTITIES["reader"])}
    async with client.get("/flows", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "https://tools.example.com"


async def test_unknown_methods_on_known_paths_are_405_after_authentication(
    client: aiohttp.ClientSession,
) -> None:
    async with client.patch("/flows", json={}, headers=basic(IDENTITIES["reader"])) as resp:
        assert resp.status == 405
        allow = resp.headers["Allow"]
    # The same methods an OPTIONS request lists, OPTIONS included (RFC 9110 §10.2.1).
    async with client.options("/flows") as resp:
        assert resp.status == 204
        assert allow == resp.headers["Allow"] == "GET, HEAD, OPTIONS"


async def test_a_token_where_tokens_are_not_accepted_gets_the_basic_challenge(
    gateway_url: str,
) -> None:
    # The main test stack has Basic users and no token issuer: a 401 must name a scheme
    # that could succeed (RFC 9110 §11.6.1).
    async with aiohttp.ClientSession() as anonymous:
        headers = {"Authorization": "Bearer not.a.jwt"}
        async with anonymous.get(f"{gateway_url}/service", headers=headers) as resp:
            assert resp.status == 401
            challenges = resp.headers.getall("WWW-Authenticate")
            assert challenges == ['Basic realm="TAMS", charset="UTF-8"']
            assert "Bearer tokens are not accepted" in (await resp.json())["summary"]
