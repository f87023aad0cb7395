"""Authentication settings of the gateway (environment variables `TAMS_AUTH_*`, documented in
.env.example and docs/security.md). The fine-grained policy is `TAMS_AUTH_POLICY`
(tams_runtime.settings.AuthPolicySettings), shared with the webhooks service."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_AUTH_", extra="ignore")

    # Authentication is on unless this is explicitly true (logged loudly at start).
    disabled: bool = False
    # The realm named in `WWW-Authenticate` challenges.
    realm: str = "TAMS"
    # OAuth scopes are `<prefix>read|write|delete|admin` (AppNote 0016: `tams-api/`).
    scope_prefix: str = "tams-api/"

    # --- HTTP Basic: users with scrypt hashes (`tams hash-password`), scopes and groups, as
    # JSON `{"alice": {"password": "scrypt:...", "scopes": ["read"], "groups": ["news"]}}`,
    # inline or in a file (both: merged, the file's entries win).
    users: SecretStr | None = None
    users_file: str | None = None
    # Verified Basic credentials are remembered this long (a scrypt check costs ~50 ms).
    basic_cache_s: float = Field(default=300.0, ge=0)

    # --- Bearer JWTs (also as `?access_token=`): verified against a JWKS URL or a static
    # public key (PEM, inline or in a file). Issuer and audience are required with either.
    jwt_jwks_url: str | None = None
    jwt_public_key: SecretStr | None = None
    jwt_public_key_file: str | None = None
    # With a static key: the `kid` tokens must carry (unset: any or none).
    jwt_key_id: str | None = None
    jwt_issuer: str | None = None
    # Accepted audiences, comma-separated; a token must name one of them in `aud`.
    jwt_audience: str | None = None
    jwt_algorithms: str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA"
    # Clock skew allowed on `exp`, `nbf` and `iat`.
    jwt_leeway_s: float = Field(default=30.0, ge=0, le=300)
    # Claim holding the caller's name (`created_by`) and its groups (a list, or one
    # space/comma-separated string); a dotted path reaches into objects (`realm_access.roles`).
    jwt_name_claim: str = "sub"
    jwt_groups_claim: str = "groups"
    # The JWKS is cached this long; an unknown `kid` refetches it, at most this often.
    jwks_cache_s: float = Field(default=3600.0, gt=0)
    jwks_min_refresh_s: float = Field(default=30.0, ge=0)
    jwks_timeout_s: float = Field(default=5.0, gt=0)

    @property
    def audiences(self) -> list[str]:
        return [a.strip() for a in (self.jwt_audience or "").split(",") if a.strip()]

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def jwt_configured(self) -> bool:
        return bool(self.jwt_jwks_url or self.jwt_public_key or self.jwt_public_key_file)
