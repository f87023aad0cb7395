"""Read-then-write decisions of two writers in overlapping transactions on the VAST adapter
(snapshot isolation, several service replicas): each pair below reads something to decide,
then writes something the other neither reads nor writes, so on a cluster that only detects
concurrent changes of one row both would commit (write skew, or two rows of one id: VAST has
no unique keys). SQLite, one writer, runs them one after the other.

Each test runs one side in a transaction paused just before its write (a tx proxy and
threading events, as test_release_race_on_vast.py does), commits the other side from a second
store on the same double cluster, then lets the first go on. The fixes make both sides write
one common row, so the double, like a cluster, refuses the second commit and the store
retries it in a new transaction that sees the first.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tams_catalog.handlers import handlers as catalog_handlers
from tams_runtime.settings import MediaSettings, S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_segments.registration import ObjectChecker, Registrar
from tams_segments.storage import Allocator
from tams_store.port import WriteTx
from tams_store.vast import VastSettings, VastStore
from tams_store.vast.double import FakeVastCluster

START = datetime(2026, 3, 1, tzinfo=UTC)
FLOW_A = "00000000-0000-4000-8000-00000000000a"
FLOW_B = "00000000-0000-4000-8000-00000000000b"
SOURCE = "10000000-0000-4000-8000-000000000001"
MEDIA = MediaSettings(release_grace_s=60)
CATALOG = catalog_handlers(MEDIA)
BACKENDS = StorageBackends.from_settings(
    S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
)


async def opened(cluster: FakeVastCluster) -> VastStore:
    settings = VastSettings(
        endpoint="http://vast.invalid", access_key="a", secret_key="s", bucket="tams"
    )
    store = VastStore(settings, connect=cluster.connect, sleep=lambda _: None)
    await store.open()
    return store


def command(n: int, name: str, key: str, payload: dict[str, Any]) -> CommandEnvelope:
    return CommandEnvelope(
        command_id=f"c{n}",
        name=name,
        key=key,
        issued_at=START + timedelta(seconds=n),
        payload=payload,
    )


async def two_stores_with_flows_a_and_b(cluster: FakeVastCluster) -> tuple[VastStore, VastStore]:
    """Two writers on one cluster (two replicas), after flows A and B were created."""
    first, second = await opened(cluster), await opened(cluster)
    for n, flow_id in enumerate((FLOW_A, FLOW_B), start=1):
        put = command(n, "flows.put", flow_id, {"flow": flow_body(flow_id)})
        assert (await catalog(first, put)).status == 201
    return first, second


def flow_body(flow_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": flow_id,
        "source_id": SOURCE,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        **extra,
    }


class Paused:
    """Runs `work` on `store` in a transaction that stops, on its first attempt only, just
    before it calls `method`; `attempts` counts the transactions run."""

    def __init__(self, store: VastStore, method: str, work: Callable[[WriteTx], Outcome]):
        self.store, self.method, self.work = store, method, work
        self.reached, self.go_on = threading.Event(), threading.Event()
        self.attempts = 0

    def _run(self, tx: WriteTx) -> Outcome:
        self.attempts += 1
        paused = self

        class Proxy:
            def __getattr__(self, name: str) -> Any:
                target = getattr(tx, name)
                if name != paused.method or paused.attempts > 1:
                    return target

                def call(*args: Any, **kwargs: Any) -> Any:
                    paused.reached.set()
                    assert paused.go_on.wait(10)
                    return target(*args, **kwargs)

                return call

        proxy: Any = Proxy()
        return self.work(proxy)

    async def around(self, other: Callable[[], Any]) -> Outcome:
        """Start the paused work, run `other` to its end meanwhile, then let the work go on."""
        task = asyncio.create_task(self.store.write(self._run))
        assert await asyncio.to_thread(self.reached.wait, 10)
        await other()
        self.go_on.set()
        return await task


async def catalog(store: VastStore, cmd: CommandEnvelope) -> Outcome:
    handler = CATALOG[cmd.name]
    return await store.write(lambda tx: handler(tx, cmd))


async def test_a_flow_created_while_its_source_loses_its_last_flow_keeps_the_source() -> None:
    """Deleting a source's last flow reads that it has no other flow and deletes the
    source; creating a flow of that source reads that the source exists and inserts the
    flow. Without a common row both commit and the new flow names a deleted source."""
    cluster = FakeVastCluster()
    catalog_1, catalog_2 = await opened(cluster), await opened(cluster)
    created = await catalog(catalog_1, command(1, "flows.put", FLOW_A, {"flow": flow_body(FLOW_A)}))
    assert created.status == 201

    delete = command(2, "flows.delete", FLOW_A, {"flow_id": FLOW_A})
    handler = CATALOG[delete.name]
    deleting = Paused(catalog_1, "delete_source", lambda tx: handler(tx, delete))
    create = command(3, "flows.put", FLOW_B, {"flow": flow_body(FLOW_B)})
    deleted = await deleting.around(lambda: catalog(catalog_2, create))

    assert deleted.status == 204
    assert deleting.attempts == 2  # the first commit was refused; the retry saw flow B
    flow = await catalog_1.read(lambda tx: tx.get_flow(FLOW_B))
    source = await catalog_1.read(lambda tx: tx.get_source(SOURCE))
    assert flow is not None
    assert source is not None, "flow B names a source that was deleted"
    await catalog_1.close()
    await catalog_2.close()


async def test_flows_of_one_source_replaced_at_once_do_not_conflict() -> None:
    """Only a flow new to its source races the source's deletion; replacing flows (a label,
    tags) leaves the source's row alone, so ingest changing a source's flows at once does
    not retry every transaction but one."""
    cluster = FakeVastCluster()
    catalog_1, catalog_2 = await two_stores_with_flows_a_and_b(cluster)

    relabel_a = command(3, "flows.put", FLOW_A, {"flow": flow_body(FLOW_A, label="a")})
    handler = CATALOG[relabel_a.name]
    relabelling = Paused(catalog_1, "put_flow", lambda tx: handler(tx, relabel_a))
    relabel_b = command(4, "flows.put", FLOW_B, {"flow": flow_body(FLOW_B, label="b")})
    relabelled = await relabelling.around(lambda: catalog(catalog_2, relabel_b))

    assert relabelled.status == 204
    assert relabelling.attempts == 1
    await catalog_1.close()
    await catalog_2.close()


async def test_a_flow_deleted_while_a_collection_takes_it_in_leaves_no_dangling_member() -> None:
    """Replacing a flow's `flow_collection` reads that its new member exists and writes the
    collector's row and a link; deleting the member removes the links it sees (none yet)
    and its own row. Without a common row the collection names a deleted flow."""
    cluster = FakeVastCluster()
    catalog_1, catalog_2 = await two_stores_with_flows_a_and_b(cluster)

    collect = command(
        3, "flows.put", FLOW_A, {"flow": flow_body(FLOW_A, flow_collection=[{"id": FLOW_B}])}
    )
    handler = CATALOG[collect.name]
    collecting = Paused(catalog_1, "put_flow", lambda tx: handler(tx, collect))
    delete = command(4, "flows.delete", FLOW_B, {"flow_id": FLOW_B})
    collected = await collecting.around(lambda: catalog(catalog_2, delete))

    assert collecting.attempts == 2  # refused, then the retry found flow B gone
    assert collected.status == 400
    flow_a = await catalog_1.read(lambda tx: tx.get_flow(FLOW_A))
    assert flow_a is not None
    assert not flow_a.get("flow_collection"), "flow A collects a deleted flow"
    await catalog_1.close()
    await catalog_2.close()


async def test_one_client_chosen_object_id_is_not_allocated_to_two_flows() -> None:
    """Two flows allocating the same client-chosen object id (replication of an object
    both flows use) each read that the id is free and insert it: two `objects` rows, two
    put_urls for one key, and the first registration then finds either flow's allocation."""
    cluster = FakeVastCluster()
    segments_1, segments_2 = await two_stores_with_flows_a_and_b(cluster)
    allocator = Allocator(BACKENDS)

    def allocate(n: int, flow_id: str) -> CommandEnvelope:
        payload = {"flow_id": flow_id, "object_ids": ["shared"], "presigned": True}
        return command(n, "storage.allocate", flow_id, payload)

    first, second = allocate(3, FLOW_A), allocate(4, FLOW_B)
    allocating = Paused(segments_1, "allocate_objects", lambda tx: allocator(tx, first))

    async def other() -> None:
        outcome = await segments_2.write(lambda tx: allocator(tx, second))
        assert outcome.status == 201

    outcome = await allocating.around(other)

    assert allocating.attempts == 2
    assert outcome.status == 400  # "object_ids already exist"
    rows = [r for r in cluster.rows("tams", "tams", "objects") if r["id"] == "shared"]
    assert [r["allocated_flow_id"] for r in rows] == [FLOW_B]
    await segments_1.close()
    await segments_2.close()


