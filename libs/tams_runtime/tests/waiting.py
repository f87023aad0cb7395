"""Waiting on a condition with a deadline, for the runtime's broker tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Check `predicate` every 50 ms until it holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)
