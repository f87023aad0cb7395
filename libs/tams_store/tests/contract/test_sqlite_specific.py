"""SQLite-only checks: migrations, and segment-owned columns survive a flow replace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tams_store import open_store_from_env
from tams_store.sqlite import SqliteStore
from tams_store.sqlite.migrations import MIGRATIONS

from .docs import flow, source


async def test_migrations_are_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        store = SqliteStore(tmp_path / "tams.db")
        await store.open()
        await store.close()
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_put_flow_keeps_segment_owned_columns(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "tams.db")
    await store.open()
    doc = flow()
    await store.write(lambda tx: (tx.put_source(source(doc["source_id"])), tx.put_flow(doc)))
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        conn.execute(
            "UPDATE flows SET seg_start = 1, seg_end = 2, segments_updated = 'x' WHERE id = ?",
            (doc["id"],),
        )
    await store.write(lambda tx: tx.put_flow({**doc, "label": "replaced"}))
    with sqlite3.connect(tmp_path / "tams.db") as conn:
        row = conn.execute(
            "SELECT seg_start, seg_end, segments_updated FROM flows WHERE id = ?", (doc["id"],)
        ).fetchone()
    assert row == (1, 2, "x")
    got = await store.read(lambda tx: tx.get_flow(doc["id"]))
    assert got is not None and got["segments_updated"] == "x" and got["label"] == "replaced"
    await store.close()


async def test_the_writer_cache_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMS_STORE", "sqlite")
    monkeypatch.setenv("TAMS_SQLITE_PATH", str(tmp_path / "tams.db"))
    monkeypatch.setenv("TAMS_SQLITE_WRITER_CACHE_MB", "8")
    store = open_store_from_env()
    assert isinstance(store, SqliteStore)
    await store.open()
    try:
        assert store._writer is not None
        cache = await store._writer.run(lambda c: c.execute("PRAGMA cache_size").fetchone()[0])
        assert cache == -8 * 1024  # KiB
    finally:
        await store.close()
