"""The contract suite runs against every store adapter: add one to ADAPTERS to include it.

* `sqlite`: the embedded default, in a temporary file;
* `vast-double`: the VAST adapter on the strict in-memory double of the `vastdb` SDK
  (`tams_store.vast.double`), with a fresh cluster per test;
* `vast-cluster`: the VAST adapter on a real cluster, only when `VAST_ENDPOINT`,
  `VAST_ACCESS_KEY`, `VAST_SECRET_KEY` and `VAST_BUCKET` are set (marker `vast`). Each test
  gets its own schema inside one schema per run (`tams_test_<random>`), all dropped at the end.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tams_store import Store
from tams_store.sqlite import SqliteStore
from tams_store.vast import VastSettings, VastStore, migrations
from tams_store.vast.double import FakeVastCluster

CLUSTER_VARIABLES = ("VAST_ENDPOINT", "VAST_ACCESS_KEY", "VAST_SECRET_KEY", "VAST_BUCKET")
HAVE_CLUSTER = all(os.environ.get(name) for name in CLUSTER_VARIABLES)


def double_settings(schema: str = "tams") -> VastSettings:
    return VastSettings(
        endpoint="http://vast.invalid",
        access_key="access",
        secret_key="secret",
        bucket="tams",
        schema_name=schema,
    )


def double_store(cluster: FakeVastCluster, **options: Any) -> VastStore:
    """The adapter on the double, without real sleeps between retries."""
    return VastStore(double_settings(), connect=cluster.connect, sleep=lambda _: None, **options)


class RunSchema:
    """One schema per test run on a real cluster; one child schema per test."""

    def __init__(self) -> None:
        self.name = f"tams_test_{uuid.uuid4().hex[:12]}"
        self.children = 0

    def child(self) -> str:
        self.children += 1
        return f"{self.name}/t{self.children}"

    def drop(self) -> None:
        settings = VastSettings()
        session = VastStore(settings)._new_session()
        with session.transaction() as tx:
            migrations.drop_schema(tx, settings.bucket, self.name)


@pytest.fixture(scope="session")
def vast_run_schema() -> Iterator[RunSchema]:
    run = RunSchema()
    yield run
    if run.children:
        run.drop()


def _cluster_store(request: pytest.FixtureRequest, tmp: Path) -> Store:
    if not HAVE_CLUSTER:
        pytest.skip(f"needs a VAST cluster: set {', '.join(CLUSTER_VARIABLES)}")
    run: RunSchema = request.getfixturevalue("vast_run_schema")
    settings = VastSettings()
    settings.schema_name = run.child()
    return VastStore(settings)


def _double_store(request: pytest.FixtureRequest, tmp: Path) -> Store:
    seed = zlib.crc32(request.node.nodeid.encode())
    return double_store(FakeVastCluster(seed=seed))


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": lambda request, tmp: SqliteStore(tmp / "tams.db"),
    "vast-double": _double_store,
    "vast-cluster": _cluster_store,
}


@pytest_asyncio.fixture(
    params=[
        "sqlite",
        "vast-double",
        pytest.param("vast-cluster", marks=pytest.mark.vast),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    adapter = ADAPTERS[request.param](request, tmp_path)
    await adapter.open()
    yield adapter
    await adapter.close()
