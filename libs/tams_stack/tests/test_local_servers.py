"""The local servers start on a remembered port, or on a new one when it has been taken."""

from __future__ import annotations

import socket
from pathlib import Path

from tams_stack.broker import start_broker


def test_the_broker_gives_up_a_taken_port_for_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        broker = start_broker(tmp_path, taken)
        try:
            assert broker.port != taken and broker.process.alive()
        finally:
            broker.stop()
