"""Analytics configuration (environment variables, documented in .env.example)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_ANALYTICS_", extra="ignore")

    default_page_limit: int = 100
    max_page_limit: int = 1000
    # Gaps listed per flow by time-range-analysis unless `gap_limit` says otherwise.
    default_gap_limit: int = 100
    max_gap_limit: int = 10000
    # How often the store-wide gauges (tams_catalog_*, tams_stored_*) are refreshed.
    gauge_interval_s: float = 15.0
