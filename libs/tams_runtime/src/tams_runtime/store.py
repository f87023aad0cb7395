"""The store as every service opens it: the configured adapter, observed.

Each transaction of a request or a command gets a span (`store.read` / `store.write`, a child
of the request's or the command's), and every transaction a latency observation labelled by
operation kind and outcome, never by what it touched. Background work (pruning, polling)
makes no spans of its own: a root trace per idle poll would bury the traces that matter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tams_runtime.metrics import STORE_SECONDS
from tams_runtime.tracing import recording, tracer
from tams_runtime.web import ApiError
from tams_store import ReadTx, Store, StoreUnavailable, WriteTx, open_store_from_env
from tams_store.port import InvalidPageKey

T = TypeVar("T")


class ObservedStore:
    """A store adapter with a span and a latency sample per transaction."""

    def __init__(self, inner: Store, system: str) -> None:
        self.inner = inner
        self.system = system

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def read(self, work: Callable[[ReadTx], T]) -> T:
        return await self._observe("read", self.inner.read(work))

    async def write(self, work: Callable[[WriteTx], T]) -> T:
        return await self._observe("write", self.inner.write(work))

    async def _observe(self, operation: str, transaction: Awaitable[T]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        # Where nothing records spans, the transaction's work logs under its caller's span.
        with (
            tracer().start_as_current_span(
                f"store.{operation}",
                kind=SpanKind.CLIENT,
                attributes={"db.system": self.system, "db.operation": operation},
            )
            if recording() and trace.get_current_span().get_span_context().is_valid
            else contextlib.nullcontext()
        ):
            try:
                return await transaction
            except StoreUnavailable:
                outcome = "unavailable"
                raise
            except (ApiError, InvalidPageKey):
                # The caller's answer to a bad request, found inside the transaction (a
                # malformed page key, an unplayable flow): the store did its part.
                outcome = "refused"
                raise
            except Exception:
                outcome = "error"
                raise
            finally:
                STORE_SECONDS.labels(operation, outcome).observe(time.perf_counter() - started)


def open_store(*, writes_on_loop: bool = True) -> ObservedStore:
    """The adapter selected by TAMS_STORE, observed (`writes_on_loop`: open_store_from_env)."""
    from tams_store.settings import StoreSettings

    return ObservedStore(open_store_from_env(writes_on_loop=writes_on_loop), StoreSettings().store)
