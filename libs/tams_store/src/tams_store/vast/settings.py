"""Where the VAST Database is and how patiently to talk to it (env `VAST_*`)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class VastSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VAST_", extra="ignore")

    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    bucket: str = ""
    # A schema path inside the bucket; nested schemas are written "a/b".
    schema_name: str = Field(
        default="tams", validation_alias=AliasChoices("VAST_SCHEMA", "schema_name")
    )
    # CNode URLs that queries go to directly (comma-separated). Empty: the endpoint itself.
    # Set them where the cluster's VIPs are not routable (containers, NAT, tunnels).
    data_endpoints: str = ""
    ssl_verify: bool = True
    # Every HTTP request: seconds to connect and to wait for a response (never unbounded).
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    # The SDK's own retries of idempotent requests (GET/HEAD, SlowDown).
    request_max_tries: int = 4
    request_max_time_s: float = 20.0
    # How long start-up keeps trying to reach the cluster before the service gives up.
    open_timeout_s: float = 120.0
    # Whole-transaction retries on Conflict and transient failures, with full jitter.
    tx_attempts: int = 6
    tx_backoff_base_s: float = 0.05
    tx_backoff_max_s: float = 2.0
    # Thread pool sizes (each thread owns one Session): readers, and the writer threads.
    readers: int = 4
    writers: int = 1
    # Query splits for listing scans (segment windows and lookups always use one).
    scan_splits: int = 1
    sub_splits: int = 4

    @field_validator("readers", "writers", "tx_attempts", "request_max_tries", "scan_splits")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @property
    def data_endpoint_list(self) -> list[str]:
        listed = [e.strip() for e in self.data_endpoints.split(",") if e.strip()]
        return listed or [self.endpoint]

    def missing(self) -> list[str]:
        """The required variables that are not set."""
        required = {
            "VAST_ENDPOINT": self.endpoint,
            "VAST_ACCESS_KEY": self.access_key,
            "VAST_SECRET_KEY": self.secret_key,
            "VAST_BUCKET": self.bucket,
        }
        return [name for name, value in required.items() if not value]
