"""Configuration from environment variables, in one place (documented in .env.example).

Kafka consumer tuning lives here and nowhere else. tansu answers a waiting Fetch only when
`fetch_max_wait_ms` expires, so a small value is what keeps command round trips in
milliseconds; it also holds each group join for half the session timeout, so a short
session timeout keeps start-up and rebalances quick (INFRA-NOTES §1.5, §1.6).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from tams_schema.topics import Topics


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "tams"
    events_topic: str | None = None
    command_partitions: int = 4
    events_partitions: int = 4
    # Low-latency consumer settings (see module docstring).
    fetch_max_wait_ms: int = 5
    session_timeout_ms: int = 3000
    heartbeat_interval_ms: int = 1000
    max_poll_records: int = 500
    # How long the gateway waits for a command's reply before answering 504.
    reply_timeout_s: float = 10.0

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, events_name=self.events_topic)

    def group_id(self, service: str) -> str:
        """A service's consumer group (`tams-catalog`): it follows the topic prefix, so two
        deployments with different prefixes can share a broker."""
        return f"{self.topic_prefix}-{service}"


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_S3_", extra="ignore")

    endpoint_url: str = "http://127.0.0.1:8333"
    # The address clients use for presigned URLs when it differs from the internal one.
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""
    bucket: str = "tams-media"
    storage_id: str = "2f3c8fa4-0c57-4b33-a0b4-8e6a2ef0b6a1"
    storage_label: str = "local-s3"
    provider: str = "SeaweedFS"
    store_product: str = "SeaweedFS"
    # Presigned URLs stay valid at least this long (30 s .. the min object timeout).
    presigned_url_timeout_s: int = 3600
    # More storage backends, as a JSON array (tams_runtime.storage explains the format).
    extra_backends: str | None = None


class HttpSettings(BaseSettings):
    """Where a service's own HTTP server listens (/health, /ready, /metrics, internal API)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 0
    # Each /ready dependency check (broker, store, S3) is given up after this long.
    ready_timeout_s: float = 2.0
