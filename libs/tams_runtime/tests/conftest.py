"""Fixtures shared by the runtime's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tams_store.sqlite import SqliteStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A real SQLite store in the test's own directory."""
    db = SqliteStore(tmp_path / "tams.db")
    await db.open()
    yield db
    await db.close()
