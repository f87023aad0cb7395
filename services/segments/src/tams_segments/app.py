"""Segments service wiring: storage allocation, segments (and their tags), objects,
deletion requests.

Consumes `tams.segments.commands` (keyed by flow id; object instance commands by object id;
the catalog's relayed events by their flow or source id), so all media commands of one flow
are applied in order by one consumer, and its events published in that order. A background worker
collects garbage objects, copies instances and restarts stalled deletions (`worker.py`).
"""

from __future__ import annotations

from typing import Any

from tams_runtime.bus import CommandPublisher
from tams_runtime.events import RELAY_COMMAND, Relay
from tams_runtime.service import run, serve_command_service
from tams_runtime.settings import (
    KafkaSettings,
    MediaSettings,
    S3Settings,
    check_presigned_url_timeout,
)
from tams_runtime.storage import BackendClients, StorageBackends
from tams_segments.deletion import DeletionStep, SegmentDeletion
from tams_segments.instances import AddInstance, RemoveInstance
from tams_segments.registration import ObjectChecker, Registrar
from tams_segments.storage import Allocator
from tams_segments.tagging import DELETE_COMMAND, SET_COMMAND, SegmentTagging
from tams_segments.worker import MediaWorker

SERVICE = "segments"


async def main() -> None:
    settings = S3Settings()
    media = MediaSettings()
    check_presigned_url_timeout(settings, media)
    backends = StorageBackends.from_settings(settings)
    s3 = BackendClients(backends)

    def handlers(store: Any) -> dict[str, Any]:
        return {
            "storage.allocate": Allocator(backends),
            "segments.add": Registrar(
                store, ObjectChecker(s3), frozenset(b.label for b in backends.all)
            ),
            "segments.delete": SegmentDeletion(media),
            "deletion.step": DeletionStep(media),
            "instances.add": AddInstance(backends),
            "instances.delete": RemoveInstance(backends),
            SET_COMMAND: SegmentTagging(media),
            DELETE_COMMAND: SegmentTagging(media),
            RELAY_COMMAND: Relay(),
        }

    def workers(store: Any, kafka: KafkaSettings) -> list[Any]:
        publisher = CommandPublisher(kafka, client_id=f"tams-{SERVICE}-worker")
        return [MediaWorker(store, backends, s3, publisher, media)]

    await serve_command_service(
        SERVICE,
        lambda kafka: kafka.topics.segments_commands,
        handlers,
        components=[s3],
        checks={"s3": s3.healthy},
        workers_for=workers,
    )


def entrypoint() -> None:
    run(SERVICE, main)
