"""Kafka's default key partitioning, with each key's hash remembered.

aiokafka hashes every message key with murmur2 written in Python, about 10 µs a message, and
this stack sends at least two keyed messages per write (the command and its event), keyed by
a flow id that the next write of that flow repeats. The partition chosen is the one Kafka's
own clients choose for the key, so any other producer or tool agrees with it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

# Enough for the flows of a busy deployment; the whole memo is dropped when it is full.
REMEMBERED_KEYS = 65_536


class KeyPartitioner:
    """A drop-in for aiokafka's `DefaultPartitioner`."""

    def __init__(self, remembered: int = REMEMBERED_KEYS) -> None:
        self.remembered = remembered
        self._hashes: dict[bytes, int] = {}

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        if len(all_partitions) == 1:
            return all_partitions[0]
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.remembered:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]