async def test_an_external_object_first_registered_by_two_flows_has_one_record() -> None:
    """Two flows registering the same external object (unknown, with get_urls) at once each
    read that it is unknown and insert its record: two `objects` rows whose frozen
    properties (object timerange) and first referencing flow differ, read back arbitrarily."""
    cluster = FakeVastCluster()
    segments_1, segments_2 = await two_stores_with_flows_a_and_b(cluster)

    def register(n: int, flow_id: str, object_range: str) -> CommandEnvelope:
        segment = {
            "object_id": "ext",
            "timerange": "[0:0_2:0)",
            "object_timerange": object_range,
            "get_urls": [{"url": "https://cdn.example/ext", "label": "cdn"}],
        }
        payload = {"flow_id": flow_id, "single": True, "segments": [segment]}
        return command(n, "segments.add", flow_id, payload)

    checker = ObjectChecker(BackendClients(BACKENDS))
    registrar_1, registrar_2 = Registrar(segments_1, checker), Registrar(segments_2, checker)
    first, second = register(3, FLOW_A, "[0:0_2:0)"), register(4, FLOW_B, "[0:0_4:0)")
    await registrar_1.prepare([first])
    await registrar_2.prepare([second])
    registering = Paused(segments_1, "add_segments", lambda tx: registrar_1(tx, first))

    async def other() -> None:
        outcome = await segments_2.write(lambda tx: registrar_2(tx, second))
        assert outcome.status == 201

    outcome = await registering.around(other)

    assert registering.attempts == 2
    # The retry finds the object registered by flow B, with B's object timerange, and
    # refuses another one, as one writer after the other would.
    assert outcome.status == 400
    assert "cannot change" in outcome.body["summary"]
    rows = [r for r in cluster.rows("tams", "tams", "objects") if r["id"] == "ext"]
    assert [r["first_referenced_by_flow"] for r in rows] == [FLOW_B]
    await segments_1.close()
    await segments_2.close()


