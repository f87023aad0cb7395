"""A data directory's stack listens where it listened last time, unless the port was taken."""

from __future__ import annotations

import socket
from pathlib import Path

from tams_stack.ports import RememberedPorts, free_port, free_port_pair, port_is_free


def test_a_remembered_port_is_offered_again_while_it_is_free(tmp_path: Path) -> None:
    port = free_port()
    RememberedPorts(tmp_path).keep("s3", port)
    assert RememberedPorts(tmp_path).get("s3") == port
    assert RememberedPorts(tmp_path).get("kafka") is None


def test_a_port_another_program_listens_on_is_given_up(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        RememberedPorts(tmp_path).keep("s3", other.getsockname()[1])
        assert RememberedPorts(tmp_path).get("s3") is None


def test_a_damaged_file_is_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "ports.json").write_text('{"s3": "not a port", "kafka": 70000')
    assert RememberedPorts(tmp_path).get("kafka") is None
    (tmp_path / "ports.json").write_text('{"s3": "not a port", "kafka": 70000}')
    assert RememberedPorts(tmp_path).ports == {}


def test_a_pair_of_free_ports_a_fixed_distance_apart() -> None:
    port = free_port_pair(10000)
    assert port_is_free(port) and port_is_free(port + 10000)
    assert free_port_pair(10000, avoid=frozenset({port})) != port
