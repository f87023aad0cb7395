"""Segments service wiring: storage allocation, segments, objects, deletion requests.

Consumes `tams.segments.commands` (keyed by flow id), so all media commands of one flow are
applied in order by one consumer.
"""

from __future__ import annotations

from tams_runtime.s3 import Presigner
from tams_runtime.service import run, serve_command_service
from tams_runtime.settings import S3Settings
from tams_segments.storage import Allocator

SERVICE = "segments"


async def main() -> None:
    s3 = S3Settings()
    presigner = Presigner.from_settings(s3, s3.presigned_url_timeout_s)
    handlers = {"storage.allocate": Allocator(s3, presigner)}
    await serve_command_service(SERVICE, lambda kafka: kafka.topics.segments_commands, handlers)


def entrypoint() -> None:
    run(SERVICE, main)
