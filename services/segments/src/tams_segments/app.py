"""Segments service wiring: storage allocation, segments, objects, deletion requests.

Consumes `tams.segments.commands` (keyed by flow id), so all media commands of one flow are
applied in order by one consumer.
"""

from __future__ import annotations

from typing import Any

from tams_runtime.service import run, serve_command_service
from tams_runtime.settings import S3Settings
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.registration import ObjectChecker, Registrar
from tams_segments.storage import Allocator

SERVICE = "segments"


async def main() -> None:
    settings = S3Settings()
    backends = StorageBackends.from_settings(settings)
    s3 = BackendClients(backends)

    def handlers(store: Any) -> dict[str, Any]:
        return {
            "storage.allocate": Allocator(backends),
            "segments.add": Registrar(store, ObjectChecker(s3)),
        }

    await serve_command_service(
        SERVICE,
        lambda kafka: kafka.topics.segments_commands,
        handlers,
        components=[s3],
        checks={"s3": s3.healthy},
    )


def entrypoint() -> None:
    run(SERVICE, main)
