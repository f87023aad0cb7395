"""Following one topic in a Kafka consumer group: process a fetch, then commit its offsets.

The command consumer and the event consumer share this loop. `process` gets every record of
one fetch (all partitions this member owns) and must have made its effect durable when it
returns; only then do that fetch's offsets become due, and they are committed in batches,
every `commit_interval_s`. A crash in between redelivers the records, so processing must be
idempotent. `process` is expected to retry store or broker trouble itself: the loop never
skips a fetch. Consumer lag is measured beside the loop (`LagRecorder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tams_runtime.metrics import LagRecorder
from tams_runtime.settings import KafkaSettings

Fetch = dict[TopicPartition, list[Any]]
ProcessFetch = Callable[[Fetch], Awaitable[None]]
CommitTimer = Callable[[float], None]


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
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group_id = group_id
        self.process = process
        self.client_id = client_id
        self.commit_interval_s = commit_interval_s
        self.on_commit = on_commit
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lag = LagRecorder(group_id, lag_interval_s)
        self._lag_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.topic,
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
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.topic}")
        self._lag_task = asyncio.create_task(
            self._lag.run(self._consumer), name=f"lag:{self.topic}"
        )

    async def stop(self) -> None:
        for task in (self._lag_task, self._task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._consumer:
            await self._consumer.stop()

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        assert self._consumer is not None
        pending: dict[TopicPartition, OffsetAndMetadata] = {}
        last_commit = time.monotonic()
        while True:
            # While offsets wait to be committed, poll briefly so they are committed soon.
            wait_ms = int(self.commit_interval_s * 1000) if pending else 1000
            fetch = await self._consumer.getmany(timeout_ms=wait_ms)
            if fetch:
                await self.process(fetch)
                for partition, records in fetch.items():
                    pending[partition] = OffsetAndMetadata(records[-1].offset + 1, "")
            due = time.monotonic() - last_commit >= self.commit_interval_s
            if pending and (due or not fetch):
                started = time.perf_counter()
                await self._consumer.commit(pending)
                if self.on_commit is not None:
                    self.on_commit(time.perf_counter() - started)
                pending = {}
                last_commit = time.monotonic()
