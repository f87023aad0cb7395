"""Forgetting recorded command outcomes once their commands cannot be read again.

A recorded outcome answers a redelivered command instead of applying it again
(tams_runtime.applier), and each is kept in the store: about 0.7 KB per single-segment
registration. A command is read again only while its offset is not committed (a crash or a
rebalance: seconds), or, on Apache Kafka, when its group's committed offsets have expired
and the group starts again from the oldest command the topic keeps. With
`TAMS_COMMAND_OUTCOME_RETENTION_S` set, every service with a command consumer forgets the
outcomes older than that, oldest first, in batches of short transactions. Several services
doing it on one store only share the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tams_runtime.settings import OutcomeSettings
from tams_store import Store

log = logging.getLogger(__name__)

NS = 1_000_000_000
BATCH = 5000
# At most this many batches per pass: a backlog is worked off over several passes, so no
# pass holds the store's write lock for long.
MAX_BATCHES = 20


class OutcomePruner:
    """Forgets expired outcomes every `outcome_prune_interval_s`; off when the retention is 0."""

    def __init__(self, store: Store, settings: OutcomeSettings, batch: int = BATCH) -> None:
        self.store = store
        self.settings = settings
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def forget_expired(self, now_ns: int) -> int:
        """Forget the outcomes recorded more than the retention before `now_ns`; returns how
        many (taking the time as an argument, so a test can run it with a clock ahead)."""
        cutoff = now_ns - int(self.settings.outcome_retention_s * NS)
        forgotten = 0
        for _ in range(MAX_BATCHES):
            count: int = await self.store.write(lambda tx: tx.forget_outcomes(cutoff, self.batch))
            forgotten += count
            if count < self.batch:
                break
        if forgotten:
            log.info("forgot expired command outcomes", extra={"count": forgotten})
        return forgotten

    async def start(self) -> None:
        if self.settings.outcome_retention_s > 0:
            self._task = asyncio.create_task(self._run(), name="outcome-pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.forget_expired(time.time_ns())
            except Exception:
                # Store trouble: the next pass tries again.
                log.warning("could not forget expired command outcomes", exc_info=True)
            await asyncio.sleep(self.settings.outcome_prune_interval_s)
