"""The gate every API request passes: who is asking (Basic, Bearer or `?access_token=`), may
they call this route at all (scopes), and are they within their rate.

Any one scheme per request (checklist §6.1). Missing or bad credentials: 401 with a JSON error
and `WWW-Authenticate` challenges for the schemes this gateway accepts. A known route without
the scope it needs: 403. The probes (/health, /ready, /metrics) and OPTIONS (answered by the
CORS middleware before this one) need no credentials. With `TAMS_AUTH_DISABLED=true` nobody is
asked for anything and requests carry no principal.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field

from aiohttp import web

from tams_gateway.auth.basic import BasicAuthenticator, load_users
from tams_gateway.auth.bearer import BearerAuthenticator, KeysUnavailable, TokenRejected
from tams_gateway.auth.ratelimit import RateLimiter, retry_after
from tams_gateway.auth.scopes import required_scopes
from tams_gateway.auth.settings import AuthSettings
from tams_gateway.errors import ApiError, Handler
from tams_runtime.authz import AccessPolicy
from tams_runtime.http import PROBE_PATHS
from tams_schema.auth import Principal

log = logging.getLogger(__name__)

PRINCIPAL = "principal"


@dataclass
class Gate:
    """Authentication, coarse authorisation and rate limits, and the fine-grained policy."""

    settings: AuthSettings = field(default_factory=lambda: AuthSettings(disabled=True))
    policy: AccessPolicy = field(default_factory=AccessPolicy.off)
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0, 1))
    basic: BasicAuthenticator | None = None
    bearer: BearerAuthenticator | None = None

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, policy: AccessPolicy, limiter: RateLimiter
    ) -> Gate:
        basic = BasicAuthenticator(load_users(settings), settings.basic_cache_s)
        bearer = BearerAuthenticator(settings) if settings.jwt_configured else None
        gate = cls(settings, policy, limiter, basic if basic.enabled else None, bearer)
        gate.announce()
        return gate

    @property
    def disabled(self) -> bool:
        return self.settings.disabled

    def announce(self) -> None:
        if self.disabled:
            log.critical(
                "AUTHENTICATION IS DISABLED (TAMS_AUTH_DISABLED=true): anyone who can reach "
                "this gateway can read, change and delete everything in the store"
            )
            return
        if self.basic is None and self.bearer is None:
            log.error(
                "no Basic users and no JWT issuer configured: every API request will be "
                "refused (set TAMS_AUTH_USERS(_FILE) or TAMS_AUTH_JWT_*; docs/security.md)"
            )
        log.info(
            "authentication on",
            extra={
                "basic_users": len(self.basic.users) if self.basic else 0,
                "jwt": self.bearer is not None,
                "fine_grained": self.policy.enabled,
                "rate_limit_per_s": self.limiter.rate,
            },
        )

    # --- authentication ------------------------------------------------------------------

    def challenges(self, bearer_error: str | None = None) -> list[tuple[str, str]]:
        """The schemes this gateway accepts (RFC 9110 §11.6.1). After a rejected token only
        the Bearer one, with why, so that a browser does not prompt for a Basic login."""
        realm = self.settings.realm.replace('"', "")
        found: list[tuple[str, str]] = []
        if self.basic is not None and bearer_error is None:
            found.append(("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"'))
        if self.bearer is not None:
            challenge = f'Bearer realm="{realm}"'
            if bearer_error is not None:
                challenge += f', error="invalid_token", error_description="{bearer_error}"'
            found.append(("WWW-Authenticate", challenge))
        return found

    def unauthorized(self, summary: str, bearer_error: str | None = None) -> ApiError:
        return ApiError(401, "Unauthorized", summary, self.challenges(bearer_error))

    async def authenticate(self, request: web.Request) -> Principal:
        headers = request.headers.getall("Authorization", [])
        if len(headers) > 1:
            # A proxy in front that checks another one of them than this would disagree
            # with this server about who is asking.
            raise self.unauthorized("more than one Authorization header")
        header = headers[0] if headers else None
        if header is not None:
            scheme, _, credentials = header.strip().partition(" ")
            if scheme.lower() == "basic":
                return await self._basic(credentials.strip())
            if scheme.lower() == "bearer":
                return await self._bearer(credentials.strip())
            # Named up to any whitespace and briefly: what follows may be credentials.
            shown = scheme.split(maxsplit=1)[0][:20] if scheme.strip() else ""
            raise self.unauthorized(f"authorization scheme {shown!r} is not accepted")
        token = request.query.get("access_token")
        if token is not None:
            return await self._bearer(token)
        raise self.unauthorized(
            "authentication required: send Basic credentials, a Bearer token or access_token"
        )

    async def _basic(self, credentials: str) -> Principal:
        if self.basic is None:
            raise self.unauthorized("Basic authentication is not enabled here")
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise self.unauthorized("malformed Basic credentials") from exc
        name, colon, password = decoded.partition(":")
        if not colon:
            raise self.unauthorized("malformed Basic credentials")
        principal = await self.basic.authenticate(name, password)
        if principal is None:
            raise self.unauthorized("wrong user name or password")
        return principal

    async def _bearer(self, token: str) -> Principal:
        if self.bearer is None:
            raise self.unauthorized("Bearer tokens are not accepted here")
        try:
            return await self.bearer.authenticate(token)
        except TokenRejected as exc:
            raise self.unauthorized(str(exc), str(exc).replace('"', "'")) from exc
        except KeysUnavailable as exc:
            raise ApiError(503, "ServiceUnavailable", str(exc)) from exc

    # --- rate limits -----------------------------------------------------------------------

    def throttle(self, key: str) -> None:
        self._refuse_for(self.limiter.take(key))

    def refuse_while_throttled(self, key: str) -> None:
        """429 while `key`'s bucket is empty, spending nothing: credentials are then not
        even checked, so a guesser learns nothing from the answers."""
        self._refuse_for(self.limiter.wait(key))

    @staticmethod
    def _refuse_for(wait: float) -> None:
        if wait > 0:
            raise ApiError(
                429,
                "TooManyRequests",
                f"too many requests; retry in {wait:.1f} s",
                [("Retry-After", retry_after(wait))],
            )


GATE = web.AppKey("gate", Gate)


def route_of(request: web.Request) -> str | None:
    """The matched route template (`/flows/{flow_id}`), None for unknown paths and methods."""
    match = request.match_info
    if match.http_exception is not None:
        return None
    resource = match.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    gate = request.app[GATE]
    if gate.disabled or request.path in PROBE_PATHS:
        return await handler(request)
    # Failed attempts count against the client's address, which slows password guessing:
    # while its bucket is empty, no credentials from it are checked at all.
    address = f"address:{request.remote}"
    gate.refuse_while_throttled(address)
    try:
        principal = await gate.authenticate(request)
    except ApiError as exc:
        if exc.status == 401:
            gate.throttle(address)
        raise
    gate.throttle(f"principal:{principal.name}")
    request[PRINCIPAL] = principal
    route = route_of(request)
    if route is not None:
        needed = required_scopes(request.method, route)
        if needed and not principal.has_scope(*needed):
            # Named as a user file gives them, and as an OAuth token carries them.
            prefix = gate.settings.scope_prefix
            names = " or ".join(f"{s} ({prefix}{s})" if prefix else s for s in needed)
            raise ApiError(403, "Forbidden", f"{request.method} {route} needs scope {names}")
    return await handler(request)


def principal_of(request: web.Request) -> Principal | None:
    """The authenticated caller; None when authentication is disabled."""
    principal = request.get(PRINCIPAL)
    return principal if isinstance(principal, Principal) else None
