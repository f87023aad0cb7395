"""Background work of the segments service, outside any command.

Every `worker_interval_s` (and at start-up) the worker does the following, in three loops
that wait for nothing of each other's: the store's bookkeeping, byte deletions on S3, and
copies. A backend that stops answering, or a copy that streams for minutes, then holds up
only its own loop, not the releases, the deletion requests or the other backends' bytes.

* collects objects allocated by /storage but never registered, once `min_object_timeout`
  plus a grace period has passed: in one transaction it takes those still unregistered,
  forgets them (a late registration then fails as unknown) and queues their bytes' deletion;
* forgets objects whose release grace has ended (their last segment went
  `release_grace_s` ago) if nothing references them again, and queues their bytes' deletion;
* deletes queued bytes from S3 (every controlled instance), then drops the queue entries;
  sweeps the bytes of deleted objects again once no put_url handed out for them can upload
  any more (`deletion.release_objects`);
* runs queued copies (controlled instances on another backend, `copier.py`) and, once the
  bytes are there, adds the instance to the object;
* restarts deletion requests that have stalled (their step command was lost, e.g. with a
  local broker's topics) by publishing their current step again (stale duplicates are
  ignored), and marks one `error` after `deletion_max_resumes` restarts without progress;
* purges finished deletion requests past their `expiry`;
* starts the purge of soft-deleted flows past their `purge_after` (docs/ext-soft-delete.md)
  by sending `deleted_flows.purge` to the catalog, which owns them (again after
  `deletion_resume_after_s` if the command was lost; a duplicate changes nothing).

Several segments-service instances can run this at once: queue entries are claimed under a
lease, and deleting or copying the same bytes twice gives the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import aiohttp

from tams_runtime import deletion
from tams_runtime.bus import CommandPublisher
from tams_runtime.egress import EgressPolicy, GuardedResolver
from tams_runtime.metrics import MEDIA_JOBS
from tams_runtime.s3 import object_key
from tams_runtime.settings import MediaSettings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.copier import Copier
from tams_segments.instances import with_instances
from tams_store import Store, WriteTx
from tams_store.port import MediaJob, MediaJobKind

log = logging.getLogger(__name__)

# Every series from the start, at 0 (an alert's `rate()` cannot see a series' first sample).
JOBS = {
    (kind, outcome): MEDIA_JOBS.labels(kind, outcome)
    for kind, outcomes in (
        ("delete", ("done", "failed")),
        ("sweep", ("done", "failed")),
        ("copy", ("done", "failed", "dropped")),
    )
    for outcome in outcomes
}

BATCH = 100
# DeleteObjects takes at most 1,000 keys.
DELETE_BATCH = 1000
MAX_BATCHES = 50
NS = 1_000_000_000


def _finish(jobs: list[MediaJob], tx: WriteTx) -> None:
    tx.finish_media_jobs(jobs)


def _claim(
    kind: MediaJobKind, owner: str, now_ns: int, lease_ns: int, limit: int, tx: WriteTx
) -> list[MediaJob]:
    return tx.claim_media_jobs(kind, owner, now_ns, lease_ns, limit)


def _renew(jobs: list[MediaJob], owner: str, until_ns: int, tx: WriteTx) -> int:
    return tx.renew_media_jobs(jobs, owner, until_ns)


def moment(now_ns: int) -> datetime:
    return datetime.fromtimestamp(now_ns / NS, UTC)


class ObjectCollector:
    """Object garbage collection: expired allocations and queued byte deletions. Takes the
    time as an argument, so it can be run against a real store and S3 with a clock ahead."""

    def __init__(
        self,
        store: Store,
        backends: StorageBackends,
        clients: BackendClients,
        media: MediaSettings,
        owner: str,
    ) -> None:
        self.store = store
        self.backends = backends
        self.clients = clients
        self.media = media
        self.owner = owner

    async def collect_expired_allocations(self, now_ns: int) -> list[str]:
        """Forget objects allocated longer ago than the timeout and grace, never registered,
        and queue their bytes' deletion. Returns their ids."""
        timeout_s = self.media.min_object_timeout_s + self.media.object_gc_grace_s
        cutoff = now_ns - timeout_s * NS

        def collect(tx: WriteTx) -> list[str]:
            expired = tx.expired_allocations(cutoff, BATCH)
            ids = [o.object_id for o in expired]
            tx.remove_objects(ids)
            tx.queue_media_jobs(
                [
                    MediaJob("delete", o.object_id, o.storage_id, now_ns)
                    for o in expired
                    if o.storage_id
                ]
            )
            return ids

        collected: list[str] = []
        for _ in range(MAX_BATCHES):
            ids = await self.store.write(collect)
            collected += ids
            if len(ids) < BATCH:
                break
        if collected:
            log.info("collected unregistered objects", extra={"count": len(collected)})
        return collected

    async def release_due(self, now_ns: int) -> list[str]:
        """Forget the objects whose release grace has ended and that nothing references
        again meanwhile (`deletion.forget_objects`), and queue their bytes' deletion.
        Returns the ids forgotten."""
        lease_ns = int(self.media.job_lease_s * NS)

        def release(tx: WriteTx) -> tuple[list[str], int]:
            jobs = tx.claim_media_jobs("release", self.owner, now_ns, lease_ns, BATCH)
            ids = [job.object_id for job in jobs]
            forgotten = deletion.forget_objects(tx, ids, moment(now_ns), self.media)
            tx.finish_media_jobs(jobs)
            return forgotten, len(jobs)

        released: list[str] = []
        for _ in range(MAX_BATCHES):
            forgotten, claimed = await self.store.write(release)
            released += forgotten
            if claimed < BATCH:
                break
        return released

    async def delete_bytes(self, now_ns: int) -> int:
        """Delete queued bytes from S3, a thousand keys per request (DeleteObjects): the
        deletions, then the sweeps that are due; returns how many completed."""
        done_total = 0
        for kind in ("delete", "sweep"):
            done_total += await self._delete_jobs(kind, now_ns)
        return done_total

    async def _delete_jobs(self, kind: MediaJobKind, now_ns: int) -> int:
        lease_ns = int(self.media.job_lease_s * NS)
        done_total = 0
        started = time.monotonic_ns()
        for _ in range(MAX_BATCHES):
            # Leased from the time of each claim: a round longer than a lease would otherwise
            # claim its last batches with a lease already over, for another instance to take.
            claimed_ns = now_ns + time.monotonic_ns() - started
            jobs = await self.store.write(
                partial(_claim, kind, self.owner, claimed_ns, lease_ns, DELETE_BATCH)
            )
            if not jobs:
                break
            by_backend: dict[str, list[MediaJob]] = {}
            for job in jobs:
                by_backend.setdefault(job.storage_id, []).append(job)
            results = await asyncio.gather(
                *(self._delete(storage_id, group) for storage_id, group in by_backend.items())
            )
            done = [job for group in results for job in group]
            if done:
                await self.store.write(partial(_finish, done))
            JOBS[kind, "done"].inc(len(done))
            JOBS[kind, "failed"].inc(len(jobs) - len(done))
            done_total += len(done)
            if len(jobs) < DELETE_BATCH or len(done) < len(jobs):
                break  # the rest waits for its lease to run out
        return done_total

    async def _delete(self, storage_id: str, jobs: list[MediaJob]) -> list[MediaJob]:
        """Delete these objects' bytes on one backend; returns the jobs done. Deleting a key
        that is already gone succeeds, so a retried job is harmless."""
        backend = self.backends.get(storage_id)
        if backend is None:
            log.warning(
                "cannot delete bytes on an unconfigured storage backend; will retry",
                extra={"storage_id": storage_id},
            )
            return []
        keys = {object_key(job.object_id): job for job in jobs}
        try:
            # A backend that never answers holds the other backends' deletions this long at
            # most (`MediaSettings.delete_timeout_s`); its jobs wait for their lease to end.
            async with asyncio.timeout(self.media.delete_timeout_s):
                response = await self.clients.client(storage_id).delete_objects(
                    Bucket=backend.bucket,
                    Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
                )
        except Exception:
            log.warning(
                "object deletion failed; will retry",
                exc_info=True,
                extra={"storage_id": storage_id, "count": len(keys)},
            )
            return []
        failed = {error.get("Key") for error in response.get("Errors", [])}
        if failed:
            log.warning(
                "some object deletions failed; will retry",
                extra={"storage_id": storage_id, "count": len(failed)},
            )
        return [job for key, job in keys.items() if key not in failed]


