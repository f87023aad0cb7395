"""Configuration from environment variables, in one place (documented in .env.example).

Kafka consumer tuning lives here and nowhere else. tansu answers a waiting Fetch only when
`fetch_max_wait_ms` expires, so a small value is what keeps command round trips in
milliseconds; it also holds each group join for half the session timeout, so a short
session timeout keeps start-up and rebalances quick (INFRA-NOTES §1.5, §1.6).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tams_schema.topics import Topics


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "tams"
    events_topic: str | None = None
    command_partitions: int = Field(default=4, ge=1)
    events_partitions: int = Field(default=4, ge=1)
    # Low-latency consumer settings (see module docstring). The session defaults are Kafka's
    # own (Apache Kafka refuses sessions under `group.min.session.timeout.ms`, 6 s by
    # default); the local stack lowers them for tansu, where a join waits half the session.
    fetch_max_wait_ms: int = Field(default=5, ge=0)
    session_timeout_ms: int = Field(default=10000, gt=0)
    heartbeat_interval_ms: int = Field(default=3000, gt=0)
    max_poll_records: int = Field(default=500, ge=1)
    # The webhooks service's consumers (event delivery and webhook registrations) wait longer
    # on an empty fetch: a webhook called 50 ms later matters little, and a consumer polling
    # every 5 ms costs the broker and its service CPU that the media path needs.
    webhooks_fetch_max_wait_ms: int = Field(default=50, ge=0)
    # While no webhook wants any event, the webhooks service reads the events topic at most
    # this often, all of it and in order, only in larger and rarer fetches. With tansu each
    # read costs in proportion to all the topic holds (docs/benchmarks.md, "Sustained
    # registrations"). A webhook's first events may then wait up to this long.
    webhooks_idle_read_interval_ms: int = Field(default=1000, ge=0)
    # Command topics in epochs of this many seconds (0: off). Only for a broker that cannot
    # delete records, with one consumer per command topic: the local tansu (tams_runtime.epochs).
    command_epoch_s: float = Field(default=0, ge=0)
    # A command consumer that has read nothing for `quiet_after_ms` stops polling (0: never):
    # it fetches again when a gateway says it sent it a command (tams_runtime.replies), and
    # after `quiet_poll_ms` at the latest, for commands no gateway announces (services'
    # follow-ups). For tansu, which answers a waiting fetch only when the wait expires, so an
    # idle consumer polls it every `fetch_max_wait_ms`; Apache Kafka answers as soon as a
    # record arrives, and needs none of this.
    quiet_after_ms: int = Field(default=0, ge=0)
    quiet_poll_ms: int = Field(default=100, ge=1)
    # How long the gateway waits for a command's reply before answering 504.
    reply_timeout_s: float = Field(default=10.0, gt=0)
    # How long a service starting while the broker cannot be reached keeps trying before it
    # exits: under the chart's start-up probe (3 minutes), so an orchestrator's restart
    # back-off does not keep it down after the broker is back.
    start_wait_s: float = Field(default=120.0, ge=0)
    # On a graceful stop, a consumer first reads on until it has caught up (an empty fetch,
    # nothing left to commit), for at most this long (0: stop at once). For the local tansu,
    # which keeps its topics in memory: stopped in order (the gateway, the catalog, the
    # segments service, the webhooks service), each service then hands everything on before
    # the broker and what it holds go. On Apache Kafka what is not read stays for the next
    # start, and waiting would only slow a rollout.
    drain_on_stop_s: float = Field(default=0, ge=0, le=60)

    @field_validator("quiet_after_ms")
    @classmethod
    def _quiet_after_spans_wake_ups(cls, value: int) -> int:
        # A gateway wakes each topic at most every 10 ms; a woken consumer must read on
        # longer than that to find the commands sent meanwhile (tams_runtime.replies).
        if 0 < value < 20:
            raise ValueError("must be 0 (never rest) or at least 20")
        return value

    @model_validator(mode="after")
    def _heartbeats_within_the_session(self) -> KafkaSettings:
        # A member whose heartbeats come later than its session lasts is forever evicted.
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                f"TAMS_KAFKA_HEARTBEAT_INTERVAL_MS ({self.heartbeat_interval_ms}) must be less "
                f"than TAMS_KAFKA_SESSION_TIMEOUT_MS ({self.session_timeout_ms})"
            )
        return self

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, events_name=self.events_topic)

    def group_id(self, service: str) -> str:
        """A service's consumer group (`tams-catalog`): it follows the topic prefix, so two
        deployments with different prefixes can share a broker."""
        return f"{self.topic_prefix}-{service}"


class ReplySettings(BaseSettings):
    """Where a gateway listens for the services' replies to its commands (tams_runtime.replies).

    The services connect to the advertised address, so it must reach this gateway instance
    itself, not a load balancer in front of several: in Kubernetes, the pod's IP."""

    model_config = SettingsConfigDict(env_prefix="TAMS_REPLY_", extra="ignore")

    host: str = "127.0.0.1"
    # 0: a port the system chooses (one machine); a fixed one where a firewall needs it.
    port: int = Field(default=0, ge=0, le=65535)
    # Unset: `host`, or when that is every interface (0.0.0.0, ::), the address this
    # machine's name resolves to (a pod's or container's own IP).
    advertise_host: str | None = None


