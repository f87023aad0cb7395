"""Gateway configuration (environment variables, documented in .env.example)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    # The URL clients use to reach the gateway; used for absolute `Link`/`Location` headers.
    public_url: str | None = None
    service_type: str = "urn:x-tams:service.tams-kafka"
    service_version: str | None = None
    default_page_limit: int = 100
    max_page_limit: int = 1000
    max_body_bytes: int = 16 * 1024 * 1024
    # The analytics service's own HTTP address; /analytics/* is forwarded there.
    analytics_url: str | None = None
    # How long a forwarded analytics request may take before the gateway answers 504.
    analytics_timeout_s: float = 10.0
