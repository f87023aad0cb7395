"""Command topics in epochs, for a broker that cannot forget records (the local tansu).

tansu 0.6.0 lists every batch a partition ever stored on each fetch that returns data, and
it can delete a topic but not the records in one, so a command topic that only grows makes
every fetch slower (docs/benchmarks.md, "Sustained registrations"). With
`TAMS_KAFKA_COMMAND_EPOCH_S` set, a command produced at time t goes to the topic
`<command topic>.epoch-<t // period>` instead. The consuming service reads every epoch topic
of its command topic. Once an epoch is more than `RETIRE_AFTER_EPOCHS` periods old and the
group has committed all of it, the consumer stops reading it. It deletes it at a later epoch,
once the epoch ended longer ago than the gateway waits for a reply.

Order across epochs: a flow's commands keep their partition index in every epoch (the same
key, the same partition count), and the consumer applies an epoch's records only once the
older epochs' same partition has nothing left to read (`EpochAssignment.in_order`). Commands
in flight at the same time have no order over HTTP either; but a command that waited in an
older epoch while its service was down (its client had a 504) must not be applied after a
later one the client sent meanwhile, which went to a newer epoch. Off (0) with Apache Kafka,
which answers a fetch from an offset index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tams_runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

# Kafka's error code when a concurrent creator made the topic first: fine.
TOPIC_ALREADY_EXISTS = 36
# An epoch topic is read until this many periods after its own, then no longer once the
# group has read it to the end. It is deleted only once it ended longer ago than the gateway
# waits for a reply (`reply_timeout_s`, and at least one period after it was given up): a
# command whose producer held it longer than that between naming the topic and sending it
# could arrive after the deletion, and its client has had a 504 by then.
RETIRE_AFTER_EPOCHS = 2

# After a failed plan the consumer goes on reading its current assignment (which already
# holds the next epoch) and tries again this much later.
RETRY_AFTER_S = 1.0

_EPOCH_SUFFIX = re.compile(r"\.epoch-(\d+)$")


class TopicCreationFailed(Exception):
    """The broker refused to create a topic."""


def epoch_topic(base: str, epoch: int) -> str:
    return f"{base}.epoch-{epoch}"


def epoch_of(base: str, name: str) -> int | None:
    """The epoch of `name` if it is one of `base`'s epoch topics, else None."""
    if not name.startswith(base):
        return None
    found = _EPOCH_SUFFIX.fullmatch(name[len(base) :])
    return int(found.group(1)) if found else None


def topic_family(name: str) -> str:
    """The topic an epoch topic belongs to (itself for any other topic): a bounded metric
    label."""
    return _EPOCH_SUFFIX.sub("", name)


async def create_topics(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> None:
    """Create the topics in `wanted` (name → partitions) that do not exist yet."""
    existing = set(await admin.list_topics())
    missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing)
    # aiokafka reports failures in the response instead of raising. A topic left uncreated
    # would be auto-created by the broker on first use, with the broker's default partition
    # count, so a failure here must not pass silently.
    failed = [
        f"{topic[0]} (error {topic[1]})"
        for topic in response.topic_errors
        if topic[1] not in (0, TOPIC_ALREADY_EXISTS)
    ]
    if failed:
        raise TopicCreationFailed(f"could not create Kafka topics: {', '.join(failed)}")


