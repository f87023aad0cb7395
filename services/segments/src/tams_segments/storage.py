"""POST /flows/{id}/storage: hand out object ids and presigned PUT URLs for a flow.

Object ids are random UUIDs (unguessable, ADR 0011) unless the client brings its own
(replication). The S3 key depends only on the object id, never on the flow or the time, so
an object can later be used by any flow. Each allocation is recorded against the flow so the
object's first registration can be checked to be on that flow.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from tams_runtime.s3 import object_key
from tams_runtime.storage import StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_store import WriteTx
from tams_store.port import ObjectAllocation

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000


class StorageError(Exception):
    def __init__(self, status: int, type_: str, summary: str) -> None:
        super().__init__(summary)
        self.outcome = Outcome.error(status, type_, summary)


def bad_request(summary: str) -> StorageError:
    return StorageError(400, "BadRequest", summary)


class Allocator:
    """The `storage.allocate` command handler."""

    def __init__(self, backends: StorageBackends) -> None:
        self.backends = backends

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        try:
            return self._allocate(tx, command.payload)
        except StorageError as exc:
            return exc.outcome

    def _allocate(self, tx: WriteTx, request: dict[str, Any]) -> Outcome:
        flow_id = request["flow_id"]
        flow = tx.get_flow(flow_id)
        if flow is None:
            raise StorageError(404, "NotFound", f"flow {flow_id} does not exist")
        if flow.get("read_only"):
            raise StorageError(403, "Forbidden", f"flow {flow_id} is read-only")
        container = flow.get("container")
        if not container:
            raise bad_request(f"flow {flow_id} has no container; set it before allocating")
        storage_id = request.get("storage_id")
        if storage_id is None:
            default = self.backends.default
            if default is None:
                raise bad_request("this store has no default storage backend; give storage_id")
            storage_id = default.id
        elif self.backends.get(storage_id) is None:
            raise bad_request(f"storage_id {storage_id} is not a storage backend of this store")
        presigner = self.backends.presigner(storage_id)
        if request.get("presigned") is False:
            raise bad_request("this store hands out presigned put_urls only (presigned: true)")
        content_type = request.get("content_type") or container
        init_segments = (flow.get("essence_parameters") or {}).get("init_segments") is True
        if content_type != container and not init_segments:
            raise bad_request(
                f"content_type {content_type} differs from the flow container {container}; "
                "only init-segment objects (essence_parameters.init_segments) may differ"
            )
        object_ids = request.get("object_ids")
        if object_ids is None:
            limit = min(request.get("limit") or DEFAULT_LIMIT, MAX_LIMIT)
            object_ids = [str(uuid.uuid4()) for _ in range(limit)]
        else:
            if not object_ids or len(object_ids) > MAX_LIMIT:
                raise bad_request(f"object_ids must list 1 to {MAX_LIMIT} ids")
            repeated = sorted(i for i, n in Counter(object_ids).items() if n > 1)
            if repeated:
                raise bad_request(f"object_ids lists {', '.join(repeated)} more than once")
            known = sorted(tx.existing_object_ids(object_ids))
            if known:
                raise bad_request(
                    f"object_ids already exist: {', '.join(known[:10])} (an id whose object "
                    "was deleted is free again once no put_url handed out for it can upload: "
                    "min_object_timeout after its allocation, plus the collector's grace and "
                    "15 minutes)"
                )
        now = time.time_ns()
        tx.allocate_objects(
            [ObjectAllocation(i, flow_id, storage_id, content_type, now) for i in object_ids]
        )
        media_objects = [
            {
                "object_id": object_id,
                "presigned": True,
                "put_url": {
                    "url": presigner.presign_put(object_key(object_id), content_type),
                    "content-type": content_type,
                },
            }
            for object_id in object_ids
        ]
        return Outcome(status=201, body={"media_objects": media_objects})
