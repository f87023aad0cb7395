"""POST and DELETE /objects/{id}/instances: the copies an object's `get_urls` point at.

A controlled instance lives in a storage backend this store manages (`storage_id`, labelled
with the backend's label); an uncontrolled one is a URL a client registered with its own
label, whose bytes this store never deletes. Instances belong to the object, so a change shows
in every segment of every flow that uses it. Operations never cascade to the init object.

Asking for a controlled copy queues a `copy` job: a worker copies the bytes server-side and
only then adds the backend to the object's instances, so `get_urls` never point at bytes not
yet there. Removing a controlled instance takes it out of `get_urls` at once and queues the
deletion of its bytes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tams_runtime.storage import StorageBackends
from tams_schema.envelopes import CommandEnvelope, Outcome
from tams_schema.models.media import MAX_UNCONTROLLED_URLS
from tams_store import WriteTx
from tams_store.port import MediaJob, ObjectRecord


class InstanceError(Exception):
    def __init__(self, status: int, summary: str) -> None:
        super().__init__(summary)
        type_ = {400: "BadRequest", 404: "NotFound"}.get(status, "Error")
        self.outcome = Outcome.error(status, type_, summary)


def registered_object(tx: WriteTx, object_id: str) -> ObjectRecord:
    obj = tx.get_objects([object_id]).get(object_id)
    if obj is None or not obj.registered:
        raise InstanceError(404, f"object {object_id} does not exist (or was never registered)")
    return obj


def with_instances(
    obj: ObjectRecord, controlled: list[str], uncontrolled: list[dict[str, Any]]
) -> ObjectRecord:
    return replace(
        obj, doc={**obj.doc, "controlled_storage_ids": controlled, "get_urls": uncontrolled}
    )


def too_many_urls(object_id: str) -> str:
    return (
        f"object {object_id} would have more than {MAX_UNCONTROLLED_URLS} uncontrolled "
        "instances; remove one first"
    )


def instance_conflict(obj: ObjectRecord, url: str, label: str) -> str | None:
    """Why the object cannot take the uncontrolled instance `url` labelled `label`: it has
    an instance with that label, or that URL, already. None if it can."""
    uncontrolled = obj.doc.get("get_urls", [])
    if any(u.get("label") == label for u in uncontrolled):
        return f"object {obj.object_id} already has an instance labelled {label!r}"
    if any(u.get("url") == url for u in uncontrolled):
        return f"object {obj.object_id} already has the instance {url}"
    return None


class InstanceHandler:
    """Base of the two handlers: turns an `InstanceError` into its outcome."""

    def __init__(self, backends: StorageBackends) -> None:
        self.backends = backends

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        try:
            return self.apply(tx, command.payload)
        except InstanceError as exc:
            return exc.outcome

    def apply(self, tx: WriteTx, payload: dict[str, Any]) -> Outcome:
        raise NotImplementedError


class AddInstance(InstanceHandler):
    """`instances.add`: `{storage_id}` (controlled copy) or `{url, label}` (uncontrolled)."""

    def apply(self, tx: WriteTx, payload: dict[str, Any]) -> Outcome:
        obj = registered_object(tx, payload["object_id"])
        if "storage_id" in payload:
            return self._controlled(tx, obj, payload["storage_id"])
        return self._uncontrolled(tx, obj, payload["url"], payload["label"])

    def _controlled(self, tx: WriteTx, obj: ObjectRecord, storage_id: str) -> Outcome:
        if self.backends.get(storage_id) is None:
            raise InstanceError(400, f"storage_id {storage_id} is not a storage backend here")
        if storage_id in obj.controlled_storage_ids:
            raise InstanceError(
                400, f"object {obj.object_id} already has an instance on storage {storage_id}"
            )
        for job in tx.media_jobs_of([obj.object_id]):
            if job.storage_id != storage_id:
                continue
            if job.kind == "copy":
                raise InstanceError(
                    400, f"a copy of object {obj.object_id} to {storage_id} is already under way"
                )
            raise InstanceError(
                400,
                f"an earlier instance of object {obj.object_id} on {storage_id} is still being "
                "deleted; try again shortly",
            )
        tx.queue_media_jobs([MediaJob("copy", obj.object_id, storage_id, time.time_ns())])
        return Outcome(status=201)

    def _uncontrolled(self, tx: WriteTx, obj: ObjectRecord, url: str, label: str) -> Outcome:
        if self.backends.by_label(label) is not None:
            raise InstanceError(
                400, f"label {label!r} belongs to a storage backend; choose another label"
            )
        uncontrolled = list(obj.doc.get("get_urls", []))
        conflict = instance_conflict(obj, url, label)
        if conflict is not None:
            raise InstanceError(400, conflict)
        if len(uncontrolled) >= MAX_UNCONTROLLED_URLS:
            raise InstanceError(400, too_many_urls(obj.object_id))
        uncontrolled.append({"url": url, "label": label, "presigned": False, "controlled": False})
        tx.update_objects([with_instances(obj, obj.controlled_storage_ids, uncontrolled)])
        return Outcome(status=201)


class RemoveInstance(InstanceHandler):
    """`instances.delete`: by `storage_id` or by `label`; never the last instance."""

    def apply(self, tx: WriteTx, payload: dict[str, Any]) -> Outcome:
        obj = registered_object(tx, payload["object_id"])
        controlled = obj.controlled_storage_ids
        uncontrolled = list(obj.doc.get("get_urls", []))
        storage_id: str | None = payload.get("storage_id")
        label: str | None = payload.get("label")
        if storage_id is None and label is not None:
            backend = self.backends.by_label(label)
            if backend is not None and backend.id in controlled:
                storage_id = backend.id
        if storage_id is not None:
            if storage_id not in controlled:
                raise InstanceError(
                    404, f"object {obj.object_id} has no instance on storage {storage_id}"
                )
            controlled = [s for s in controlled if s != storage_id]
        else:
            kept = [u for u in uncontrolled if u.get("label") != label]
            if len(kept) == len(uncontrolled):
                raise InstanceError(
                    404, f"object {obj.object_id} has no instance labelled {label!r}"
                )
            uncontrolled = kept
        if not controlled and not uncontrolled:
            raise InstanceError(
                400,
                f"that is the last instance of object {obj.object_id}; delete the segments "
                "that use the object to remove it",
            )
        tx.update_objects([with_instances(obj, controlled, uncontrolled)])
        if storage_id is not None:
            tx.queue_media_jobs([MediaJob("delete", obj.object_id, storage_id, time.time_ns())])
        return Outcome(status=204)
