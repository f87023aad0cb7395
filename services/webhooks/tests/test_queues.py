"""The in-memory side of a webhook's queue, and the retry backoff."""

from __future__ import annotations

import pytest

from tams_webhooks.dispatch import HOT_LIMIT, QueuedItem, WebhookQueue, full_jitter
from tams_webhooks.payloads import EventBody


def item(seq: int) -> QueuedItem:
    return QueuedItem(seq, EventBody(f"event-{seq}", {"event_type": "flows/deleted"}))


async def test_hot_items_are_taken_only_without_a_gap() -> None:
    queue = WebhookQueue("w", 0)
    for seq in (3, 4, 5):
        queue.push(item(seq))
    assert queue.wake.is_set()
    assert queue.take_from(0) == []  # 0..2 are only in the store
    assert [i.seq for i in queue.take_from(3)] == [3, 4, 5]
    queue.push(item(6))
    queue.push(item(7))
    assert [i.seq for i in queue.take_from(7)] == [7]  # 6 was done already (read elsewhere)


async def test_a_worker_far_behind_reads_from_the_store() -> None:
    queue = WebhookQueue("w", 0)
    for seq in range(HOT_LIMIT + 1):
        queue.push(item(seq))
    assert queue.take_from(0) == []
    assert [i.seq for i in queue.take_from(HOT_LIMIT)] == [HOT_LIMIT]


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_is_full_jitter_capped(attempt: int) -> None:
    waits = [full_jitter(attempt, 0.5, 60.0) for _ in range(200)]
    ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
    assert all(0 <= w <= ceiling for w in waits)
    assert max(waits) > ceiling / 2  # spread over the whole window, not fixed
