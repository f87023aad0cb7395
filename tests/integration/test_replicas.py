"""Several replicas of a command service in one consumer group (production: no command epochs,
group rebalancing). A replica applying a fetch while the group rebalances must go on
consuming the partitions it keeps: the offsets of those it lost are not its to commit."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp

from tams_stack.stack import Stack

from .helpers import eventually, put_flow, send_json, video_flow
from .standalone import standalone

GROUP_MODE = {
    "TAMS_KAFKA_COMMAND_EPOCH_S": "0",
    "TAMS_KAFKA_QUIET_AFTER_MS": "0",
    "TAMS_KAFKA_COMMAND_PARTITIONS": "4",
    # The first writes wait while a replica starts and joins the group.
    "TAMS_KAFKA_REPLY_TIMEOUT_S": "30",
}


async def _commands_fetched(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(f"{url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("tams_command_queue_seconds_count") and "segments" in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_replica_mid_apply_during_a_rebalance_keeps_consuming(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    async with (
        standalone(tams_stack, ("catalog", "segments", "gateway"), GROUP_MODE) as stack,
        aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        aiohttp.ClientSession() as probes,
    ):
        flows = [video_flow() for _ in range(8)]  # flows on every partition, most likely
        for flow in flows:
            await put_flow(http, flow)
        first = stack.services["segments"]
        # The catalog's events reach the segments service as commands too (a flows/created
        # and a sources/created per flow): once they are in, the next ones are ours.
        before = 2 * len(flows)
        await eventually(
            lambda: _fetched_all(probes, first.url, before), "the catalog's relayed events"
        )

        # The only replica fetches the allocations and waits in its transaction for the
        # store's write lock, held here, while a second replica joins the group.
        lock = sqlite3.connect(stack.data_dir / "tams.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            allocations = [
                asyncio.create_task(
                    send_json(http, "POST", f"/flows/{flow['id']}/storage", {"limit": 1})
                )
                for flow in flows
            ]
            await eventually(
                lambda: _fetched_all(probes, first.url, before + 1),
                "the first replica to fetch an allocation (it then waits for the lock)",
            )
            stack.services["segments-1"] = stack.services.pop("segments")
            stack.start_service("segments")
            await stack.wait_ready(("segments",))  # joined: the group has rebalanced
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert [status for status, _, _ in await asyncio.gather(*allocations)] == [201] * 8

        # Every partition is read by one of the two replicas: each flow's next write is
        # answered (it was a 504 for the partitions the first replica kept, its loop dead).
        again = await asyncio.gather(
            *(
                send_json(http, "POST", f"/flows/{flow['id']}/storage", {"limit": 1})
                for flow in flows
            )
        )
        assert [status for status, _, _ in again] == [201] * 8
        async with probes.get(f"{first.url}/ready") as resp:
            assert resp.status == 200, await resp.text()


async def _fetched_all(http: aiohttp.ClientSession, url: str, count: float) -> float | None:
    fetched = await _commands_fetched(http, url)
    return fetched if fetched >= count else None
