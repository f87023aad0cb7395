"""`tams backup`: a consistent copy of a running local stack's data directory.

The metadata store is the source of truth; the bytes it references must be in the object
store. So the store is copied first, then the bytes it references:

1. A snapshot of the SQLite store through SQLite's online backup API, in one step: one read
   transaction, which in WAL mode never stops the services' writes (checkpoints wait for it).
2. The bytes of every object in the snapshot (every controlled instance on the local S3
   server), read through the running S3 server's API and written through the API of a
   second SeaweedFS started on the destination for the copy.

An object registered after the snapshot is not in it, and its bytes are not copied: the
backup has no orphans. Bytes the snapshot references are deleted only after the live store
has forgotten their object (a release grace after its last segment went, or at once when a
controlled instance is removed), and that may happen while the copy runs. Such bytes are
then missing: another snapshot is taken, which no longer references them, and what it
references that is not copied yet is copied. Bytes copied for objects the last snapshot no
longer references are deleted from the destination.

An object id can also be forgotten and allocated again during the copy, with new bytes: ids
are random, but a client may choose them (`object_ids`, as replication does), and an id is
free again as soon as its old bytes are deleted, if its allocation is older than the upload
window (`min_object_timeout` plus the collector's grace and 15 minutes). So each copy is
tied to the allocation (`allocated_ns`) of the snapshot it was made for, and counts only:

* if the bytes were uploaded before that snapshot (the second of their S3 `LastModified`
  ended before it), when that allocation was the id's: an id is allocated again only after
  the bytes of its previous allocation are deleted and no put_url of it can upload any more;
* or if, read back after the copy, the live store still has that allocation: it had it
  all along, from the snapshot to after the copy.

Otherwise the copy does not count: for a registered object another snapshot is taken, and
an unregistered object's bytes are left out. An object that a later snapshot has with
another allocation than the one its bytes were copied for is copied again. An object
registered without an allocation (its get_urls given, then a controlled instance added) has
`allocated_ns` 0, as has any object registered again with its id after it: only the time of
its bytes counts, and it is copied again for each snapshot. This relies on
the S3 server and the backup sharing a clock, as in a local stack.

The destination is a data directory: `tams up --data-dir DEST` starts on it, with the same
admin password and the ports the stack had (free ones where those are taken).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from tams_runtime.s3 import object_key, s3_client
from tams_runtime.settings import S3Settings
from tams_runtime.storage import StorageBackends
from tams_stack.credentials import PASSWORD_FILE, USERS_FILE
from tams_stack.objectstore import start_object_store
from tams_stack.stack import local_buckets

STORE_FILE = "tams.db"
PORTS_FILE = "ports.json"
MANIFEST_FILE = "backup.json"
# Files besides the store and the objects that `tams up` reads from its data directory.
KEPT_FILES = (PORTS_FILE, PASSWORD_FILE, USERS_FILE)
# Snapshots taken before giving up, when referenced bytes keep going during the copy.
MAX_ROUNDS = 5
COPIES_AT_ONCE = 16
# S3 gives `LastModified` to the second: bytes count as uploaded before a snapshot only if
# the second after their `LastModified` began before it.
MODIFIED_RESOLUTION_S = 1.0
# Ids per query of the live store (below SQLite's limit on parameters).
IDS_PER_QUERY = 500
# `allocated_ns` of an object registered without an allocation (its get_urls given): every
# such object has it, so it tells nothing about which bytes belong to the id.
NO_ALLOCATION = 0

# (bucket, key)
Location = tuple[str, str]
# A round's steps, after which `backup(on_step=...)` is awaited.
Step = Literal["snapshot", "copy"]
StepHook = Callable[[Step, int], Awaitable[None]]


class BackupFailed(RuntimeError):
    """The backup could not be made; the destination is left incomplete."""


@dataclass
class Wanted:
    """What a snapshot references on the local S3 server."""

    # Bytes of registered objects: they must be in the backup.
    required: set[Location] = field(default_factory=set)
    # Bytes of objects allocated but not registered: copied if uploaded.
    optional: set[Location] = field(default_factory=set)
    # Backends on an S3 server of their own, not copied (their ids).
    elsewhere: set[str] = field(default_factory=set)
    # Object id and allocation (`allocated_ns`) of each location: which bytes belong there.
    allocations: dict[Location, tuple[str, int]] = field(default_factory=dict)

    @property
    def all(self) -> set[Location]:
        return self.required | self.optional


@dataclass(frozen=True)
class BackupReport:
    rounds: int
    objects: int
    bytes: int
    elsewhere: frozenset[str]


def snapshot_store(source: Path, dest: Path) -> None:
    """Copy the SQLite store at `source` to `dest` while it is in use: one step of the
    backup API, so one read transaction and one consistent moment."""
    dest.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=10.0)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
            # The copy carries the WAL mode of its source. Without it, reading the copy
            # read-only leaves no -wal and -shm files behind; the services put the store back
            # in WAL mode when they open it.
            out.execute("PRAGMA journal_mode=DELETE")
        finally:
            out.close()
    finally:
        src.close()


def referenced(snapshot: Path, buckets: dict[str, str]) -> Wanted:
    """The bytes the objects of a snapshot reference, by backend id (`buckets`: id → bucket
    of each backend on the local S3 server)."""
    wanted = Wanted()
    conn = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
    try:
        for object_id, storage_id, registered, allocated_ns, doc in conn.execute(
            "SELECT id, storage_id, registered, allocated_ns, doc FROM objects"
        ):
            copies = json.loads(doc).get("controlled_storage_ids")
            storage_ids: Iterable[str] = copies if copies is not None else [storage_id or ""]
            for sid in storage_ids:
                if not sid:
                    continue
                if sid not in buckets:
                    wanted.elsewhere.add(sid)
                    continue
                location = (buckets[sid], object_key(object_id))
                (wanted.required if registered else wanted.optional).add(location)
                wanted.allocations[location] = (object_id, allocated_ns)
    finally:
        conn.close()
    return wanted


def live_allocations(store: Path, object_ids: set[str]) -> dict[str, int]:
    """The allocation (`allocated_ns`) the live store has now for each of these ids that it
    knows."""
    found: dict[str, int] = {}
    ids = sorted(object_ids)
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10.0)
    try:
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(f"SELECT id, allocated_ns FROM objects WHERE id IN ({marks})", chunk)
            )
    finally:
        conn.close()
    return found


def local_s3(data_dir: Path) -> S3Settings:
    """The running stack's S3 server: its port from `ports.json`, its key from the
    identity `tams up` gave SeaweedFS."""
    try:
        port = json.loads((data_dir / PORTS_FILE).read_text())["s3"]
        identity = json.loads((data_dir / "seaweedfs" / "s3.json").read_text())
        credentials = identity["identities"][0]["credentials"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise BackupFailed(
            f"{data_dir} is not the data directory of a local stack ({exc})"
        ) from exc
    return S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key=credentials["accessKey"],
        secret_key=credentials["secretKey"],
    )


def local_backend_buckets(settings: S3Settings) -> dict[str, str]:
    """Bucket of each storage backend on the local S3 server, by backend id (the backends
    come from the environment, as `tams up` gives them to the services)."""
    backends = StorageBackends.from_settings(settings)
    return {b.id: b.bucket for b in backends.all if b.endpoint_url == settings.endpoint_url}


@dataclass(frozen=True)
class Copy:
    """Bytes copied to the destination."""

    size: int
    # When the source's bytes were last written (S3 `LastModified`, whole seconds).
    modified: float


async def _copy(
    source: Any, dest: Any, locations: set[Location]
) -> tuple[dict[Location, Copy], set[Location]]:
    """Copy these objects; returns those copied, and those missing in the source."""
    copied: dict[Location, Copy] = {}
    missing: set[Location] = set()
    # A few workers, not a task per object: a store may hold millions.
    pending = iter(sorted(locations))

    async def one(location: Location) -> None:
        bucket, key = location
        try:
            got = await source.get_object(Bucket=bucket, Key=key)
            try:
                body: bytes = await got["Body"].read()
            except (BotoCoreError, aiohttp.ClientError):
                # Deleted while it was read: missing, as if the GET had come a little later.
                if not await _gone(source, bucket, key):
                    raise
                missing.add(location)
                return
            extra = {"ContentType": got["ContentType"]} if got.get("ContentType") else {}
            await dest.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        except source.exceptions.NoSuchKey:
            missing.add(location)
            return
        except (BotoCoreError, ClientError, aiohttp.ClientError) as exc:
            raise BackupFailed(f"could not copy {bucket}/{key}: {exc}") from exc
        copied[location] = Copy(len(body), got["LastModified"].timestamp())

    async def worker() -> None:
        for location in pending:
            await one(location)

    await asyncio.gather(*(worker() for _ in range(min(COPIES_AT_ONCE, len(locations)))))
    return copied, missing


async def _gone(source: Any, bucket: str, key: str) -> bool:
    try:
        await source.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return True
        raise
    return False


def backup(
    data_dir: Path,
    dest: Path,
    env: dict[str, str] | None = None,
    *,
    on_step: StepHook | None = None,
) -> BackupReport:
    """Back up the local stack running on `data_dir` into `dest` (new or empty).

    `on_step` (for tests) is awaited after each round's snapshot and after its copy, with
    the step and the round, so that the stack can be changed at those moments."""
    env = dict(os.environ if env is None else env)
    data_dir, dest = data_dir.resolve(), dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise BackupFailed(f"{dest} is not empty: back up into a new directory")
    store = data_dir / STORE_FILE
    if not store.exists():
        raise BackupFailed(f"no store at {store}")
    source_s3 = local_s3(data_dir)
    buckets = local_backend_buckets(source_s3)
    asyncio.run(_check_running(source_s3, set(buckets.values())))
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / (STORE_FILE + ".partial")
    started = time.time()
    target = start_object_store(dest, local_buckets(env))
    try:
        dest_s3 = source_s3.model_copy(
            update={
                "endpoint_url": target.endpoint,
                "access_key": target.access_key,
                "secret_key": target.secret_key,
            }
        )
        report = asyncio.run(_rounds(store, partial, buckets, source_s3, dest_s3, on_step))
    finally:
        target.stop()
    partial.rename(dest / STORE_FILE)
    for name in KEPT_FILES:
        if (data_dir / name).exists():
            shutil.copy2(data_dir / name, dest / name)
    manifest = {
        "source": str(data_dir),
        "started": started,
        "finished": time.time(),
        "snapshots": report.rounds,
        "objects": report.objects,
        "bytes": report.bytes,
        "backends_not_copied": sorted(report.elsewhere),
    }
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return report


async def _check_running(settings: S3Settings, buckets: set[str]) -> None:
    async with s3_client(settings) as s3:
        for bucket in sorted(buckets):
            try:
                await s3.head_bucket(Bucket=bucket)
            except Exception as exc:
                raise BackupFailed(
                    f"the stack's S3 server ({settings.endpoint_url}) does not answer for "
                    f"bucket {bucket}: is the stack running? ({exc})"
                ) from exc


async def _wait_for_buckets(s3: Any, buckets: set[str], timeout: float = 20.0) -> None:
    """SeaweedFS opens its S3 port before it has made the buckets it was told to make."""
    deadline = time.monotonic() + timeout
    for bucket in sorted(buckets):
        while True:
            try:
                await s3.head_bucket(Bucket=bucket)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise BackupFailed(f"the backup's S3 server has no bucket {bucket}") from exc
                await asyncio.sleep(0.1)


async def _rounds(
    store: Path,
    partial: Path,
    buckets: dict[str, str],
    source_s3: S3Settings,
    dest_s3: S3Settings,
    on_step: StepHook | None = None,
) -> BackupReport:
    """Snapshot, copy what it references; again while referenced bytes went or may have been
    replaced meanwhile."""
    # Bytes in the destination that count, by the allocation they were copied for.
    copied: dict[Location, int] = {}
    sizes: dict[Location, int] = {}
    written: set[Location] = set()  # everything put in the destination
    async with s3_client(source_s3) as source, s3_client(dest_s3) as copy_to:
        await _wait_for_buckets(copy_to, set(buckets.values()))
        for rounds in range(1, MAX_ROUNDS + 1):
            # Taken before the snapshot's read transaction starts: no later than its moment.
            snapshot_at = time.time()
            await asyncio.to_thread(snapshot_store, store, partial)
            wanted = await asyncio.to_thread(referenced, partial, buckets)
            if on_step is not None:
                await on_step("snapshot", rounds)
            # Bytes copied for another allocation of an id are not this snapshot's, nor
            # bytes copied for an earlier snapshot of an object without an allocation.
            todo = {
                location
                for location in wanted.all
                if copied.get(location) != wanted.allocations[location][1]
                or wanted.allocations[location][1] == NO_ALLOCATION
            }
            done, missing = await _copy(source, copy_to, todo)
            written |= done.keys()
            # Bytes that may have been written after the snapshot may be another
            # allocation's, unless the live store still has the snapshot's allocation.
            unsure = {
                location
                for location, made in done.items()
                if made.modified + MODIFIED_RESOLUTION_S > snapshot_at
            }
            latest = max((done[location].modified for location in unsure), default=0.0)
            if unsure:
                ids = {wanted.allocations[location][0] for location in unsure}
                now = await asyncio.to_thread(live_allocations, store, ids)
                # An object without an allocation has the same `allocated_ns` in the store
                # before and after it is forgotten and registered again: no proof.
                unsure = {
                    location
                    for location in unsure
                    if now.get(wanted.allocations[location][0]) != wanted.allocations[location][1]
                    or wanted.allocations[location][1] == NO_ALLOCATION
                }
            for location, made in done.items():
                if location in unsure:
                    copied.pop(location, None)
                else:
                    copied[location] = wanted.allocations[location][1]
                    sizes[location] = made.size
            if on_step is not None:
                await on_step("copy", rounds)
            if not (missing | unsure) & wanted.required:
                kept = {
                    location
                    for location in wanted.all
                    if copied.get(location) == wanted.allocations[location][1]
                }
                # Objects no longer referenced, and unregistered ones whose bytes may not be
                # their allocation's (they may go: their upload is not in the snapshot).
                for bucket, key in sorted(written - kept):
                    await copy_to.delete_object(Bucket=bucket, Key=key)
                return BackupReport(
                    rounds,
                    # Objects, not copies: one with instances on two local backends counts once.
                    len({wanted.allocations[location][0] for location in kept}),
                    sum(sizes[location] for location in kept),
                    frozenset(wanted.elsewhere),
                )
            if unsure & wanted.required:
                # The next snapshot is taken after the second those bytes were written in, so
                # their time alone says whether it has them.
                wait_s = latest + MODIFIED_RESOLUTION_S - time.time()
                await asyncio.sleep(max(0.0, wait_s + 0.01))
    raise BackupFailed(
        f"referenced objects were deleted or replaced during each of {MAX_ROUNDS} copies; try again"
    )
