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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

# (bucket, key)
Location = tuple[str, str]


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
        for object_id, storage_id, registered, doc in conn.execute(
            "SELECT id, storage_id, registered, doc FROM objects"
        ):
            copies = json.loads(doc).get("controlled_storage_ids")
            storage_ids: Iterable[str] = copies if copies is not None else [storage_id or ""]
            for sid in storage_ids:
                if not sid:
                    continue
                if sid not in buckets:
                    wanted.elsewhere.add(sid)
                    continue
                target = wanted.required if registered else wanted.optional
                target.add((buckets[sid], object_key(object_id)))
    finally:
        conn.close()
    return wanted


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


async def _copy(
    source: Any, dest: Any, locations: set[Location]
) -> tuple[set[Location], set[Location], int]:
    """Copy these objects; returns those copied, those missing in the source, and bytes."""
    copied: set[Location] = set()
    missing: set[Location] = set()
    size = 0
    limit = asyncio.Semaphore(COPIES_AT_ONCE)

    async def one(location: Location) -> None:
        nonlocal size
        bucket, key = location
        async with limit:
            try:
                got = await source.get_object(Bucket=bucket, Key=key)
            except source.exceptions.NoSuchKey:
                missing.add(location)
                return
            body: bytes = await got["Body"].read()
            extra = {"ContentType": got["ContentType"]} if got.get("ContentType") else {}
            await dest.put_object(Bucket=bucket, Key=key, Body=body, **extra)
            copied.add(location)
            size += len(body)

    await asyncio.gather(*(one(location) for location in sorted(locations)))
    return copied, missing, size


def backup(data_dir: Path, dest: Path, env: dict[str, str] | None = None) -> BackupReport:
    """Back up the local stack running on `data_dir` into `dest` (new or empty)."""
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
        report = asyncio.run(_rounds(store, partial, buckets, source_s3, dest_s3))
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
) -> BackupReport:
    """Snapshot, copy what it references; again while referenced bytes went meanwhile."""
    copied: set[Location] = set()
    size = 0
    async with s3_client(source_s3) as source, s3_client(dest_s3) as copy_to:
        await _wait_for_buckets(copy_to, set(buckets.values()))
        for rounds in range(1, MAX_ROUNDS + 1):
            await asyncio.to_thread(snapshot_store, store, partial)
            wanted = await asyncio.to_thread(referenced, partial, buckets)
            done, missing, added = await _copy(source, copy_to, wanted.all - copied)
            copied |= done
            size += added
            if not missing & wanted.required:
                stale = copied - wanted.all
                for bucket, key in sorted(stale):
                    await copy_to.delete_object(Bucket=bucket, Key=key)
                return BackupReport(rounds, len(copied - stale), size, frozenset(wanted.elsewhere))
    raise BackupFailed(
        f"referenced objects were deleted during each of {MAX_ROUNDS} copies; try again"
    )
