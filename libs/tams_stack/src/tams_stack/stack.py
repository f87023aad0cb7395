"""The whole local stack: broker, S3 server and the five services, as processes.

`tams up` and the test harness both use `Stack`, so the tests exercise exactly what a user
runs. With `external=True` the broker and S3 come from the environment and only the
services are started.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tams_runtime.bus import ensure_topics
from tams_runtime.settings import KafkaSettings, S3Settings
from tams_stack.broker import Broker, start_broker
from tams_stack.credentials import LocalAdmin, basic_authorization, local_auth_env
from tams_stack.objectstore import ObjectStore, start_object_store
from tams_stack.ports import RememberedPorts, free_port, port_is_free
from tams_stack.process import ManagedProcess, spawn

SERVICES = ("catalog", "segments", "webhooks", "analytics", "gateway")
STOP_ORDER = ("gateway", "catalog", "segments", "webhooks", "analytics")


def local_buckets(env: dict[str, str]) -> list[str]:
    """The buckets to create on the local S3 server: the default backend's and those of the
    extra backends (`TAMS_S3_EXTRA_BACKENDS`) that do not name an endpoint of their own."""
    buckets = [env.get("TAMS_S3_BUCKET") or S3Settings.model_fields["bucket"].default]
    for entry in json.loads(env.get("TAMS_S3_EXTRA_BACKENDS") or "[]"):
        if "endpoint_url" not in entry and entry["bucket"] not in buckets:
            buckets.append(entry["bucket"])
    return buckets


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def ensure_gateway_port_free(port: int) -> None:
    """Another program on the gateway's port would answer for this stack, readiness
    included: refuse to start (or restart) the gateway there."""
    if not port_is_free(port):
        raise RuntimeError(
            f"the gateway's port {port} is in use: stop what holds it, or use --port"
        )


@dataclass(frozen=True)
class Exited:
    """A process of the stack that is no longer running."""

    what: str  # for people: "service segments", "the S3 server"
    service: str | None  # the service's name; None for the broker and the S3 server
    how: str  # "exit code 1", "killed by SIGKILL"
    log_tail: str


@dataclass
class Stack:
    data_dir: Path
    gateway_port: int | None = None
    external: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: Broker | None = None
    object_store: ObjectStore | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # The local admin user `tams up` creates (None when authentication is configured or off).
    admin: LocalAdmin | None = None
    # Listen where this data directory's stack listened last time (`tams up`); tests and
    # benchmarks take any free port.
    remember_ports: bool = False
    _ports: RememberedPorts | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Every process started here runs in a directory of its own: a relative path (`tams
        # up`'s default `.tams-data`) would mean something else to each.
        self.data_dir = self.data_dir.resolve()

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].url

    def client_headers(self) -> dict[str, str]:
        """Headers signing an API client in as the local admin (none: authentication is
        configured some other way, or off)."""
        if self.admin is None:
            return {}
        return {"Authorization": basic_authorization(self.admin.user, self.admin.password)}

    def start_infrastructure(self) -> None:
        """Start tansu and SeaweedFS (unless external) and work out the services' env."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_HTTP_")}
        env.update(self.extra_env)
        env.setdefault("TAMS_DATA_DIR", str(self.data_dir))
        if not self.external:
            # tansu holds each group join for half the session timeout (INFRA-NOTES §1.5);
            # the production defaults (10 s) would add 5 s per consumer group to start-up.
            env.setdefault("TAMS_KAFKA_SESSION_TIMEOUT_MS", "3000")
            env.setdefault("TAMS_KAFKA_HEARTBEAT_INTERVAL_MS", "1000")
            # One partition per topic. Every fetch that returns data makes tansu list every
            # batch stored in each partition it reads, so its CPU per fetch grows with what
            # the topics hold; one partition turns each produce into one stored batch instead
            # of up to four. Under sustained load that halves the broker's growth
            # (docs/benchmarks.md, "Sustained registrations"). One instance of each service
            # runs here, so no consumer needs a partition of its own.
            env.setdefault("TAMS_KAFKA_COMMAND_PARTITIONS", "1")
            env.setdefault("TAMS_KAFKA_EVENTS_PARTITIONS", "1")
            # For the same reason the command topics come in 2-second epochs, each deleted
            # once read (tams_runtime.epochs), so a fetch lists a few seconds of commands.
            # Shorter than 5 s for clients that send independently, whose commands each
            # make a batch of their own (docs/benchmarks.md, "Paced single POSTs").
            env.setdefault("TAMS_KAFKA_COMMAND_EPOCH_S", "2")
            # tansu answers a waiting fetch only when its wait expires, so an idle command
            # consumer polls it 200 times a second; instead it rests after 100 ms without a
            # command, until a gateway wakes it (tams_runtime.replies) or 100 ms pass.
            env.setdefault("TAMS_KAFKA_QUIET_AFTER_MS", "100")
            # Command epochs are deleted once read: an applied command is read again only
            # until its offset is committed, so its outcome can go after an hour
            # (tams_runtime.outcomes).
            env.setdefault("TAMS_COMMAND_OUTCOME_RETENTION_S", "3600")
            # tansu keeps its topics in memory: on a graceful stop each service reads on
            # until it has caught up, so that what it was handed is not lost with the
            # broker (`stop`, below, stops them in the order the records flow).
            # 3 s: the webhooks service drains its two consumers in turn, well within the
            # 10 s a service is given to stop.
            env.setdefault("TAMS_KAFKA_DRAIN_ON_STOP_S", "3")
            self.broker = start_broker(self.data_dir, self._remembered("kafka"))
            buckets = local_buckets(env)
            s3_port = self._remembered("s3")
            try:
                self.object_store = start_object_store(self.data_dir, buckets, s3_port=s3_port)
            except RuntimeError:
                if s3_port is None:
                    raise
                # Taken since it was found free: a new port, as if it had been taken before.
                self.object_store = start_object_store(self.data_dir, buckets)
            self._remember("kafka", self.broker.port)
            self._remember("s3", self.object_store.port)
            env["TAMS_KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap
            env["TAMS_S3_ENDPOINT_URL"] = self.object_store.endpoint
            env["TAMS_S3_ACCESS_KEY"] = self.object_store.access_key
            env["TAMS_S3_SECRET_KEY"] = self.object_store.secret_key
            # On one machine, webhook receivers are usually on this machine too; but never
            # the broker or the S3 server's other ports (weed's master and filer APIs have no
            # authentication: a webhook there could delete every object). The S3 API itself
            # checks signatures, and copies read presigned URLs of it (an object registered
            # with only an uncontrolled instance there is copied in from it).
            env.setdefault("TAMS_WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
            internal = {self.broker.port, *self.object_store.ports} - {self.object_store.port}
            env["TAMS_WEBHOOKS_DENIED_PORTS"] = ",".join(str(p) for p in sorted(internal))
        self.admin = local_auth_env(env, self.data_dir)
        self.env = env

    def _remembered(self, name: str) -> int | None:
        if not self.remember_ports:
            return None
        if self._ports is None:
            self._ports = RememberedPorts(self.data_dir)
        return self._ports.get(name)

    def _remember(self, name: str, port: int) -> None:
        if self._ports is not None:
            self._ports.keep(name, port)

    def kafka_settings(self) -> KafkaSettings:
        """The services' Kafka settings (those in `env`, not only this process's own)."""
        prefix = "TAMS_KAFKA_"
        values: dict[str, Any] = {
            k[len(prefix) :].lower(): v for k, v in self.env.items() if k.startswith(prefix)
        }
        return KafkaSettings(**values)

    async def start_services(self, names: tuple[str, ...] = SERVICES) -> None:
        await ensure_topics(self.kafka_settings())
        for name in names:
            self.start_service(name)
        await self.wait_ready(names)

    def start_service(self, name: str) -> ServiceProcess:
        env = dict(self.env)
        if name == "gateway":
            port = self.gateway_port or free_port()
            ensure_gateway_port_free(port)
            env["TAMS_GATEWAY_PORT"] = str(port)
            # The gateway forwards /analytics/* there (SERVICES starts analytics first).
            if "analytics" in self.services:
                env["TAMS_GATEWAY_ANALYTICS_URL"] = self.services["analytics"].url
        else:
            port = self._remembered(name) or free_port()
            env["TAMS_HTTP_PORT"] = str(port)
            self._remember(name, port)
        process = spawn(
            name,
            [sys.executable, "-m", f"tams_{name}"],
            env=env,
            cwd=self.data_dir,
            log_dir=self.data_dir / "logs",
            stop_timeout=10.0,
        )
        service = ServiceProcess(name, port, process)
        self.services[name] = service
        return service

    async def wait_ready(self, names: tuple[str, ...], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while pending:
                for name in sorted(pending):
                    service = self.services[name]
                    if not service.process.alive():
                        raise RuntimeError(f"service {name} exited:\n{service.process.log_tail()}")
                    try:
                        async with http.get(f"{service.url}/ready") as resp:
                            if resp.status == 200:
                                pending.discard(name)
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                if pending and time.monotonic() > deadline:
                    tails = "\n".join(
                        f"--- {n}\n{self.services[n].process.log_tail()}" for n in pending
                    )
                    raise RuntimeError(
                        f"not ready after {timeout:.0f}s: {sorted(pending)}\n{tails}"
                    )
                if pending:
                    await asyncio.sleep(0.05)

    def exited(self) -> Exited | None:
        """The first process of the stack that is no longer running, if any."""
        parts = [("the Kafka broker (tansu)", self.broker), ("the S3 server", self.object_store)]
        for name, part in parts:
            if part is not None and not part.process.alive():
                return Exited(name, None, part.process.how_it_ended(), part.process.log_tail())
        for name, service in self.services.items():
            if not service.process.alive():
                process = service.process
                return Exited(f"service {name}", name, process.how_it_ended(), process.log_tail())
        return None

    async def restart_service(self, name: str) -> None:
        """Start a service that exited again, on its port, and wait until it is ready. The
        broker kept what the service had not read or committed, so nothing of it is lost."""
        self.stop_service(name)
        self.start_service(name)
        await self.wait_ready((name,))

    def stop_service(self, name: str) -> None:
        service = self.services.pop(name, None)
        if service is not None:
            service.process.stop()

    def stop(self) -> None:
        """Services first, in the order records mostly flow between them (the gateway makes
        commands; the catalog's events go through the segments service; the webhooks
        service takes the events), each reading on until it has caught up; then the broker,
        then S3. The one flow the other way, a flow deletion's last step sent by the segments
        service to the catalog, is not lost if the catalog has stopped: the deletion request
        is resumed at the next start."""
        for name in STOP_ORDER:
            self.stop_service(name)
        for name in reversed(list(self.services)):
            self.stop_service(name)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.object_store is not None:
            self.object_store.stop()
            self.object_store = None