class CopyRunner:
    """Runs queued controlled-instance copies, each on its own, at most `BATCH` at once: one
    that streams for minutes, or waits out the timeouts of a backend that does not answer,
    holds up only its own slot, not the copies to other backends."""

    def __init__(self, store: Store, copier: Copier, media: MediaSettings, owner: str) -> None:
        self.store = store
        self.copier = copier
        self.media = media
        self.owner = owner
        self._running: set[asyncio.Task[bool]] = set()

    async def run(self, now_ns: int) -> int:
        """Claim as many queued copies as there are free slots and start them; returns how
        many started."""
        room = BATCH - len(self._running)
        if room <= 0:
            return 0
        lease_ns = int(self.media.job_lease_s * NS)
        jobs = await self.store.write(
            lambda tx: tx.claim_media_jobs("copy", self.owner, now_ns, lease_ns, room)
        )
        for job in jobs:
            task = asyncio.create_task(self._copy_logged(job), name="media-copy")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(jobs)

    async def stop(self) -> None:
        """Cancel the copies under way (their jobs are claimed again when the lease ends)."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _copy_logged(self, job: MediaJob) -> bool:
        try:
            return await self._copy(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The store failed around the copy: claimed again when the lease ends.
            log.exception("copy step failed; will retry", extra={"object_id": job.object_id})
            return False

    async def _copy(self, job: MediaJob) -> bool:
        if job.attempts > 1:
            # An earlier attempt may have been killed mid-way, its multipart upload left open.
            try:
                await self.copier.abort_open_uploads(job.storage_id, job.object_id)
            except Exception as exc:
                log.warning(
                    "could not list multipart uploads left by an earlier copy",
                    extra={
                        "object_id": job.object_id,
                        "storage_id": job.storage_id,
                        "error": str(exc),
                    },
                )
        obj = (await self.store.read(lambda tx: tx.get_objects([job.object_id]))).get(job.object_id)
        if obj is not None and obj.registered and job.storage_id not in obj.controlled_storage_ids:
            try:
                async with self._held(job):
                    await self.copier.copy(obj, job.storage_id)
            except Exception as exc:
                about = {
                    "object_id": job.object_id,
                    "storage_id": job.storage_id,
                    "attempts": job.attempts,
                    "error": str(exc),
                }
                if job.attempts < self.media.copy_max_attempts:
                    log.warning("copy failed; will retry", extra=about)
                    JOBS["copy", "failed"].inc()
                    return False
                log.error("copy failed for good; dropped", extra=about)
                await self.store.write(lambda tx: tx.finish_media_jobs([job]))
                JOBS["copy", "dropped"].inc()
                return False
        await self.store.write(lambda tx: self._complete(tx, job))
        JOBS["copy", "done"].inc()
        return True

    @contextlib.asynccontextmanager
    async def _held(self, job: MediaJob) -> AsyncIterator[None]:
        """Keep the job's lease while its copy runs, renewed every third of it: a copy
        longer than the lease (a large object between sites) is not claimed by another
        instance meanwhile, run twice at once and counted as a failed attempt."""
        lease_s = self.media.job_lease_s

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease_s / 3)
                until = time.time_ns() + int(lease_s * NS)
                with contextlib.suppress(Exception):  # the next renewal tries again
                    await self.store.write(partial(_renew, [job], self.owner, until))

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    @staticmethod
    def _complete(tx: WriteTx, job: MediaJob) -> None:
        """The bytes are there: advertise them, or, if the object went meanwhile, queue them
        for deletion like the object's other bytes."""
        obj = tx.get_objects([job.object_id]).get(job.object_id)
        if obj is None or not obj.registered:
            tx.queue_media_jobs([MediaJob("delete", job.object_id, job.storage_id, time.time_ns())])
        elif job.storage_id not in obj.controlled_storage_ids:
            controlled = [*obj.controlled_storage_ids, job.storage_id]
            tx.update_objects([with_instances(obj, controlled, obj.doc.get("get_urls", []))])
        tx.finish_media_jobs([job])


