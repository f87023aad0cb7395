"""Analytics configuration (environment variables, documented in .env.example)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_ANALYTICS_", extra="ignore")

    default_page_limit: int = Field(default=100, ge=1)
    max_page_limit: int = Field(default=1000, ge=1)
    # Gaps listed per flow by time-range-analysis unless `gap_limit` says otherwise.
    default_gap_limit: int = Field(default=100, ge=0)
    max_gap_limit: int = Field(default=10000, ge=0)
    # How often the store-wide gauges (tams_catalog_*, tams_stored_*) are refreshed.
    gauge_interval_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> AnalyticsSettings:
        # A maximum set below its default lowers the default with it (as the gateway's page
        # limit does): a request that names no limit must not be refused for the default.
        self.default_page_limit = min(self.default_page_limit, self.max_page_limit)
        self.default_gap_limit = min(self.default_gap_limit, self.max_gap_limit)
        return self
