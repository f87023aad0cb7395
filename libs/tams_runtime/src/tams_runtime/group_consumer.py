"""Following one topic in a Kafka consumer group: process a fetch, then commit its offsets.

The command consumer and the event consumer share this loop. `process` gets every record of
one fetch (all partitions this member owns). It either finishes the fetch (returns None), or
applies it and returns its publish step: the loop runs that step once every earlier fetch is
durable, and the future it returns completes when this fetch is (the command consumer's
sends acknowledged by the broker). Meanwhile the loop fetches and processes the next one, so
applying a batch overlaps with the broker acknowledging the previous batch, while sends still
leave in fetch order. Only a durable fetch's offsets become due, and they are committed in
batches, every `commit_interval_s`.

A crash in between redelivers the records, so processing must be idempotent. If a fetch's
sends fail, the loop runs its publish step again (after `recover`, which may recreate
topics) until the broker has them, before any later fetch's sends: the same messages, with
the same ids, in the same order. It does not rewind to fetch the commands again: a broker
that lost its topics would have lost those commands too, and their events with them.
`process` is expected to retry store trouble itself: the loop never skips a fetch. Consumer
lag is measured beside the loop (`LagRecorder`).

With a `Rest`, a consumer that has read nothing for a while pauses its partitions (no
fetches) until it is woken (a gateway's wake-up, tams_runtime.replies) or its poll interval
passes, then fetches once and rests again if that finds nothing.

With an `EpochAssignment` (command topics in epochs, tams_runtime.epochs) the consumer
assigns itself the epoch topics' partitions instead of joining the group's rebalance. At
each new epoch a task beside the loop works out the new assignment (creating and deleting
topics on the way); the loop then lets its sends settle, commits everything and assigns,
so each partition it keeps resumes exactly at its committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from tams_runtime import service
from tams_runtime.epochs import EpochAssignment, EpochPlan
from tams_runtime.metrics import LagRecorder
from tams_runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

Fetch = dict[TopicPartition, list[Any]]
# A processed fetch's publish step; its future completes when the fetch's effect is durable.
Publish = Callable[[], Awaitable[asyncio.Future[Any]]]
ProcessFetch = Callable[[Fetch], Awaitable[Publish | None]]
CommitTimer = Callable[[float], None]
# How long to wait before sending a refused fetch's messages again.
RESEND_BACKOFF_S = 0.5


class Rest:
    """When an idle consumer stops polling, and what wakes it."""

    def __init__(self, after_s: float, poll_s: float) -> None:
        self.after_s = after_s
        self.poll_s = poll_s
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """A record may be waiting: fetch now (a no-op while the consumer is not resting,
        apart from one early fetch at its next rest)."""
        self._woken.set()

    async def until_woken(self, limit_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), limit_s)
        # Cleared before the fetch that follows: a wake-up from now on is not lost.
        self._woken.clear()


@dataclass
class _Published:
    """A fetch whose sends are out but may not be acknowledged yet."""

    durable: asyncio.Future[Any]
    next: dict[TopicPartition, OffsetAndMetadata]
    publish: Publish


class GroupConsumer:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        process: ProcessFetch,
        *,
        client_id: str,
        commit_interval_s: float = 0.05,
        lag_interval_s: float = 5.0,
        on_commit: CommitTimer | None = None,
        epochs: EpochAssignment | None = None,
        pace_s: Callable[[], float] | None = None,
        rest: Rest | None = None,
        recover: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.recover = recover
        self.topic = topic
        self.group_id = group_id
        self.process = process
        self.client_id = client_id
        self.commit_interval_s = commit_interval_s
        self.on_commit = on_commit
        self.epochs = epochs
        self._planning: asyncio.Task[EpochPlan] | None = None
        self.pace_s = pace_s
        self.rest = rest
        # True while resting (no fetches until woken).
        self.resting = False
        # True while the broker refuses a fetch's sends (they are sent again until it takes
        # them): nothing after them is committed meanwhile.
        self.resending = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag = LagRecorder(group_id, lag_interval_s)
        self._lag_task: asyncio.Task[None] | None = None
        # Loop passes, counted; the last one whose fetch found nothing with nothing read left
        # to send or commit; and an event set whenever a pass ends so.
        self._passes = 0
        self._caught_up_pass = 0
        self._caught_up = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *([] if self.epochs else [self.topic]),
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            # A new group starts at the oldest retained record: nothing published while the
            # service was first being deployed is lost.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            max_poll_records=self.settings.max_poll_records,
            client_id=self.client_id,
        )
        await self._consumer.start()
        if self.epochs is not None:
            self.epochs.apply(self._consumer, await self.epochs.plan(self._consumer))
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.topic}")
        self._task.add_done_callback(self._ended)
        self._lag_task = asyncio.create_task(
            self._lag.run(self._consumer), name=f"lag:{self.topic}"
        )

    async def stop(self) -> None:
        drain_s = self.settings.drain_on_stop_s
        if drain_s > 0 and self.running():
            # Caught up in a pass begun after now: a fetch already on its way may have missed
            # what was published just before the stop.
            stopped_at = self._passes
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    while self._caught_up_pass <= stopped_at:
                        self._caught_up.clear()
                        await self._caught_up.wait()
        for task in (self._lag_task, self._task, self._planning):
            if task:
                task.cancel()
                # A loop that ended by an error has reported it (`_ended`); raised again
                # here, it stopped the stop before the client left the group, and the
                # restarted service waited out the session timeout for its partitions.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._consumer:
            await self._consumer.stop()

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        assert self._consumer is not None
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        waiting: _Published | None = None
        last_commit = time.monotonic()
        last_records = time.monotonic()
        woken = False
        while True:
            self._passes += 1
            this_pass = self._passes
            plan = self._epoch_plan()
            if plan is not None and self.epochs is not None:
                await self._settle(pending, waiting)
                pending, waiting = {}, None
                self.epochs.apply(self._consumer, plan)
            # While offsets wait to be committed (or a new assignment is being worked out),
            # poll briefly so they are committed (or it is made) soon.
            busy = pending or waiting or self._planning
            if busy:
                wait_ms = int(self.commit_interval_s * 1000)
            elif self.rest is not None:
                wait_ms = self._until_rest_ms(last_records, woken)
            else:
                wait_ms = self._idle_wait_ms()
            fetch = await self._consumer.getmany(timeout_ms=wait_ms)
            woken = False
            if fetch:
                # Records held back for an older epoch are activity too: no rest now.
                last_records = time.monotonic()
            if fetch and self.epochs is not None:
                fetch = await self.epochs.in_order(self._consumer, fetch)
            publish = await self.process(fetch) if fetch else None
            if waiting is not None:
                await self._until_durable(waiting)
                pending.update(waiting.next)
                waiting = None
            if fetch:
                next_offsets = {
                    partition: OffsetAndMetadata(records[-1].offset + 1, "")
                    for partition, records in fetch.items()
                }
                if publish is None:
                    pending.update(next_offsets)
                else:
                    waiting = _Published(await publish(), next_offsets, publish)
            due = time.monotonic() - last_commit >= self.commit_interval_s
            if pending and (due or not fetch):
                started = time.perf_counter()
                await self._commit(pending)
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - started)
                pending = {}
                last_commit = time.monotonic()
            if not (fetch or pending or waiting or self._planning):
                self._caught_up_pass = this_pass
                self._caught_up.set()
            if fetch and self.pace_s is not None:
                await self._pace(fetch)
            if (
                self.rest is not None
                and not (fetch or pending or waiting or self._planning)
                and time.monotonic() - last_records >= self.rest.after_s
            ):
                await self._rest(self.rest)
                woken = True

    def _until_rest_ms(self, last_records: float, woken: bool) -> int:
        """How long an empty poll may wait before the consumer rests: just one fetch's time
        right after it was woken, otherwise until it has been idle `rest.after_s`."""
        assert self.rest is not None
        if woken:
            return self.settings.fetch_max_wait_ms + 3
        idle_s = time.monotonic() - last_records
        return max(1, min(self._idle_wait_ms(), int((self.rest.after_s - idle_s) * 1000) + 1))

    async def _rest(self, rest: Rest) -> None:
        """No fetches until woken, the poll interval passes, or the next epoch begins."""
        assert self._consumer is not None
        self._consumer.pause(*self._consumer.assignment())
        self.resting = True
        try:
            limit_s = rest.poll_s
            if self.epochs is not None:
                limit_s = min(limit_s, self.epochs.until_next_s())
            await rest.until_woken(max(limit_s, 0.0))
        finally:
            self.resting = False
            self._consumer.resume(*self._consumer.paused())

    async def _pace(self, fetch: Fetch) -> None:
        """Once a fetch has emptied the client's buffer (fewer records than a full poll),
        wait `pace_s()` before the next: the broker is then asked less often, for more."""
        interval = self.pace_s() if self.pace_s is not None else 0.0
        if interval > 0 and sum(map(len, fetch.values())) < self.settings.max_poll_records:
            await asyncio.sleep(interval)

    async def _settle(
        self, pending: dict[TopicPartition, OffsetAndMetadata], waiting: _Published | None
    ) -> None:
        """Wait for the last fetch's sends (sending them again if refused) and commit every
        durable offset."""
        assert self._consumer is not None
        if waiting is not None:
            await self._until_durable(waiting)
            pending = {**pending, **waiting.next}
        if pending:
            await self._commit(pending)

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit what this member still owns. A rebalance may have moved a partition away
        while its fetch was being applied: its new owner reads it again from the last
        commit and answers those commands from their recorded outcomes, so the offsets
        are dropped, not fatal (committing them raised and ended the loop, leaving the
        member in the group with partitions nobody read)."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "offsets not committed: the group rebalanced; the partitions' new owners "
                "read those records again",
                extra={"topic": self.topic, "error": str(exc)},
            )

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A loop ended by an error leaves its partitions assigned to this member and read
        by nobody: the service stops with the error, to be started again."""
        if task.cancelled() or task.exception() is None:
            return
        log.critical("the consume loop stopped by an error", extra={"topic": self.topic})
        service.fail(task.exception() or RuntimeError("the consume loop ended"))

    def _idle_wait_ms(self) -> int:
        """How long an empty poll may wait: a second, or until the next epoch begins."""
        if self.epochs is None:
            return 1000
        return max(1, min(1000, int(self.epochs.until_next_s() * 1000) + 1))

    def _epoch_plan(self) -> EpochPlan | None:
        """A new assignment to make now, if a plan has come in that changes it; starts the
        next plan when a new epoch has begun."""
        if self.epochs is None or self._consumer is None:
            return None
        if self._planning is None:
            if self.epochs.due():
                self._planning = asyncio.create_task(self.epochs.plan(self._consumer))
            return None
        if not self._planning.done():
            return None
        planning, self._planning = self._planning, None
        try:
            plan = planning.result()
        except Exception:
            # The current assignment still reads this epoch, made ahead during the last one;
            # a later pass tries again.
            log.exception("could not plan the epoch topics", extra={"topic": self.topic})
            return None
        return plan if self.epochs.changes(self._consumer, plan) else None

    async def _until_durable(self, published: _Published) -> None:
        """Wait until the broker has the fetch's sends, sending them again as long as it
        refuses them."""
        while True:
            try:
                await published.durable
                self.resending = False
                return
            except Exception:
                self.resending = True
                log.exception("sends not acknowledged; sending again", extra={"topic": self.topic})
            await asyncio.sleep(RESEND_BACKOFF_S)
            if self.recover is not None:
                try:
                    await self.recover()
                except Exception:
                    log.exception("could not recover before sending again")
            try:
                published.durable = await published.publish()
            except Exception:
                log.exception("could not send again", extra={"topic": self.topic})
