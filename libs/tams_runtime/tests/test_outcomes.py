"""Forgetting expired command outcomes (tams_runtime.outcomes), on a real SQLite store: the
old ones go in batches, recent ones stay, and a pruner with no retention never starts."""

from __future__ import annotations

import time

from tams_runtime.outcomes import NS, OutcomePruner
from tams_runtime.settings import OutcomeSettings
from tams_schema.envelopes import Outcome, new_id
from tams_store.sqlite import SqliteStore

from .waiting import until


async def record(store: SqliteStore, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    for command_id in ids:
        await store.write(lambda tx, c=command_id: tx.record_outcome(c, Outcome(status=201)))
    return ids


async def recorded(store: SqliteStore, ids: list[str]) -> list[str]:
    return [i for i in ids if await store.write(lambda tx, c=i: tx.recorded_outcome(c))]


async def test_outcomes_older_than_the_retention_are_forgotten_in_batches(
    store: SqliteStore,
) -> None:
    pruner = OutcomePruner(store, OutcomeSettings(outcome_retention_s=3600), batch=2)
    old = await record(store, 5)
    now_ns = time.time_ns()
    recent = await record(store, 2)

    # Nothing is an hour old yet. An hour after `now_ns`, the five recorded before it go
    # (batches of two, two and one) and the two recorded after it stay.
    assert await pruner.forget_expired(now_ns) == 0
    assert await pruner.forget_expired(now_ns + 3600 * NS) == 5
    assert await recorded(store, old) == []
    assert await recorded(store, recent) == recent


async def test_the_pruner_runs_on_its_own_once_started(store: SqliteStore) -> None:
    old = await record(store, 3)
    pruner = OutcomePruner(
        store, OutcomeSettings(outcome_retention_s=0.001, outcome_prune_interval_s=0.05)
    )
    await pruner.start()
    try:

        async def forgotten() -> bool:
            return await recorded(store, old) == []

        await until(forgotten)
    finally:
        await pruner.stop()


async def test_no_retention_keeps_every_outcome(store: SqliteStore) -> None:
    ids = await record(store, 2)
    pruner = OutcomePruner(store, OutcomeSettings(outcome_prune_interval_s=0.01))
    await pruner.start()
    assert pruner._task is None
    await pruner.stop()
    assert await recorded(store, ids) == ids
