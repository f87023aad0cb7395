"""The services' command handlers give the same answers on every store adapter.

The catalog handlers (flow deletion included) and the segments service's registrar,
allocator and segment deletion run, through the real command applier, against SQLite and
against the VAST adapter on its SDK double; every reply, event, follow-up command of a
deletion chain and read-back (analytics figures included) must match. This checks what the
port contract cannot: the access patterns of the domain code (write then read back in one
transaction, several commands of a batch in one transaction, chains of commands, computed
fields) on the columnar store.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tams_catalog.handlers import handlers as catalog_handlers
from tams_runtime import deletion
from tams_runtime.applier import CommandApplier
from tams_runtime.settings import MediaSettings, S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_schema.timerange import TimeRange
from tams_segments.deletion import DeletionStep, SegmentDeletion
from tams_segments.registration import ObjectChecker, Registrar
from tams_segments.storage import Allocator
from tams_store import FlowQuery, SourceQuery, Store, StoreUnavailable, TagFilter
from tams_store.analytics import FlowFilter
from tams_store.sqlite import SqliteStore
from tams_store.vast import VastSettings, VastStore
from tams_store.vast.double import FakeVastCluster

START = datetime(2026, 3, 1, tzinfo=UTC)
VIDEO, AUDIO, MULTI, OTHER = (f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))
SOURCES = {VIDEO: "s-video", AUDIO: "s-audio", MULTI: "s-multi", OTHER: "s-video"}
SOURCE_IDS = {k: f"10000000-0000-4000-8000-{i:012d}" for i, k in enumerate(set(SOURCES.values()))}
# Small limits, so deletions of a few segments already go through requests and chains.
# No release grace: released objects go at once, so the two stores can be compared at the end
# (the grace has tests of its own).
MEDIA = MediaSettings(sync_delete_limit=2, delete_chunk_segments=2, release_grace_s=0)


def flow_body(flow_id: str, fmt: str = "video", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": flow_id,
        "source_id": SOURCE_IDS[SOURCES[flow_id]],
        "format": f"urn:x-nmos:format:{fmt}",
        "codec": "video/h264" if fmt == "video" else "audio/aac",
        "container": "video/mp2t",
        "metadata_version": "11111111-1111-4111-8111-111111111111",
    }
    if fmt == "multi":
        body["codec"] = None
        del body["codec"]
    body.update(extra)
    return body


def external(start: int, end: int, object_id: str, ts_offset: int = 0) -> dict[str, Any]:
    """A segment of an object outside the store; reusing one needs the `ts_offset` (in
    seconds) that moves the segment onto the object's own timerange."""
    return {
        "object_id": object_id,
        "timerange": f"[{start}:0_{end}:0)",
        "ts_offset": f"{ts_offset}:0",
        "get_urls": [{"url": f"https://cdn.example/{object_id}", "label": "cdn"}],
    }


