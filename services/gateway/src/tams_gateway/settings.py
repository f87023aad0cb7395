"""Gateway configuration (environment variables, documented in .env.example)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The URL clients use to reach the gateway; used for absolute `Link`/`Location` headers.
    public_url: str | None = None
    service_type: str = "urn:x-tams:service.tams-kafka"
    service_version: str | None = None
    default_page_limit: int = Field(default=100, ge=1)
    max_page_limit: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    # The HLS extension (docs/ext-hls.md): a playlist holds at most this many segments;
    # more is a 400 asking for a narrower timerange.
    playlist_max_segments: int = Field(default=10_000, ge=1)
    # How long a playlist's presigned URLs stay valid (at least TAMS_S3_PRESIGNED_URL_TIMEOUT_S).
    # A player fetches a VOD playlist once and its segments as it plays, so the URLs must
    # outlive the playback: 6 h covers the longest playlist at the default cap (10,000
    # two-second segments, 5.6 h). SigV4 allows at most 7 days (minus a minute of signing window).
    playlist_url_timeout_s: int = Field(default=6 * 3600, ge=1, le=7 * 24 * 3600 - 60)
    # The analytics service's own HTTP address; /analytics/* is forwarded there.
    analytics_url: str | None = None
    # How long a forwarded analytics request may take before the gateway answers 504.
    analytics_timeout_s: float = Field(default=10.0, gt=0)
    # A request body must arrive within this time (a slow sender gets 408), and an idle
    # keep-alive connection is closed after `keepalive_timeout_s`.
    body_timeout_s: float = Field(default=30.0, gt=0)
    keepalive_timeout_s: float = Field(default=75.0, gt=0)
    # CORS: origins allowed to call the API from a browser (comma-separated, `*` for any;
    # empty: no CORS headers), the request headers they may send, how long a preflight is
    # cached, and whether credentialed requests (cookies, browser Basic prompts) are allowed.
    cors_origins: str = ""
    cors_allow_headers: str = "Authorization, Content-Type"
    cors_max_age_s: int = Field(default=600, ge=0)
    cors_allow_credentials: bool = False
    # Per-principal rate limit: requests per second on average with bursts of `burst`
    # (0: no limit). Failed authentications count against the client address.
    rate_limit_per_s: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)

    @field_validator("public_url", "analytics_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The value is not repeated: it may hold credentials.
            raise ValueError("must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _default_page_within_max(self) -> GatewaySettings:
        # A maximum set below the default (100) lowers the default with it.
        self.default_page_limit = min(self.default_page_limit, self.max_page_limit)
        return self