async def test_a_command_applied_by_two_consumers_at_once_reads_back_one_outcome() -> None:
    """A redelivered command applied by two consumers at once (a rebalance while the first
    still applies its fetch): an allocation of random ids writes no row the other attempt
    writes, so both commit and both record an outcome. Each outcome is stored in parts; a
    later delivery must read back one of them whole, never parts of both."""
    cluster = FakeVastCluster()
    segments_1, segments_2 = await opened(cluster), await opened(cluster)
    put = command(1, "flows.put", FLOW_A, {"flow": flow_body(FLOW_A)})
    assert (await catalog(segments_1, put)).status == 201
    allocator = Allocator(BACKENDS)
    # Enough objects for an outcome of several parts (presigned URLs are long).
    allocate = command(2, "storage.allocate", FLOW_A, {"flow_id": FLOW_A, "limit": 200})

    def apply(tx: WriteTx) -> Outcome:
        prior = tx.recorded_outcome(allocate.command_id)
        if prior is not None:
            return prior
        outcome = allocator(tx, allocate)
        tx.record_outcome(allocate.command_id, outcome)
        return outcome

    applying = Paused(segments_1, "record_outcome", apply)

    recorded: list[Outcome] = []

    async def other() -> None:
        recorded.append(await segments_2.write(apply))

    first = await applying.around(other)
    assert first.status == recorded[0].status == 201
    parts = {r["part"] for r in cluster.rows("tams", "tams", "command_outcomes")}
    assert len(parts) > 1

    again = await segments_1.write(lambda tx: tx.recorded_outcome(allocate.command_id))
    assert again is not None  # whole: it parses
    assert again.body in (first.body, recorded[0].body), "parts of two outcomes"
    await segments_1.close()
    await segments_2.close()
