"""`EpochAssignment.in_order`: a newer epoch's records wait while the same partition of an
older epoch has unread ones. Against a stand-in for the consumer's read position (no broker
needed: the rule is about offsets only; test_command_epochs.py runs it on the real one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from tams_runtime.epochs import CommandTopics, EpochAssignment, epoch_topic
from tams_runtime.settings import KafkaSettings

BASE = "tams.segments.commands"


@dataclass
class Record:
    offset: int


@dataclass
class Positions:
    """What `in_order` asks of an AIOKafkaConsumer: its assignment, each partition's last
    known highwater and read position, and rewinding."""

    highwaters: dict[TopicPartition, int | None]
    positions: dict[TopicPartition, int]
    rewound: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.highwaters)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.rewound[tp] = offset


def tp(epoch: int, partition: int = 0) -> TopicPartition:
    return TopicPartition(epoch_topic(BASE, epoch), partition)


def records(first: int, count: int) -> list[Any]:
    return [Record(first + i) for i in range(count)]


ORDER = EpochAssignment(CommandTopics(KafkaSettings(command_epoch_s=2)), BASE)


async def test_a_newer_epoch_waits_for_records_of_an_older_one_in_the_same_fetch() -> None:
    consumer = Positions({tp(1): 10, tp(2): 5}, {tp(1): 8, tp(2): 3})
    fetch = {tp(1): records(8, 2), tp(2): records(3, 2)}
    kept = await ORDER.in_order(consumer, fetch)  # type: ignore[arg-type]
    assert list(kept) == [tp(1)]
    assert consumer.rewound == {tp(2): 3}


async def test_a_newer_epoch_waits_while_an_older_one_has_unread_records() -> None:
    # Epoch 1 has records beyond what was read (highwater 10, position 8), not in this fetch.
    consumer = Positions({tp(1): 10, tp(2): 5}, {tp(1): 8, tp(2): 3})
    kept = await ORDER.in_order(consumer, {tp(2): records(3, 2)})  # type: ignore[arg-type]
    assert kept == {}
    assert consumer.rewound == {tp(2): 3}


async def test_an_older_epoch_not_yet_fetched_holds_the_newer_back() -> None:
    consumer = Positions({tp(1): None, tp(2): 5}, {tp(1): 0, tp(2): 3})
    kept = await ORDER.in_order(consumer, {tp(2): records(3, 2)})  # type: ignore[arg-type]
    assert kept == {}


async def test_read_to_the_end_older_epochs_and_other_partitions_do_not_hold_back() -> None:
    consumer = Positions(
        {tp(0): 4, tp(1): 10, tp(2): 5, tp(1, 1): 7, tp(2, 1): 2},
        {tp(0): 4, tp(1): 10, tp(2): 3, tp(1, 1): 5, tp(2, 1): 0},
    )
    # Partition 0: epochs 0 and 1 read to the end, so epoch 2's records go. Partition 1:
    # epoch 1 has two unread records, so epoch 2's wait; partition 0 is not held by that.
    fetch = {tp(2): records(3, 2), tp(2, 1): records(0, 2)}
    kept = await ORDER.in_order(consumer, fetch)  # type: ignore[arg-type]
    assert list(kept) == [tp(2)]
    assert consumer.rewound == {tp(2, 1): 0}


async def test_the_oldest_epoch_is_never_held_back() -> None:
    consumer = Positions({tp(1): 10, tp(2): 5, tp(3): 9}, {tp(1): 0, tp(2): 0, tp(3): 0})
    fetch = {tp(3): records(0, 1), tp(2): records(0, 1), tp(1): records(0, 1)}
    kept = await ORDER.in_order(consumer, fetch)  # type: ignore[arg-type]
    assert list(kept) == [tp(1)]
    assert set(consumer.rewound) == {tp(2), tp(3)}