class DeletionResumer:
    """Restarts stalled deletion requests and purges expired ones."""

    def __init__(self, store: Store, publisher: CommandPublisher, media: MediaSettings) -> None:
        self.store = store
        self.publisher = publisher
        self.media = media
        # Soft-deleted flows whose purge was asked for, and when (not asked again at once).
        self._purges_sent: dict[str, int] = {}

    async def resume(self, now_ns: int, *, everything: bool = False) -> list[str]:
        """Publish the current step of every unfinished request not updated lately (all of
        them with `everything`, at start-up). Returns the request ids restarted.

        A restart is counted only once its command is published, so a broker outage does
        not use up a request's restarts; a request that made progress meanwhile (its step
        moved on) is left as it is."""
        cutoff = now_ns if everything else now_ns - int(self.media.deletion_resume_after_s * NS)
        now = moment(now_ns)
        retention_s = self.media.deletion_request_retention_s
        stalled = await self.store.read(lambda tx: tx.unfinished_deletion_requests(cutoff, BATCH))
        give_up = [r for r in stalled if r.resumes >= self.media.deletion_max_resumes]
        restart = [r for r in stalled if r.resumes < self.media.deletion_max_resumes]
        if restart:
            await self.publisher.publish([deletion.step_command(r) for r in restart])

        giving_up = {r.id for r in give_up}

        def record(tx: WriteTx) -> None:
            for seen in [*give_up, *restart]:
                current = tx.get_deletion_request(seen.id)
                if current is None or not deletion.is_current(current, seen.step):
                    continue
                if current.resumes != seen.resumes:
                    # Counted already: this write is being retried after a commit that landed
                    # (or another instance restarted it).
                    continue
                if seen.id in giving_up:
                    summary = f"no progress after {current.resumes} restarts; giving up"
                    tx.put_deletion_request(deletion.failed(current, now, retention_s, summary))
                else:
                    doc = {**current.doc, "updated": deletion.stamp(now)}
                    tx.put_deletion_request(replace(current, resumes=current.resumes + 1, doc=doc))

        if stalled:
            await self.store.write(record)
        if restart:
            log.info("restarted deletion requests", extra={"count": len(restart)})
        return [r.id for r in restart]

    async def purge(self, now_ns: int) -> int:
        return await self.store.write(lambda tx: tx.purge_deletion_requests(now_ns))

    async def purge_expired_flows(self, now_ns: int) -> list[str]:
        """Ask the catalog to purge the soft-deleted flows whose retention has passed.
        Returns the flow ids asked for."""
        due = await self.store.read(lambda tx: tx.due_deleted_flows(now_ns, BATCH))
        again_ns = int(self.media.deletion_resume_after_s * NS)
        ids = [
            r.flow_id
            for r in due
            if now_ns - self._purges_sent.get(r.flow_id, -again_ns) >= again_ns
        ]
        if ids:
            await self.publisher.publish([deletion.purge_command(i) for i in ids])
            for flow_id in ids:
                self._purges_sent[flow_id] = now_ns
            log.info("purging expired soft-deleted flows", extra={"count": len(ids)})
        # Forget what is no longer due (purged, restored, or started).
        due_ids = {r.flow_id for r in due}
        for flow_id in [f for f in self._purges_sent if f not in due_ids]:
            del self._purges_sent[flow_id]
        return ids