def script() -> list[list[tuple[str, str, dict[str, Any]]]]:
    """Batches of (command, key, payload); a batch is applied in one transaction."""
    return [
        [
            ("flows.put", VIDEO, {"flow": flow_body(VIDEO, label="camera")}),
            ("flows.put", AUDIO, {"flow": flow_body(AUDIO, "audio")}),
            (
                "flows.put",
                MULTI,
                {
                    "flow": flow_body(
                        MULTI,
                        "multi",
                        flow_collection=[{"id": VIDEO, "role": "v"}, {"id": AUDIO}],
                    )
                },
            ),
        ],
        [("flows.tag.set", VIDEO, {"flow_id": VIDEO, "name": "genre", "value": "news"})],
        [
            (
                "sources.tag.set",
                SOURCE_IDS["s-video"],
                {"source_id": SOURCE_IDS["s-video"], "name": "site", "value": "north"},
            )
        ],
        [("flows.put", OTHER, {"flow": flow_body(OTHER, label="camera 2")})],
        [("flows.put", VIDEO, {"flow": flow_body(VIDEO, label="camera 1")})],
        [("flows.tag.set", VIDEO, {"flow_id": VIDEO, "name": "lang", "value": ["en", "cy"]})],
        [("flows.put", AUDIO, {"flow": flow_body(AUDIO, "video")})],  # format clash: 400
        [
            (
                "storage.allocate",
                VIDEO,
                {"flow_id": VIDEO, "object_ids": ["a1", "a2"], "presigned": True},
            ),
            ("storage.allocate", VIDEO, {"flow_id": VIDEO, "object_ids": ["a1"]}),  # 400
        ],
        [
            (
                "segments.add",
                VIDEO,
                {
                    "flow_id": VIDEO,
                    "single": False,
                    "segments": [external(i * 2, i * 2 + 2, f"o{i}") for i in range(5)],
                },
            ),
            (
                "segments.add",
                VIDEO,
                {"flow_id": VIDEO, "single": True, "segments": [external(3, 4, "x")]},
            ),
        ],
        [
            (
                "segments.add",
                VIDEO,
                {
                    "flow_id": VIDEO,
                    "single": False,
                    "segments": [
                        external(10, 12, "o5"),
                        external(11, 13, "o6"),  # overlaps the one before it
                        external(12, 14, "o0", 12),  # reuses an object
                    ],
                },
            ),
            (
                "segments.add",
                OTHER,
                {"flow_id": OTHER, "single": True, "segments": [external(0, 2, "o1", -2)]},
            ),
        ],
        [
            (
                "segments.add",
                OTHER,
                {
                    "flow_id": OTHER,
                    "single": False,
                    "segments": [external(i * 2, i * 2 + 2, f"p{i}") for i in range(1, 5)],
                },
            )
        ],
        [("flows.property.set", VIDEO, {"flow_id": VIDEO, "name": "read_only", "value": True})],
        [("flows.delete", VIDEO, {"flow_id": VIDEO})],  # read-only: 403
        [("segments.delete", VIDEO, {"flow_id": VIDEO})],  # read-only: 403
        [("flows.property.set", VIDEO, {"flow_id": VIDEO, "name": "read_only", "value": False})],
        [("flows.delete", AUDIO, {"flow_id": AUDIO})],  # no segments: 204
        [("flows.delete", OTHER, {"flow_id": OTHER})],  # 5 segments: 202 and a chain
        # Two segments at once (o0 stays: a later segment reuses it), then one by object.
        [("segments.delete", VIDEO, {"flow_id": VIDEO, "timerange": "[0:0_4:0)"})],
        [("segments.delete", VIDEO, {"flow_id": VIDEO, "object_id": "o3"})],
        [("segments.delete", VIDEO, {"flow_id": VIDEO, "timerange": "[5:0_"})],  # 3: a chain
        [
            (
                "segments.add",
                VIDEO,
                {"flow_id": VIDEO, "single": True, "segments": [external(20, 22, "o9")]},
            )
        ],
        [("service.update", "service", {"name": "store", "description": "TAMS"})],
    ]


def commands() -> list[list[CommandEnvelope]]:
    at = iter(range(1000))
    return [
        [
            CommandEnvelope(
                command_id=f"c{n}-{i}",
                name=name,
                key=key,
                issued_at=START + timedelta(seconds=next(at)),
                payload=payload,
            )
            for i, (name, key, payload) in enumerate(batch)
        ]
        for n, batch in enumerate(script())
    ]


RANDOM_PER_RUN = (
    "event_id",
    "time",
    "url",
    "metadata_version",
    "command_id",
    "correlation_id",
    "issued_at",
)