# How long an upload that started before its put_url expired may take to finish.
UPLOAD_ALLOWANCE_S = 900
# Presigned URLs are dated to the start of a window this long, so each lives up to this much
# longer than its timeout (tams_runtime.s3).
PRESIGNED_WINDOW_S = 60


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
    # Presigned URLs stay valid at least this long (30 s .. the min object timeout, which
    # `check_presigned_url_timeout` holds it to).
    presigned_url_timeout_s: int = Field(default=3600, ge=30)
    # Deploy-time tags of the default backend, as a JSON object (ADR 0055: an `auth_classes`
    # tag here limits who may use it under fine-grained authorisation).
    storage_tags: str | None = None
    # More storage backends, as a JSON array (tams_runtime.storage explains the format).
    extra_backends: str | None = None


class HttpSettings(BaseSettings):
    """Where a service's own HTTP server listens (/health, /ready, /metrics, internal API)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    # Each /ready dependency check (broker, store, S3) is given up after this long.
    ready_timeout_s: float = Field(default=2.0, gt=0)
    # An idle keep-alive connection is closed after this long (aiohttp's default is an hour).
    keepalive_timeout_s: float = Field(default=75.0, gt=0)


class ProcessSettings(BaseSettings):
    """How a service process runs."""

    model_config = SettingsConfigDict(env_prefix="TAMS_", extra="ignore")

    # uvloop (libuv) spends less CPU per socket event than asyncio's own loop: measured
    # 6-15% less CPU per segment registration over the whole stack (docs/benchmarks.md).
    # `asyncio` is there for platforms uvloop does not support and for debugging.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


class OutcomeSettings(BaseSettings):
    """How long recorded command outcomes are kept (tams_runtime.outcomes)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_COMMAND_", extra="ignore")

    # 0: kept for ever. Otherwise longer than any command can be read again: seconds after a
    # crash, but on Apache Kafka a group whose committed offsets expired reads again from the
    # oldest command its topic keeps. The local stack (tansu, command epochs deleted once
    # read) sets an hour.
    outcome_retention_s: float = Field(default=0, ge=0)
    # How often each service with a command consumer forgets the expired ones.
    outcome_prune_interval_s: float = Field(default=60, gt=0)


