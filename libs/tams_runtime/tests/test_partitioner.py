"""The remembered-hash partitioner picks the partition Kafka's default partitioner picks."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from tams_runtime.partitioner import KeyPartitioner
from tams_schema.envelopes import new_id


def test_every_key_goes_where_the_default_partitioner_sends_it() -> None:
    ours, kafkas = KeyPartitioner(remembered=50), DefaultPartitioner()
    keys = [new_id().encode() for _ in range(200)]
    for count in (1, 2, 3, 4, 12):
        partitions = list(range(count))
        for key in keys + keys:  # the second pass answers from the memo (and overflows it)
            assert ours(key, partitions, partitions) == kafkas(key, partitions, partitions)


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    ours = KeyPartitioner()
    assert {ours(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
    assert ours(None, [0, 1, 2], []) in {0, 1, 2}
