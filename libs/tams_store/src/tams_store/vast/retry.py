"""Runs one unit of store work as one VAST transaction, retried on conflicts and outages.

The SDK retries only idempotent requests (GET/HEAD) and `SlowDown` by itself. Everything
else reaches us: a `Conflict` with another transaction, a 503, a timeout, or a connection
lost during an insert or the commit, where the client cannot know whether the change was
applied. In every case the whole transaction is rolled back (or abandoned) and the work is
run again from the start in a new one, after a backoff with full jitter.

Running the work again is safe because every write of the adapter is idempotent, keyed on
TAMS ids (upserts by id, inserts that skip ids already present), and because commands record
their outcome in the same transaction: a command whose commit did land is found applied on
the retry and not applied twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from vastdb import errors
from vastdb._internal import QueryDataInternalError

from tams_store.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Worth a new transaction: the same work may well succeed a moment later.
TRANSIENT: tuple[type[BaseException], ...] = (
    errors.Conflict,
    errors.ServiceUnavailable,  # includes Slowdown
    errors.RequestTimeout,
    errors.InternalServerError,
    errors.InsufficientCapacity,
    errors.ConnectionError,
    errors.MissingTransaction,  # the transaction was ended under us (e.g. expired)
    QueryDataInternalError,
    requests.exceptions.RequestException,  # read timeouts are not wrapped by the SDK
)

# Problems no retry can fix: bad credentials or policy, a missing bucket, a bug.
PERMANENT: tuple[type[BaseException], ...] = (
    errors.HttpError,
    errors.Missing,
    errors.Exists,
    errors.InvalidArgument,
    errors.NotSupported,
    errors.ApiResponseError,
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_s: float = 0.05
    max_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
        return random.uniform(0.0, min(self.max_s, self.base_s * (2**attempt)))


def run_in_transaction(
    session: Any,
    work: Callable[[Any], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`work(tx)` inside `with session.transaction() as tx`, committed when it returns.

    An exception of the work itself (a domain rule, a bug) rolls back and propagates at once.
    Transient VAST failures are retried up to `policy.attempts` times and then reported as
    `StoreUnavailable`; other VAST failures as `StoreError`.
    """
    for attempt in range(policy.attempts):
        try:
            with session.transaction() as tx:
                return work(tx)
        except TRANSIENT as exc:
            if attempt + 1 >= policy.attempts:
                raise StoreUnavailable(f"VAST: {describe(exc)}") from exc
            log.info(
                "VAST transaction failed; retrying",
                extra={"attempt": attempt + 1, "error": type(exc).__name__},
            )
            sleep(policy.delay(attempt))
        except PERMANENT as exc:
            raise StoreError(f"VAST: {describe(exc)}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def describe(exc: BaseException) -> str:
    if isinstance(exc, errors.HttpError):
        return f"{type(exc).__name__} {exc.status} {exc.code or ''} {exc.message or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
