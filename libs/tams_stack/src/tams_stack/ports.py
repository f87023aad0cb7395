"""Free loopback ports for the local servers."""

from __future__ import annotations

import json
import socket
from pathlib import Path


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (free at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, allocated while all are held open."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port_pair(offset: int, avoid: frozenset[int] = frozenset(), tries: int = 100) -> int:
    """A free port whose `port + offset` is free too (a server that derives a second port)."""
    for _ in range(tries):
        port = free_port()
        second = port + offset
        if second < 65536 and port_is_free(second) and not {port, second} & avoid:
            return port
    raise RuntimeError(f"found no free pair of ports {offset} apart")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. Servers set SO_REUSEADDR, so connections
    of an earlier run still in TIME_WAIT do not hold the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RememberedPorts:
    """The loopback ports a data directory's stack listened on last time (`ports.json`), so
    that a restart keeps its addresses: the S3 endpoint in the URLs a client was handed, a
    Kafka subscriber's bootstrap server, each service's /metrics. A port another program
    took meanwhile is given up for a new one."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "ports.json"
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            loaded = {}
        self.ports: dict[str, int] = {
            name: port
            for name, port in (loaded.items() if isinstance(loaded, dict) else ())
            if isinstance(port, int) and 0 < port < 65536
        }

    def get(self, name: str) -> int | None:
        """The port `name` had, when it is free now."""
        port = self.ports.get(name)
        return port if port is not None and port_is_free(port) else None

    def keep(self, name: str, port: int) -> None:
        self.ports[name] = port
        self.path.write_text(json.dumps(self.ports, indent=2, sort_keys=True) + "\n")
