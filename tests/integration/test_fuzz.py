"""Fuzzing the gateway with Schemathesis, from the official OpenAPI document.

Schemathesis reads `TimeAddressableMediaStore.yaml` from the shared spec directory (never a
copy) and generates requests for every operation, valid and invalid. The gateway must never
answer 5xx, and every answer must match the spec: its JSON schema for that status, its content
type and its declared headers. It also checks that credentials are not ignored (a request
without them must be refused).

The fuzzer writes whatever the spec allows, so it runs against a stack of its own: its own
store, topics (prefix `fuzz`) and services, on the session's broker and S3 server, signed in
as that stack's local admin.

Bounded: `TAMS_FUZZ_EXAMPLES` examples per operation (default 5, under a minute here); set it
to a few hundred for a long run:

    TAMS_FUZZ_EXAMPLES=300 ./dev test tests/integration/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
)

from tams_stack.stack import Stack
from tams_stack.testing import find_tams_api_dir

EXAMPLES = int(os.environ.get("TAMS_FUZZ_EXAMPLES", "5"))
SPEC = find_tams_api_dir() / "TimeAddressableMediaStore.yaml"
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
    ignored_auth,
]

schema = schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def fuzz_stack(tams_infra: Stack) -> Iterator[Stack]:
    """The services on their own store and topics, sharing the session's broker and S3."""
    env = tams_infra.env
    shared = {
        name: env[name]
        for name in (
            "TAMS_KAFKA_BOOTSTRAP_SERVERS",
            "TAMS_S3_ENDPOINT_URL",
            "TAMS_S3_ACCESS_KEY",
            "TAMS_S3_SECRET_KEY",
            "TAMS_KAFKA_SESSION_TIMEOUT_MS",
            "TAMS_KAFKA_HEARTBEAT_INTERVAL_MS",
            "TAMS_WEBHOOKS_ALLOWED_NETWORKS",
        )
    }
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="tams-fuzz-")),
        external=True,
        extra_env={**shared, "TAMS_KAFKA_TOPIC_PREFIX": "fuzz", "TAMS_LOG_LEVEL": "WARNING"},
    )
    try:
        stack.start_infrastructure()
        asyncio.run(stack.start_services(("catalog", "segments", "webhooks", "gateway")))
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def fuzz_session(fuzz_stack: Stack) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(fuzz_stack.client_headers())
        yield session


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_gateway_answers_every_request_as_the_spec_says(
    case: Case, fuzz_stack: Stack, fuzz_session: requests.Session
) -> None:
    case.call_and_validate(
        base_url=fuzz_stack.gateway_url, session=fuzz_session, checks=CHECKS, timeout=30
    )
