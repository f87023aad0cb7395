"""pytest plugin: the real stack, started once per test session.

Fixtures:
  tams_infra     broker + S3 server (tansu + SeaweedFS here; Apache Kafka + MinIO
                 containers when TAMS_TEST_INFRA=containers, or =auto and Docker answers)
  tams_stack     tams_infra plus the five services as processes, exactly as `tams up` runs
                 them, with authentication on (as users run it) and a local admin
  gateway_url    the gateway's base URL
  admin_headers  the local admin's Basic `Authorization` header
  http           an aiohttp client session for the test, signed in as the admin
  store          a fresh SQLite store in the test's own directory, opened (a test module
                 may define its own, seeded, `store` instead)

Children are started with PDEATHSIG, so they die with pytest even if it crashes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tams_stack.stack import Stack, local_buckets
from tams_store.sqlite import SqliteStore


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _infra_mode() -> str:
    mode = os.environ.get("TAMS_TEST_INFRA", "auto")
    if mode == "auto":
        try:
            import testcontainers  # noqa: F401
        except ImportError:
            return "local"
        return "containers" if _docker_answers() else "local"
    return mode


def _start_containers(stack: Stack) -> list[object]:
    """Apache Kafka and MinIO in containers; the stack then runs in external mode."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer

    kafka = KafkaContainer("apache/kafka:3.9.0").with_kraft()
    kafka.start()
    minio = MinioContainer("minio/minio:latest")
    minio.start()
    cfg = minio.get_config()
    stack.external = True
    stack.extra_env.update(
        {
            # Apache Kafka refuses group sessions under its `group.min.session.timeout.ms`
            # (6 s): the short sessions the tests give tansu would fail every group join.
            "TAMS_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "TAMS_KAFKA_HEARTBEAT_INTERVAL_MS": "2000",
            "TAMS_KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
            "TAMS_S3_ENDPOINT_URL": f"http://{cfg['endpoint']}",
            "TAMS_S3_ACCESS_KEY": cfg["access_key"],
            "TAMS_S3_SECRET_KEY": cfg["secret_key"],
        }
    )
    client = minio.get_client()
    for bucket in local_buckets({**os.environ, **stack.extra_env}):
        client.make_bucket(bucket)
    return [kafka, minio]


# Webhook receivers in tests listen on loopback; retries are quick so that failure paths
# (retry, then `error`) take a second or two. Key values are sealed, as in production.
WEBHOOK_TEST_ENV = {
    "TAMS_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    "TAMS_WEBHOOKS_MAX_ATTEMPTS": "4",
    "TAMS_WEBHOOKS_RETRY_BASE_S": "0.02",
    "TAMS_WEBHOOKS_RETRY_MAX_S": "0.1",
    "TAMS_WEBHOOKS_CONNECT_TIMEOUT_S": "1",
    "TAMS_WEBHOOKS_TIMEOUT_S": "1",
}


def _webhook_test_env() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {**WEBHOOK_TEST_ENV, "TAMS_WEBHOOKS_SECRET_KEYS": Fernet.generate_key().decode()}


ARCHIVE_BACKEND = {
    "id": "6c1f4d2a-8e3b-4f7a-9d21-5b0e7c3a9f14",
    "label": "archive",
    "bucket": "tams-archive",
}
TEST_RELEASE_GRACE_S = 2
TEST_SYNC_DELETE_LIMIT = 20
TEST_DELETE_CHUNK = 7
# A segment tag request may touch this many segments (docs/ext-segment-tags.md).
TEST_SEGMENT_TAG_LIMIT = 12
# An HLS playlist may hold this many segments (docs/ext-hls.md).
TEST_PLAYLIST_MAX_SEGMENTS = 8
# The fine-grained policy of the test stack (gateway and webhooks service). Resources without
# auth_classes allow everything, as before, and the local admin is unrestricted, so only the
# tests that tag resources with these classes see any difference (tests/integration/test_auth*).
AUTH_TEST_POLICY: dict[str, Any] = {
    "classes": {
        "news": {"news": ["read", "write", "delete"]},
        "sport": {"sport": ["read", "write", "delete"]},
        # News content shared read-only with sport.
        "news_ro": {"sport": ["read"]},
        # Interns may change, but not read, what carries this class.
        "desk_write": {"interns": ["write"]},
        # Copy editors read and change, never delete.
        "copyedit": {"copyeds": ["read", "write"]},
        "copyedit_full": {"copyeds": ["read", "write", "delete"]},
        "public": {"*": ["read"]},
        "archive": {"archivists": ["read", "write"]},
    },
    "unclassified": ["read", "write", "delete"],
}


