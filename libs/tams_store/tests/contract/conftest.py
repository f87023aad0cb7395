"""The contract suite runs against every store adapter: add one to ADAPTERS to include it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from tams_store import Store
from tams_store.sqlite import SqliteStore

ADAPTERS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp: SqliteStore(tmp / "tams.db"),
}


@pytest_asyncio.fixture(params=sorted(ADAPTERS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    adapter = ADAPTERS[request.param](tmp_path)
    await adapter.open()
    yield adapter
    await adapter.close()
