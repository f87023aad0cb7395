"""Extra service processes beside the session stack, with their own settings.

They use the session's broker and S3 server but, unless told otherwise, their own store and
their own topic prefix (so their own topics and consumer groups): whatever they do, and
however they fail, the session stack's services never see it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from tams_stack.stack import Stack


@contextlib.asynccontextmanager
async def standalone(
    session: Stack, names: tuple[str, ...], env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    data_dir = Path(tempfile.mkdtemp(prefix="tams-standalone-"))
    stack = Stack(data_dir, external=True)
    stack.env = {
        **session.env,
        "TAMS_DATA_DIR": str(data_dir),
        "TAMS_KAFKA_TOPIC_PREFIX": f"s{uuid.uuid4().hex[:8]}",
        **(env or {}),
    }
    try:
        for name in names:
            stack.start_service(name)
        await stack.wait_ready(names)
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
