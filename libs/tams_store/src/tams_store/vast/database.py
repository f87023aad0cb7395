"""The VAST Database adapter of the store port (`TAMS_STORE=vast`).

The SDK is synchronous and makes HTTP requests, so it runs in bounded thread pools, never
on the event loop: writes on `VAST_WRITERS` threads (one by default, so one process never
conflicts with itself), reads on `VAST_READERS` threads. Each thread owns one `Session`,
created on first use and reused; sessions get explicit request timeouts and retry limits
(the SDK's defaults are no timeout and up to a minute of retries per request) and explicit
data endpoints (so no select asks for table stats or probes the cluster's VIPs).

`store.write(work)` is one VAST transaction: every select, insert, update and delete of the
work, including the row-id selects behind updates and deletes, commits together or not at
all, and the whole work is retried on conflicts and transient failures (`retry.py`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import vastdb
from vastdb.config import BackoffConfig, SessionConfig

from tams_schema.tables import MIGRATIONS, Step
from tams_store.errors import StoreError, StoreUnavailable
from tams_store.executor import ThreadBoundExecutor
from tams_store.port import ReadTx, WriteTx
from tams_store.vast import migrations
from tams_store.vast.retry import (
    PERMANENT,
    TRANSIENT,
    RetryPolicy,
    describe,
    run_in_transaction,
)
from tams_store.vast.settings import VastSettings
from tams_store.vast.tables import QueryConfigs, TableCatalog
from tams_store.vast.transactions import VastReadTx, VastWriteTx

log = logging.getLogger(__name__)

# A session that cannot be made for good: bad keys, or not a VAST server (UnsupportedServer).
REFUSED: tuple[type[BaseException], ...] = (*PERMANENT, NotImplementedError)

T = TypeVar("T")
Connect = Callable[..., Any]


class VastStore:
    def __init__(
        self,
        settings: VastSettings,
        *,
        connect: Connect | None = None,
        steps: Sequence[Step] = MIGRATIONS,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """`connect` makes a session (default `vastdb.connect`; tests pass a double with
        the same signature); `steps` are the migrations to apply (tests pass fewer)."""
        missing = settings.missing()
        if missing:
            raise ValueError(f"TAMS_STORE=vast needs {', '.join(missing)}")
        self.settings = settings
        self._connect_fn: Connect = connect or vastdb.connect
        self.steps = list(steps)
        self.policy = RetryPolicy(
            attempts=settings.tx_attempts,
            base_s=settings.tx_backoff_base_s,
            max_s=settings.tx_backoff_max_s,
        )
        self._sleep = sleep
        self.queries = QueryConfigs(
            data_endpoints=tuple(settings.data_endpoint_list),
            scan_splits=settings.scan_splits,
            sub_splits=settings.sub_splits,
        )
        self._catalog: TableCatalog | None = None
        self._writer: ThreadBoundExecutor[Any] | None = None
        self._readers: ThreadBoundExecutor[Any] | None = None

    # --- sessions and transactions --------------------------------------------------------

    def _session(self) -> Any:
        """A new session (one HTTP round-trip: the SDK asks the cluster for its version)."""
        try:
            return self._new_session()
        except TRANSIENT as exc:
            raise StoreUnavailable(f"VAST unreachable: {describe(exc)}") from exc
        except REFUSED as exc:
            raise StoreError(f"VAST session refused: {describe(exc)}") from exc

    def _new_session(self) -> Any:
        s = self.settings
        return self._connect_fn(
            access=s.access_key,
            secret=s.secret_key,
            endpoint=s.endpoint,
            ssl_verify=s.ssl_verify,
            timeout=(s.connect_timeout_s, s.read_timeout_s),
            backoff_config=BackoffConfig(
                max_tries=s.request_max_tries, max_time=s.request_max_time_s
            ),
            config=SessionConfig(data_endpoints=s.data_endpoint_list),
        )

    def _transaction(self, session: Any, work: Callable[[Any], T]) -> T:
        if self._sleep is None:
            return run_in_transaction(session, work, self.policy)
        return run_in_transaction(session, work, self.policy, sleep=self._sleep)

    @property
    def catalog(self) -> TableCatalog:
        if self._catalog is None:
            raise StoreUnavailable("store is not open")
        return self._catalog

    # --- the port ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, load table metadata. A cluster that cannot
        be reached yet is retried for `VAST_OPEN_TIMEOUT_S` before giving up."""
        self._writer = ThreadBoundExecutor("vast-writer", self.settings.writers, self._session)
        self._readers = ThreadBoundExecutor("vast-reader", self.settings.readers, self._session)
        deadline = time.monotonic() + self.settings.open_timeout_s
        attempt = 0
        try:
            while True:
                try:
                    self._catalog = await self._writer.run(self._migrate)
                    return
                except StoreUnavailable as exc:
                    if time.monotonic() >= deadline:
                        raise
                    log.warning("VAST not available yet; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(self.policy.delay(min(attempt, 6)) + 0.1)
                    attempt += 1
        except BaseException:
            await self.close()
            raise

    def _migrate(self, session: Any) -> TableCatalog:
        """Schema, version table, pending steps (each in its own transaction), metadata."""
        s = self.settings
        sorted_ok = migrations.sorting_supported(session)
        if not sorted_ok:
            log.warning("VAST cluster has no sorted tables (5.3+); using projections instead")
        applied = self._transaction(
            session,
            lambda tx: migrations.bootstrap(tx, s.bucket, s.schema_name, sorted_ok, self.queries),
        )
        if applied > len(self.steps):
            log.warning(
                "VAST schema is newer than this service",
                extra={"applied": applied, "known": len(self.steps)},
            )
        for number in range(applied + 1, len(self.steps) + 1):
            apply = functools.partial(
                migrations.apply_step,
                bucket=s.bucket,
                path=s.schema_name,
                number=number,
                steps=self.steps,
                sorted_ok=sorted_ok,
                queries=self.queries,
            )
            self._transaction(session, apply)
        specs, metadata = self._transaction(
            session,
            lambda tx: migrations.load_metadata(tx, s.bucket, s.schema_name, self.steps),
        )
        return TableCatalog(specs=specs, metadata=metadata, queries=self.queries)

    async def close(self) -> None:
        for executor in (self._writer, self._readers):
            if executor is not None:
                # Sessions hold only pooled HTTP connections; they close with the process.
                executor.shutdown(lambda session: None)
        self._writer = self._readers = None
        self._catalog = None

    async def ping(self) -> bool:
        if self._readers is None:
            return False
        bucket = self.settings.bucket
        try:
            await self._readers.run(
                lambda session: self._transaction(session, lambda tx: tx.bucket(bucket))
            )
        except StoreError:
            return False
        return True

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")
        catalog = self.catalog
        return await self._readers.run(
            lambda session: self._transaction(session, lambda tx: work(VastReadTx(tx, catalog)))
        )

    async def write(self, work: Callable[[WriteTx], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        catalog = self.catalog

        def attempt(tx: Any) -> T:
            wtx = VastWriteTx(tx, catalog)
            result = work(wtx)
            wtx.finish()  # the summed counters, once, in the same transaction
            return result

        return await self._writer.run(lambda session: self._transaction(session, attempt))