class CommandTopics:
    """Names the topic a command goes to now, creating epoch topics before they are needed.

    Every producer of commands (the gateway, a service's follow-ups, its resumers) asks this
    for the topic. With epochs off it returns the command topic itself."""

    def __init__(self, settings: KafkaSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.period_s = settings.command_epoch_s
        self.clock = clock
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        # Epoch topics known to exist, by name, with their epoch: only recent ones are kept
        # (a gateway never consumes, so nothing else would ever trim it).
        self._created: dict[str, int] = {}
        self._creating: dict[str, asyncio.Task[None]] = {}
        self._producers: list[tuple[AIOKafkaProducer, frozenset[str]]] = []
        self._handed_out: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.period_s > 0

    def epoch(self) -> int:
        return int(self.clock() // self.period_s)

    def track(self, producer: AIOKafkaProducer, other_topics: Iterable[str] = ()) -> None:
        """Make `producer`'s client ask the broker about `other_topics` and the recent epoch
        topics named here, and no others (see `_track`).

        A Kafka client asks for the metadata of every topic it has ever sent to, each time
        it meets a new one, and tansu creates any topic it is asked about: left alone, a
        producer would bring every deleted epoch back, empty, once per epoch."""
        self._producers.append((producer, frozenset(other_topics)))

    async def topic(self, base: str) -> str:
        """The topic to send a command for `base` to now."""
        if not self.enabled:
            return base
        epoch = self.epoch()
        name = epoch_topic(base, epoch)
        if name not in self._created:
            await self.ensure(base, [epoch])
        if name not in self._handed_out:
            await self._track(name, epoch)
        # The next epoch's topic is made ahead, so no command waits for it at the boundary.
        upcoming = epoch_topic(base, epoch + 1)
        if upcoming not in self._created and upcoming not in self._creating:
            task = asyncio.create_task(self._create_quietly(base, epoch + 1))
            self._creating[upcoming] = task
            task.add_done_callback(lambda _: self._creating.pop(upcoming, None))
        return name

    async def _track(self, name: str, epoch: int) -> None:
        """Producers track exactly their other topics and the epoch topics named since the
        previous epoch (a send to that one may still be in flight), `name` among them.

        Every topic a producer sends to must be in that list: a client that knows a topic
        only from an earlier answer about all topics forgets it at its next metadata update,
        and its sends then wait for a leader until they time out."""
        self._handed_out = {n: e for n, e in self._handed_out.items() if e >= epoch - 1}
        self._handed_out[name] = epoch
        for producer, other_topics in self._producers:
            await producer.client.set_topics(sorted(other_topics | set(self._handed_out)))

    async def ensure(self, base: str, epochs: Iterable[int]) -> None:
        named = {epoch_topic(base, epoch): epoch for epoch in epochs}
        wanted = {name: self.settings.command_partitions for name in named}
        await create_topics(await self.admin(), wanted)
        # Nothing asks for an epoch older than the previous one again (`topic` asks for the
        # current and the next, consumers plan the current and the next).
        oldest = max(named.values(), default=self.epoch()) - 2
        self._created = {n: e for n, e in {**self._created, **named}.items() if e >= oldest}

    async def _create_quietly(self, base: str, epoch: int) -> None:
        try:
            await self.ensure(base, [epoch])
        except Exception:
            # The first command of that epoch creates it instead (and reports the failure).
            log.warning("could not create the next epoch's topic", exc_info=True)

    async def admin(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
                await admin.start()
                self._admin = admin
            return self._admin

    async def stop(self) -> None:
        for task in list(self._creating.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        # Their owner stops them too. Kept, a stopped producer's client would be asked to
        # track the next epoch's topics and never answer (its metadata task is gone), and
        # every command after a restart in place (`serve` retrying a start) would wait on it.
        self._producers.clear()

    def forget(self, names: Iterable[str]) -> None:
        for name in names:
            self._created.pop(name, None)


class EpochAssignment:
    """The consuming side: which epoch topics one consumer reads, and retiring drained ones.

    The consumer assigns itself every partition of every epoch topic of its command topic,
    with no group rebalance (tansu holds each join for half the session timeout), and
    commits its offsets to its group as before. So it must be the only consumer of its
    command topic: the local stack runs one instance of each service.
    """

    def __init__(self, topics: CommandTopics, base: str) -> None:
        self.topics = topics
        self.base = base
        self._epoch: int | None = None
        self._next_try = 0.0
        # Old epochs the group has read to the end, left out of the last plan's assignment.
        self._given_up: set[str] = set()

    def until_next_s(self) -> float:
        """Seconds until the next epoch begins."""
        period = self.topics.period_s
        return period - self.topics.clock() % period

    def due(self) -> bool:
        """True when the epoch changed since the last plan (or there was none), and a failed
        one is not being retried too soon."""
        return self._epoch != self.topics.epoch() and time.monotonic() >= self._next_try

    async def plan(self, consumer: AIOKafkaConsumer) -> EpochPlan:
        """Create this epoch's and the next one's topics, delete the old ones given up
        earlier, and say which partitions to read now: all but those of old epochs the group
        has read to the end. Runs beside the consumer's loop, which goes on meanwhile."""
        self._next_try = time.monotonic() + RETRY_AFTER_S
        epoch = self.topics.epoch()
        await self.topics.ensure(self.base, [epoch, epoch + 1])
        admin = await self.topics.admin()
        assigned = {tp.topic for tp in consumer.assignment()}
        partitions: dict[str, list[TopicPartition]] = {}
        for described in await admin.describe_topics():
            name = described["topic"]
            if epoch_of(self.base, name) is not None:
                partitions[name] = [
                    TopicPartition(name, p["partition"]) for p in described["partitions"]
                ]
        old = [n for n in partitions if (epoch_of(self.base, n) or 0) < epoch - RETIRE_AFTER_EPOCHS]
        drained = {n for n in old if await _read_to_end(consumer, partitions[n])}
        # Deleted once the last plan gave them up (a consumer still reading a deleted topic
        # would ask the broker about it, and tansu would create it again), and once no
        # gateway still waits on a command sent to them.
        deleting = sorted(
            n
            for n in drained & self._given_up
            if n not in assigned and (epoch_of(self.base, n) or 0) < epoch - self._kept_epochs()
        )
        if deleting:
            await admin.delete_topics(deleting)
            self.topics.forget(deleting)
            log.debug("deleted drained command topics", extra={"topics": deleting})
        self._given_up = drained.difference(deleting)
        reading = [tp for name, tps in partitions.items() if name not in drained for tp in tps]
        self._epoch = epoch
        return EpochPlan(epoch, frozenset(reading))

    def _kept_epochs(self) -> int:
        """How many whole periods must have passed since an epoch ended before it may go."""
        return math.ceil(self.topics.settings.reply_timeout_s / self.topics.period_s)

    async def in_order(
        self, consumer: AIOKafkaConsumer, fetch: dict[TopicPartition, list[Any]]
    ) -> dict[TopicPartition, list[Any]]:
        """The fetch without the records of any epoch whose partition has unread records in an
        older epoch's partition of the same index; those partitions are rewound to read
        them again later. Order within an index is what keeps a flow's commands in order."""
        assigned = consumer.assignment()
        kept: dict[TopicPartition, list[Any]] = {}
        for tp, records in fetch.items():
            epoch = epoch_of(self.base, tp.topic)
            if epoch is None or not records:
                kept[tp] = records
                continue
            older = [
                other
                for other in assigned
                if other.partition == tp.partition
                and (other_epoch := epoch_of(self.base, other.topic)) is not None
                and other_epoch < epoch
            ]
            if await _unread(consumer, older, fetch):
                consumer.seek(tp, records[0].offset)
            else:
                kept[tp] = records
        return kept

    @staticmethod
    def changes(consumer: AIOKafkaConsumer, plan: EpochPlan) -> bool:
        return plan.partitions != frozenset(consumer.assignment())

    @staticmethod
    def apply(consumer: AIOKafkaConsumer, plan: EpochPlan) -> None:
        """Assign the plan's partitions. The caller has committed everything it processed:
        each partition it keeps starts again at its committed offset."""
        consumer.assign(sorted(plan.partitions))


@dataclass(frozen=True)
class EpochPlan:
    epoch: int
    partitions: frozenset[TopicPartition]


async def _unread(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    fetch: dict[TopicPartition, list[Any]],
) -> bool:
    """Whether any of `partitions` holds records not yet handed to the application: in this
    fetch, or beyond its position (its highwater unknown counts as unread, until the first
    fetch answer for it)."""
    for tp in partitions:
        if fetch.get(tp):
            return True
        highwater = consumer.highwater(tp)
        if highwater is None or highwater > await consumer.position(tp):
            return True
    return False


async def _read_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """True when the group's committed offset is at the end of every partition."""
    if not partitions:
        return True
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        committed = await consumer.committed(tp)
        if ends[tp] > (committed or 0):
            return False
    return True
