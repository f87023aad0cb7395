"""A service started while the broker cannot be reached: it waits for the broker (saying
so in its log) and comes up once the broker is back, instead of exiting into its
supervisor's restart back-off (Kubernetes' grows to five minutes)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from tams_stack.stack import Stack

from .helpers import eventually
from .test_observability import TcpProxy


async def test_a_service_started_while_the_broker_is_down_comes_up_once_it_is_back(
    tams_stack: Stack,
) -> None:
    # A forwarder to the broker, taken away: its address refuses connections until it is
    # started again on the same port.
    proxy = TcpProxy(f"tcp://{tams_stack.env['TAMS_KAFKA_BOOTSTRAP_SERVERS']}")
    await proxy.start()
    await proxy.stop()
    data_dir = Path(tempfile.mkdtemp(prefix="tams-broker-outage-"))
    stack = Stack(data_dir, external=True)
    stack.env = {
        **tams_stack.env,
        "TAMS_DATA_DIR": str(data_dir),
        "TAMS_KAFKA_TOPIC_PREFIX": f"s{uuid.uuid4().hex[:8]}",
        "TAMS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{proxy.port}",
    }
    try:
        gateway = stack.start_service("gateway").process

        async def waiting() -> bool:
            assert gateway.alive(), gateway.log_tail()
            return "the broker cannot be reached; waiting for it" in gateway.log_tail()

        await eventually(waiting, "the gateway to wait for the broker")
        await proxy.start()
        await stack.wait_ready(("gateway",), timeout=20)
        assert gateway.alive()
    finally:
        stack.stop()
        await proxy.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