class MediaWorker:
    """The periodic loop, as a service component (start/stop)."""

    def __init__(
        self,
        store: Store,
        backends: StorageBackends,
        clients: BackendClients,
        publisher: CommandPublisher,
        media: MediaSettings,
    ) -> None:
        self.store = store
        self.backends = backends
        self.clients = clients
        self.publisher = publisher
        self.media = media
        self.owner = f"segments-{uuid.uuid4().hex[:12]}"
        self.collector = ObjectCollector(store, backends, clients, media, self.owner)
        self.resumer = DeletionResumer(store, publisher, media)
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.publisher.start()
        # Copies may read client-registered URLs: the same egress guard as webhook deliveries
        # (no internal or metadata addresses unless allow-listed), checked on resolution.
        egress = EgressPolicy.from_settings()
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(egress)),
        )
        copier = Copier(self.backends, self.clients, self._http, self.media.copy_part_bytes, egress)
        self.copies = CopyRunner(self.store, copier, self.media, self.owner)
        self._tasks = [
            asyncio.create_task(self._run(self.run_once), name="media-worker"),
            asyncio.create_task(self._run(self.delete_bytes), name="media-deletions"),
            asyncio.create_task(self._run(self.run_copies), name="media-copies"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            await self.copies.stop()
        if self._http is not None:
            await self._http.close()
        await self.publisher.stop()

    async def _run(self, round_: Callable[..., Awaitable[None]]) -> None:
        startup = True
        while True:
            await round_(time.time_ns(), startup=startup)
            startup = False
            await asyncio.sleep(self.media.worker_interval_s)

    async def delete_bytes(self, now_ns: int, *, startup: bool = False) -> None:
        """One round of byte deletions (and sweeps), on every backend."""
        await self._step("deletions", lambda: self.collector.delete_bytes(now_ns))

    async def run_copies(self, now_ns: int, *, startup: bool = False) -> None:
        """Start the queued copies there is room for (`CopyRunner`)."""
        await self._step("copies", lambda: self.copies.run(now_ns))

    async def run_once(self, now_ns: int, *, startup: bool = False) -> None:
        """One round of the store's bookkeeping; each part's failure is logged and does not
        stop the others."""
        parts = (
            ("allocations", lambda: self.collector.collect_expired_allocations(now_ns)),
            ("releases", lambda: self.collector.release_due(now_ns)),
            ("resume", lambda: self.resumer.resume(now_ns, everything=startup)),
            ("purge", lambda: self.resumer.purge(now_ns)),
            ("expired soft deletes", lambda: self.resumer.purge_expired_flows(now_ns)),
        )
        for name, part in parts:
            await self._step(name, part)

    @staticmethod
    async def _step(name: str, part: Callable[[], Awaitable[object]]) -> None:
        try:
            await part()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("media worker step failed", extra={"step": name})
