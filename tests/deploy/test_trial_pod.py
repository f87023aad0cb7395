"""The SQLite trial pod, rehearsed without Kubernetes.

The chart renders one pod running the five services; here each of its containers is started
as a process with exactly the command and environment the chart wrote, replacing only what the
cluster would supply: the broker and S3 addresses (a local tansu and SeaweedFS), the Secret's
values, the pod's /data volume (a temporary directory) and the ports (free ones; each port
moves together with the variable that sets it). The probes the chart declares must then
answer 200 on those ports, the API must refuse anonymous callers, and a write by a Basic user
from the Secret must travel gateway → Kafka → catalog → SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tams_runtime.passwords import hash_password
from tams_stack.credentials import basic_authorization
from tams_stack.ports import free_ports
from tams_stack.process import ManagedProcess, spawn
from tams_stack.stack import Stack
from tests.deploy.chart import SCENARIOS, SERVICES, Manifest, env_of, render

# tansu holds each group join for half the session timeout (INFRA-NOTES §1.5): keep it short.
FAST_GROUP_JOIN = {
    "TAMS_KAFKA_SESSION_TIMEOUT_MS": "2000",
    "TAMS_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
}


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker and an S3 server of this test's own (the shared ones carry other tests)."""
    stack = Stack(tmp_path_factory.mktemp("trial-infra"))
    try:
        stack.start_infrastructure()
        yield stack
    finally:
        stack.stop()


def _container_env(
    container: Manifest, infra: Stack, secret: dict[str, str], data_dir: Path, port: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "VAST_", "OTEL_"))}
    for name, entry in env_of(container).items():
        if "value" in entry:
            env[name] = entry["value"]
        else:
            env[name] = secret[entry["valueFrom"]["secretKeyRef"]["key"]]
    port_var = "TAMS_GATEWAY_PORT" if container["name"] == "gateway" else "TAMS_HTTP_PORT"
    assert env[port_var] == str(container["ports"][0]["containerPort"])
    env[port_var] = str(port)
    assert env["TAMS_DATA_DIR"] == "/data"
    env["TAMS_DATA_DIR"] = str(data_dir)
    env["TAMS_KAFKA_BOOTSTRAP_SERVERS"] = infra.env["TAMS_KAFKA_BOOTSTRAP_SERVERS"]
    env["TAMS_S3_ENDPOINT_URL"] = infra.env["TAMS_S3_ENDPOINT_URL"]
    env["TAMS_S3_PUBLIC_ENDPOINT_URL"] = infra.env["TAMS_S3_ENDPOINT_URL"]
    env.update(FAST_GROUP_JOIN)
    return env


async def _wait_for_probes(
    processes: dict[str, ManagedProcess], probes: dict[str, list[str]], timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    pending = {(name, url) for name, urls in probes.items() for url in urls}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while pending:
            for name, url in sorted(pending):
                assert processes[name].alive(), f"{name} exited:\n{processes[name].log_tail()}"
                try:
                    async with http.get(url) as resp:
                        if resp.status == 200:
                            pending.discard((name, url))
                except (aiohttp.ClientError, TimeoutError):
                    pass
            if pending and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{processes[n].log_tail()}" for n, _ in pending)
                pytest.fail(
                    f"probes still failing after {timeout:.0f}s: {sorted(pending)}\n{tails}"
                )
            if pending:
                await asyncio.sleep(0.1)


async def test_the_trial_pod_starts_passes_its_probes_and_takes_a_write(
    infra: Stack, tmp_path: Path
) -> None:
    assert infra.object_store is not None
    (deployment,) = render(SCENARIOS["trial"]).of_kind("Deployment")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == list(SERVICES)
    password = secrets.token_urlsafe(12)
    users = {"operator": {"password": hash_password(password), "scopes": ["admin"]}}
    secret = {
        "s3-access-key": infra.object_store.access_key,
        "s3-secret-key": infra.object_store.secret_key,
        "internal-token": secrets.token_urlsafe(24),
        "auth-users": json.dumps(users),
    }
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    processes: dict[str, ManagedProcess] = {}
    probes: dict[str, list[str]] = {}
    try:
        for container in containers:
            name = container["name"]
            command = [
                sys.executable if part == "python" else part for part in container["command"]
            ]
            processes[name] = spawn(
                name,
                command,
                env=_container_env(container, infra, secret, data_dir, ports[name]),
                cwd=data_dir,
                log_dir=tmp_path / "logs",
                stop_timeout=10.0,
            )
            probes[name] = [
                f"http://127.0.0.1:{ports[name]}{container[probe]['httpGet']['path']}"
                for probe in ("startupProbe", "livenessProbe", "readinessProbe")
                if probe in container
            ]
        await _wait_for_probes(processes, probes)

        gateway = f"http://127.0.0.1:{ports['gateway']}"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as anonymous,
            anonymous.get(f"{gateway}/service") as resp,
        ):
            assert resp.status == 401  # authentication is on in the pod too
        signed_in = {"Authorization": basic_authorization("operator", password)}
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), headers=signed_in
        ) as http:
            async with http.post(f"{gateway}/service", json={"name": "Trial pod"}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{gateway}/service") as resp:
                assert (await resp.json())["name"] == "Trial pod"
        # The five processes share the pod's volume: one SQLite database.
        assert (data_dir / "tams.db").is_file()
    finally:
        for process in reversed(list(processes.values())):
            process.stop()