def comparable(value: Any) -> Any:
    """Drop what is random per run: event and command ids, error times, presigned URL
    signatures, when follow-up commands were made."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in RANDOM_PER_RUN}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


async def run_script(store: Store) -> list[Any]:
    backends = StorageBackends.from_settings(
        S3Settings(endpoint_url="http://s3.invalid", access_key="a", secret_key="s")
    )
    segments: dict[str, Any] = {
        "storage.allocate": Allocator(backends),
        # Only external objects are registered here: the S3 client is never started.
        "segments.add": Registrar(store, ObjectChecker(BackendClients(backends))),
        "segments.delete": SegmentDeletion(MEDIA),
        "deletion.step": DeletionStep(MEDIA),
    }
    # One service applies all commands here; follow-ups go to the one they name.
    handlers = {**catalog_handlers(MEDIA), **segments}
    applier = CommandApplier(
        store, handlers, is_retryable=lambda exc: isinstance(exc, StoreUnavailable)
    )
    seen: list[Any] = []
    later = iter(range(1000, 2000))
    for batch in commands():
        pending = batch
        while pending:
            outcomes: list[Outcome] = await applier(pending)
            seen += [comparable(o.model_dump(mode="json")) for o in outcomes]
            # A deletion chain: apply each follow-up as its service's consumer would, at a
            # known time (the handlers stamp the request with it).
            pending = [
                follow.command.model_copy(
                    update={"issued_at": START + timedelta(seconds=next(later))}
                )
                for o in outcomes
                for follow in o.commands
            ]
    seen.append(comparable(await store.read(lambda tx: read_back(tx))))
    return seen


def read_back(tx: Any) -> dict[str, Any]:
    segments = tx.list_segments(
        VIDEO, timerange=None, object_id=None, reverse=False, page=None, limit=100
    )
    return {
        "flows": [tx.get_flow(f) for f in (VIDEO, AUDIO, MULTI, OTHER)],
        "sources": [tx.get_source(s) for s in SOURCE_IDS.values()],
        "listed": [f["id"] for f in tx.list_flows(FlowQuery(limit=10)).items],
        "tagged": [
            f["id"] for f in tx.list_flows(FlowQuery(tags=TagFilter(values={"lang": ["cy"]}))).items
        ],
        "source_list": [s["id"] for s in tx.list_sources(SourceQuery(sort_by="label")).items],
        "segments": [(s.start, s.end, s.object_id, s.timerange, s.doc) for s in segments.items],
        "extent": str(tx.flow_timerange(VIDEO)),
        "window": str(tx.flow_timerange(VIDEO, TimeRange.parse("[3:0_11:0)"))),
        "objects": {
            k: (o.registered, o.first_referenced_by_flow, o.doc, o.allocated_flow_id)
            for k, o in sorted(tx.get_objects(["a1", "a2", "o0", "o1", "o5", "x"]).items())
        },
        "users_of_o1": tx.object_flows("o1", TagFilter(), None, 10),
        "users_of_o0": tx.object_flows("o0", TagFilter(), None, 10),
        "service": tx.get_service_info(),
        "requests": tx.list_deletion_requests(
            sort_by="created", reverse_order=False, page=None, limit=10
        ).items,
        "jobs": [(j.kind, j.object_id) for j in tx.media_jobs_of(["o1", "o3", "p1", "o9"])],
        "counts": tx.catalog_counts(),
        "usage": tx.flow_usage(FlowFilter(), None, 10),
        "storage": tx.storage_usage(),
        "coverage": tx.flow_coverage(FlowFilter(), (0, 30 * 10**9), 10, None, 10),
    }


class RequestIds:
    """Deletion-request ids in a known order, the same for every store's run."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.counter = itertools.count(1)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=next(self.counter))


@pytest.fixture
def request_ids(monkeypatch: pytest.MonkeyPatch) -> RequestIds:
    ids = RequestIds()
    monkeypatch.setattr(deletion, "uuid", ids)
    return ids


@pytest_asyncio.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    sqlite = SqliteStore(tmp_path / "tams.db")
    vast = VastStore(
        VastSettings(endpoint="http://vast.invalid", access_key="a", secret_key="s", bucket="tams"),
        connect=FakeVastCluster(seed=11).connect,
        sleep=lambda _: None,
    )
    for store in (sqlite, vast):
        await store.open()
    yield sqlite, vast
    for store in (sqlite, vast):
        await store.close()


async def test_handlers_answer_alike_on_sqlite_and_vast(
    stores: tuple[Store, Store], request_ids: RequestIds
) -> None:
    sqlite, vast = stores
    expected = await run_script(sqlite)
    request_ids.restart()
    got = await run_script(vast)
    assert [o.get("status") for o in got[:-1]] == [o.get("status") for o in expected[:-1]]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine == theirs
    statuses = {o.get("status") for o in expected[:-1]}
    assert {200, 202, 400, 403} <= statuses  # the script bites
    final = expected[-1]
    assert final["tagged"] == [VIDEO] and len(final["segments"]) == 2
    assert [r["status"] for r in final["requests"]] == ["done", "done"]