class AuthPolicySettings(BaseSettings):
    """Fine-grained authorisation policy (tams_runtime.authz), read by the gateway and the
    webhooks service. Neither set: fine-grained authorisation is off (scopes only)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_AUTH_", extra="ignore")

    # The policy as JSON, or a file holding it (the file wins).
    policy: str | None = None
    policy_file: str | None = None


class InternalSettings(BaseSettings):
    """The shared token internal service APIs require (the analytics service's API, which the
    gateway forwards to). Unset: those APIs refuse every request; probes stay open."""

    model_config = SettingsConfigDict(env_prefix="TAMS_INTERNAL_", extra="ignore")

    token: SecretStr | None = None


class WebhookSettings(BaseSettings):
    """Webhook delivery (the webhooks service) and webhook URL checks (the gateway)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_WEBHOOKS_", extra="ignore")

    # Networks (CIDRs, comma-separated) that receivers may be in although they are not public
    # addresses: e.g. `127.0.0.0/8,::1/128` for receivers on this machine. Cloud metadata
    # addresses are refused even when listed (tams_runtime.egress).
    allowed_networks: str = ""
    # Ports (comma-separated) refused even in those networks, to webhooks and to copies from
    # uncontrolled instances: the deployment's unauthenticated servers there (`tams up` lists
    # its broker's and its S3 server's admin ports, not the S3 API, whose presigned URLs
    # copies read).
    denied_ports: str = ""
    # One delivery attempt: time to connect, and time for the whole request and response.
    connect_timeout_s: float = Field(default=3.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    # A receiver's response body is read up to this size, then the connection is dropped.
    max_response_bytes: int = Field(default=65536, ge=0)
    # Attempts per delivery before the webhook goes to `error`, and the exponential backoff
    # between them (full jitter: a random wait up to min(retry_max_s, retry_base_s * 2^n)).
    max_attempts: int = Field(default=10, ge=1)
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    # First attempts in flight at once over all webhooks; retries and attempts to receivers
    # that failed last have a second pool this size.
    max_concurrent_deliveries: int = Field(default=128, ge=1)
    # Deliveries in flight at once to one webhook, each about a different flow or source (the
    # events of one flow, or of one source, still go one at a time, in order). 1: one event at
    # a time, in queue order.
    max_in_flight_per_webhook: int = Field(default=16, ge=1)
    # Events queued for one webhook and not yet delivered before it goes to `error`: a
    # receiver that answers 2xx, but slower than events come, would otherwise grow its queue
    # in the store without bound.
    max_backlog_events: int = Field(default=1_000_000, ge=1)
    # Fernet keys (comma-separated, newest first) sealing `api_key_value` in commands and at
    # rest; unset: stored as given. Generate one with
    # `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.
    secret_keys: str | None = None
    # How long a queued event's id is remembered after its last delivery, to drop redeliveries.
    event_retention_s: int = 86400


class SoftDeleteSettings(BaseSettings):
    """Soft delete of flows (docs/ext-soft-delete.md), read by the catalog (flow deletion).

    `retention_s` 0 (the default) is off: `DELETE /flows/{id}` deletes at once, as the spec
    has it. Above 0, a deleted flow is hidden and kept this long, then purged."""

    model_config = SettingsConfigDict(env_prefix="TAMS_SOFT_DELETE_", extra="ignore")

    retention_s: int = Field(default=0, ge=0)


class MediaSettings(BaseSettings):
    """Object lifetime and deletion, read by the gateway (to advertise), the catalog (flow
    deletion) and the segments service (segment deletion, garbage collection, copies)."""

    model_config = SettingsConfigDict(env_prefix="TAMS_MEDIA_", extra="ignore")

    # ADR 0044: objects allocated but never registered live at least this long (>= 5 min);
    # /service advertises it as `min_object_timeout`.
    min_object_timeout_s: int = Field(default=3600, ge=300)
    # Extra time before such an object is collected, for clocks and slow registrations.
    object_gc_grace_s: int = Field(default=300, ge=0)

    @property
    def upload_window_s(self) -> int:
        """How long after its allocation an object's bytes may still arrive: no put_url
        outlives the min object timeout plus the grace (`check_presigned_url_timeout`), and
        S3 checks a URL's expiry when an upload starts, so one started just in time gets
        `UPLOAD_ALLOWANCE_S` more to finish."""
        return self.min_object_timeout_s + self.object_gc_grace_s + UPLOAD_ALLOWANCE_S

    # An object no segment references any more stays (registered, its bytes in place) this
    # long before it is forgotten and its bytes deleted: a client modifying a segment deletes
    # it and writes it again (the spec's way), and the write must find its object. 0: at once.
    release_grace_s: float = Field(default=60.0, ge=0)
    # A DELETE touching at most this many segments finishes at once (204); more: 202 and a
    # deletion request that works in chunks of `delete_chunk_segments` (one transaction each).
    sync_delete_limit: int = Field(default=1000, ge=1)
    delete_chunk_segments: int = Field(default=250, ge=1)
    # A segment tag PUT or DELETE (docs/ext-segment-tags.md) may touch at most this many
    # segments (one transaction); a larger one is refused with 400.
    segment_tag_limit: int = Field(default=1000, ge=1, le=100_000)
    # A finished deletion request is kept this long after its last update (its `expiry`).
    deletion_request_retention_s: int = Field(default=86400, ge=0)
    # An unfinished deletion request not updated for this long is restarted (its step command
    # was lost, e.g. with a local broker's topics); given up as `error` after this many tries.
    deletion_resume_after_s: float = Field(default=30.0, gt=0)
    deletion_max_resumes: int = Field(default=10, ge=1)
    # How often the segments service's worker looks for object deletions, copies, expired
    # allocations and stalled deletion requests.
    worker_interval_s: float = Field(default=1.0, gt=0)
    # A worker holds a claimed byte deletion or copy this long before another may retry it.
    job_lease_s: float = Field(default=120.0, gt=0)
    # One S3 DeleteObjects call may take this long (a healthy server answers in well under a
    # second); a backend that never answers otherwise holds the deletions on every backend
    # for the S3 client's retries (minutes). Its jobs are tried again when their lease ends.
    delete_timeout_s: float = Field(default=20.0, gt=0)
    # Copies between endpoints are streamed in parts of this size (S3's minimum is 5 MiB).
    copy_part_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)
    # A copy that failed this many times is dropped (logged); deletions retry forever.
    copy_max_attempts: int = Field(default=10, ge=1)


def check_presigned_url_timeout(s3: S3Settings, media: MediaSettings) -> None:
    """ADR 0044: an allocated object outlives its presigned PUT URL, so an upload can never
    land after the object was collected. A URL lives its timeout and up to
    `PRESIGNED_WINDOW_S` more (tams_runtime.s3); an unregistered object, its timeout and the
    collector's grace. Raises ValueError when the settings break that."""
    url_lives_s = s3.presigned_url_timeout_s + PRESIGNED_WINDOW_S
    object_lives_s = media.min_object_timeout_s + media.object_gc_grace_s
    if s3.presigned_url_timeout_s > media.min_object_timeout_s or url_lives_s > object_lives_s:
        raise ValueError(
            f"TAMS_S3_PRESIGNED_URL_TIMEOUT_S ({s3.presigned_url_timeout_s}) must not exceed "
            f"TAMS_MEDIA_MIN_OBJECT_TIMEOUT_S ({media.min_object_timeout_s}), and with the "
            f"{PRESIGNED_WINDOW_S} s a presigned URL may outlive it, not "
            f"TAMS_MEDIA_MIN_OBJECT_TIMEOUT_S + TAMS_MEDIA_OBJECT_GC_GRACE_S "
            f"({object_lives_s}) either: an upload could land after its object was collected"
        )