@pytest.fixture(scope="session")
def tams_infra() -> Iterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="tams-test-"))
    stack = Stack(
        data_dir,
        extra_env={
            # Short group sessions: tansu holds each join for half of it (INFRA-NOTES §1.5).
            "TAMS_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "TAMS_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "TAMS_LOG_LEVEL": "INFO",
            **_webhook_test_env(),
            # A second storage backend (a second bucket on the same S3 server), for copies.
            "TAMS_S3_EXTRA_BACKENDS": json.dumps([ARCHIVE_BACKEND]),
            # Small deletions stay synchronous; a few dozen segments already go in chunks.
            "TAMS_MEDIA_SYNC_DELETE_LIMIT": str(TEST_SYNC_DELETE_LIMIT),
            "TAMS_MEDIA_DELETE_CHUNK_SEGMENTS": str(TEST_DELETE_CHUNK),
            "TAMS_MEDIA_SEGMENT_TAG_LIMIT": str(TEST_SEGMENT_TAG_LIMIT),
            "TAMS_GATEWAY_PLAYLIST_MAX_SEGMENTS": str(TEST_PLAYLIST_MAX_SEGMENTS),
            # Unreferenced objects are kept 2 s (not a minute) before they go.
            "TAMS_MEDIA_RELEASE_GRACE_S": str(TEST_RELEASE_GRACE_S),
            # The segments worker looks for work often, so tests wait little for it.
            "TAMS_MEDIA_WORKER_INTERVAL_S": "0.2",
            # Stalled deletion requests are restarted after a second, not half a minute.
            "TAMS_MEDIA_DELETION_RESUME_AFTER_S": "1",
            # Tests read the store-wide gauges soon after writing.
            "TAMS_ANALYTICS_GAUGE_INTERVAL_S": "1",
            "TAMS_AUTH_POLICY": json.dumps(AUTH_TEST_POLICY),
        },
    )
    containers: list[object] = []
    try:
        if _infra_mode() == "containers":
            containers = _start_containers(stack)
        stack.start_infrastructure()
        yield stack
    finally:
        stack.stop()
        for container in containers:
            container.stop()  # type: ignore[attr-defined]
        if os.environ.get("TAMS_KEEP_TEST_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tams_stack(tams_infra: Stack) -> Iterator[Stack]:
    asyncio.run(tams_infra.start_services())
    yield tams_infra


@pytest.fixture(scope="session")
def gateway_url(tams_stack: Stack) -> str:
    return tams_stack.gateway_url


@pytest.fixture(scope="session")
def admin_headers(tams_stack: Stack) -> dict[str, str]:
    headers = tams_stack.client_headers()
    assert headers, "the test stack runs with authentication and a local admin"
    return headers


@pytest_asyncio.fixture
async def http(
    gateway_url: str, admin_headers: dict[str, str]
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=gateway_url, timeout=aiohttp.ClientTimeout(total=30), headers=admin_headers
    ) as session:
        yield session


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    yield db
    await db.close()


def find_tams_api_dir() -> Path:
    """The official spec: $TAMS_API_DIR, else a `shared/tams-api` beside a parent directory."""
    env = os.environ.get("TAMS_API_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *Path.cwd().parents, *here.parents]:
        candidate = parent / "shared" / "tams-api"
        if (candidate / "TimeAddressableMediaStore.yaml").exists():
            return candidate
        candidate = parent.parent / "shared" / "tams-api"
        if (candidate / "TimeAddressableMediaStore.yaml").exists():
            return candidate
    raise FileNotFoundError("TAMS spec not found: set TAMS_API_DIR or put shared/tams-api beside")


class SpecValidator:
    """Validates response bodies against the official JSON schemas (never copied here)."""

    def __init__(self, api_dir: Path) -> None:
        import json

        from referencing import Registry, Resource

        self.api_dir = api_dir
        resources = []
        for path in sorted((api_dir / "schemas").glob("*.json")):
            contents = json.loads(path.read_text())
            resource = Resource.from_contents(contents, default_specification=_draft())
            # Schemas refer to each other by file name; the OpenAPI file by `schemas/<name>`.
            resources.append((path.name, resource))
            resources.append((f"schemas/{path.name}", resource))
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self._event_schemas: dict[str, Any] | None = None

    def validate(self, instance: object, schema_file: str) -> None:
        from jsonschema import Draft202012Validator

        schema = self.registry.contents(schema_file)
        Draft202012Validator(schema, registry=self.registry).validate(instance)

    def validate_list(self, instances: list[object], schema_file: str) -> None:
        for item in instances:
            self.validate(item, schema_file)

    def validate_event(self, payload: dict[str, Any]) -> None:
        """A TAMS event payload against the OpenAPI `webhooks:` entry of its event type."""
        from jsonschema import Draft202012Validator

        if self._event_schemas is None:
            import yaml

            spec = yaml.safe_load((self.api_dir / "TimeAddressableMediaStore.yaml").read_text())
            self._event_schemas = {
                name: hook["post"]["requestBody"]["content"]["application/json"]["schema"]
                for name, hook in spec["webhooks"].items()
            }
        schema = self._event_schemas[payload["event_type"]]
        Draft202012Validator(schema, registry=self.registry).validate(payload)


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


@pytest.fixture(scope="session")
def spec() -> SpecValidator:
    return SpecValidator(find_tams_api_dir())
