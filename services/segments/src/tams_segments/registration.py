"""POST /flows/{id}/segments: register uploaded objects as segments of a flow.

Rules (checklist §3.4, §4.2): the flow exists (404), is not read-only (403) and has a container
(400). Each segment's timerange is bounded and not empty, and overlaps no segment already in the
flow nor an earlier one of the same request (touching is fine). A new object was allocated for
this flow and has been uploaded; an object already registered may be reused by any flow, and its
properties (object timerange, key frames, init object) stay as first registered. An unknown
object with `get_urls` is an external object. A bulk request applies every good segment and
reports the others in `failed_segments`.

Init objects (ADR 0045): a media object registered for the first time may name an
`init_object_id` (required on flows with `essence_parameters.init_segments`). The init object
is registered with it (allocated for this flow, uploaded) in the init role, with no timerange;
an init object is never accepted as a media object, nor a media object as an init object. An
id that garbage collection forgot but whose bytes are still being deleted cannot be reused.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any

from botocore.exceptions import BotoCoreError

from tams_runtime.applier import PrepareAgain
from tams_runtime.deletion import RELEASED_FROM, segments_change_time, stamp
from tams_runtime.events import flow_context, flow_event
from tams_runtime.media import segment_view
from tams_runtime.metrics import OBJECT_BYTES_REGISTERED, SEGMENTS_REGISTERED
from tams_runtime.s3 import abandon_request, object_key
from tams_runtime.storage import BackendClients
from tams_runtime.web import RETRY_AFTER_S
from tams_schema.envelopes import CommandEnvelope, ErrorBody, Outcome
from tams_schema.models.media import MAX_UNCONTROLLED_URLS
from tams_schema.timerange import TimeRange, TimeRangeError, Timestamp
from tams_segments.instances import instance_conflict, too_many_urls, with_instances
from tams_store import Store, WriteTx
from tams_store.port import ObjectRecord, SegmentRecord

SEGMENT_FIELDS = ("ts_offset", "last_duration", "sample_offset", "sample_count", "init_object_id")


# How many registered object ids the registrar remembers (about 100 bytes each).
SEEN_REGISTERED_LIMIT = 100_000


# How long the HEAD of a new object may take, retries included. The segments service applies
# one partition's commands in order, so a hung or unreachable S3 must not hold the others for
# long: the command that needed the check gets a 503 instead, and the rest go on.
HEAD_TIMEOUT_S = 3.0
# And all of a batch's HEADs together (a bulk registration of new objects makes hundreds,
# a few at a time): the objects not checked by then count as unanswered.
BATCH_HEADS_TIMEOUT_S = 5.0


class Rejected(Exception):
    """One segment cannot be registered; the message says why."""


class ObjectStoreUnavailable(Exception):
    """S3 did not answer whether an object was uploaded (unreachable, timed out, 5xx)."""


def error(type_: str, summary: str) -> dict[str, Any]:
    return ErrorBody(type=type_, summary=summary).as_json()


class ObjectChecker:
    """Asks S3 whether objects have been uploaded (HEAD), a few at a time."""

    def __init__(self, s3: BackendClients, concurrency: int = 16) -> None:
        self.s3 = s3
        self.limit = asyncio.Semaphore(concurrency)

    async def uploaded_size(self, object_id: str, storage_id: str) -> int | None:
        """The object's size in bytes (its `ContentLength`), None if it is not uploaded."""
        client = self.s3.client(storage_id)
        async with self.limit:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    head = await client.head_object(
                        Bucket=self.s3.bucket(storage_id), Key=object_key(object_id)
                    )
            except client.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    return None
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status >= 500:
                    raise ObjectStoreUnavailable(f"S3 answered {status}") from exc
                raise
            except TimeoutError as exc:
                abandon_request()
                raise ObjectStoreUnavailable(f"no answer within {HEAD_TIMEOUT_S:g} s") from exc
            except asyncio.CancelledError:
                abandon_request()  # the batch's deadline for all its HEADs passed
                raise
            except (BotoCoreError, OSError) as exc:
                raise ObjectStoreUnavailable(type(exc).__name__) from exc
            return int(head["ContentLength"])


class Registrar:
    """The `segments.add` command handler."""

    def __init__(
        self, store: Store, checker: ObjectChecker, backend_labels: frozenset[str] = frozenset()
    ) -> None:
        self.store = store
        self.checker = checker
        # Labels of controlled instances: an external URL may not pose as one (ADR 0042).
        self.backend_labels = backend_labels
        self.uploaded: dict[str, bool] = {}
        # Objects whose upload S3 could not confirm in this batch, and why.
        self.unchecked: dict[str, str] = {}
        # Bytes of uploaded objects (HEAD), recorded at their first registration.
        self.sizes: dict[str, int] = {}
        # Objects each applied command registered for the first time, and the ids it saw
        # registered or not, until it commits (cleared with every batch).
        self._registered: dict[str, list[ObjectRecord]] = {}
        self._seen: dict[str, dict[str, bool]] = {}
        self.skipped: set[str] = set()
        # Ids last seen registered (most recent last): reused objects, the usual case for a
        # live ingest, need no upload check, so `prepare` skips its read for them.
        self._seen_registered: OrderedDict[str, None] = OrderedDict()

    async def prepare(self, commands: Sequence[CommandEnvelope]) -> None:
        """HEAD the objects (media and init) being registered for the first time, before the
        transaction. Answers are kept for this batch only: an id can be forgotten by garbage
        collection and, later, allocated and uploaded (or not) again. Ids last seen
        registered are not looked up at all (`skipped`); should one have been collected and
        allocated anew meanwhile (a client-chosen id), the transaction finds it unregistered,
        forgets it and asks for the batch to be prepared again."""
        segments = [s for c in commands for s in c.payload["segments"]]
        wanted = {s["object_id"] for s in segments} | {
            s["init_object_id"] for s in segments if s.get("init_object_id")
        }
        self.skipped = wanted & self._seen_registered.keys()
        ids = sorted(wanted - self.skipped)
        self.uploaded, self.sizes, self.unchecked = {}, {}, {}
        self._registered, self._seen = {}, {}
        if not ids:
            return
        known = await self.store.read(lambda tx: tx.get_objects(ids))
        first_time = [
            i for i in ids if i in known and not known[i].registered and known[i].storage_id
        ]
        heads = {
            i: asyncio.ensure_future(self.checker.uploaded_size(i, str(known[i].storage_id)))
            for i in first_time
        }
        if not heads:
            return
        _, late = await asyncio.wait(heads.values(), timeout=BATCH_HEADS_TIMEOUT_S)
        for head in late:
            head.cancel()
        for object_id, head in heads.items():
            if head in late:
                self.unchecked[object_id] = f"no answer within {BATCH_HEADS_TIMEOUT_S:g} s"
                continue
            failure = head.exception()
            if isinstance(failure, ObjectStoreUnavailable):
                self.unchecked[object_id] = str(failure)
            elif failure is not None:
                raise failure
            else:
                size = head.result()
                self.uploaded[object_id] = size is not None
                if size is not None:
                    self.sizes[object_id] = size

    @staticmethod
    def _unreferenced(tx: WriteTx, context: Context, object_id: str) -> bool:
        """No segment uses the object, in the store or earlier in this command."""
        return not context.uses(object_id) and bool(tx.unreferenced_objects([object_id]))

    def committed(self, command: CommandEnvelope, outcome: Outcome) -> None:
        """Count what a committed registration added (metrics only)."""
        for event in outcome.events:
            if event.event_type == "flows/segments_added":
                SEGMENTS_REGISTERED.inc(len(event.event["segments"]))
        registered = self._registered.pop(command.command_id, [])
        OBJECT_BYTES_REGISTERED.inc(sum(o.size or 0 for o in registered))
        # Only what a committed transaction saw may skip a later lookup.
        for object_id, is_registered in self._seen.pop(command.command_id, {}).items():
            if is_registered:
                self._seen_registered[object_id] = None
                self._seen_registered.move_to_end(object_id)
            else:
                self._seen_registered.pop(object_id, None)
        while len(self._seen_registered) > SEEN_REGISTERED_LIMIT:
            self._seen_registered.popitem(last=False)

    def __call__(self, tx: WriteTx, command: CommandEnvelope) -> Outcome:
        payload = command.payload
        flow_id: str = payload["flow_id"]
        items: list[dict[str, Any]] = payload["segments"]
        single: bool = payload["single"]
        flow = tx.get_flow(flow_id)
        if flow is None:
            return Outcome(status=404, body=error("NotFound", f"flow {flow_id} does not exist"))
        if flow.get("read_only"):
            return Outcome(status=403, body=error("Forbidden", f"flow {flow_id} is read-only"))
        if not flow.get("container"):
            summary = f"flow {flow_id} has no container; set it before registering segments"
            return Outcome(status=400, body=error("BadRequest", summary))

        ids = {i["object_id"] for i in items} | {
            i["init_object_id"] for i in items if i.get("init_object_id")
        }
        unchecked = sorted(ids & self.unchecked.keys())
        if unchecked:
            # Nothing of the request is applied: which segments would pass is not known.
            summary = (
                f"the object store did not answer whether object {unchecked[0]} was uploaded "
                f"({self.unchecked[unchecked[0]]}); nothing was registered, try again"
            )
            return Outcome(
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
                body=error("ServiceUnavailable", summary),
            )
        known = tx.get_objects(sorted(ids))
        stale = {i for i in ids & self.skipped if i not in known or not known[i].registered}
        if stale:
            for object_id in stale:
                self._seen_registered.pop(object_id, None)
            raise PrepareAgain(f"objects no longer registered: {sorted(stale)}")
        # Ids forgotten by garbage collection whose bytes are still being deleted.
        in_use = tx.existing_object_ids(sorted(ids - set(known)))
        context = Context(flow, known, in_use, sample_ns=sample_ns(flow))
        now = command.issued_at.astimezone(UTC)
        now_ns = int(now.timestamp() * 1_000_000_000)
        accepted: list[SegmentRecord] = []
        new_objects = context.new_objects
        failures: list[dict[str, Any]] = []
        ranges = [TimeRange.parse(item["timerange"]) for item in items]
        # A bulk registration usually extends a flow: when nothing in the flow overlaps the
        # whole request, no segment of it needs its own overlap query.
        context.span_clear = len(items) > 1 and not _overlaps_span(tx, flow_id, ranges)
        for item, timerange in zip(items, ranges, strict=True):
            try:
                record, registered, updated = self._check(tx, context, item, timerange, now_ns)
            except Rejected as exc:
                failures.append(
                    {
                        "object_id": item["object_id"],
                        "timerange": item["timerange"],
                        "error": error("SegmentRejected", str(exc)),
                    }
                )
                continue
            accepted.append(record)
            context.take(record)
            for obj in registered:
                new_objects[obj.object_id] = obj
            if updated is not None:
                context.update(updated)

        # The flow's segment time never goes back; the objects keep the command's (`now_ns`).
        now = segments_change_time(flow, now)
        if context.updated:
            tx.update_objects(list(context.updated.values()))
        tx.add_segments(flow_id, accepted, list(new_objects.values()), stamp(now))
        self._seen[command.command_id] = {
            object_id: obj.registered for object_id, obj in {**known, **new_objects}.items()
        }
        self._registered[command.command_id] = list(new_objects.values())
        events = []
        if accepted:
            objects = {**known, **context.updated, **new_objects}
            segments = [segment_view(r, objects) for r in accepted]
            added = {"flow_id": flow_id, "segments": segments}
            events.append(flow_event("segments_added", added, flow_context(tx, flow), now))
        if single:
            if failures:
                return Outcome(status=400, body=failures[0]["error"])
            return Outcome(status=201, events=events)
        if failures:
            return Outcome(status=200, body={"failed_segments": failures}, events=events)
        return Outcome(status=201, events=events)

    def _check(
        self,
        tx: WriteTx,
        context: Context,
        item: dict[str, Any],
        timerange: TimeRange,
        now_ns: int,
    ) -> tuple[SegmentRecord, list[ObjectRecord], ObjectRecord | None]:
        """One segment: its timerange, then its object (and init object). Returns the segment,
        the objects it registers for the first time, and its object with the uncontrolled
        URLs it adds when the object was registered before (None when it adds none)."""
        flow_id = context.flow["id"]
        if timerange.is_empty:
            raise Rejected("timerange is empty: a segment's end must be after its start")
        if timerange.start is None or timerange.end is None:
            raise Rejected(f"timerange {timerange} must have a start and an end")
        if timerange.holds_last_ns:
            raise Rejected(
                f"timerange {timerange} holds 9223372036:854775807, the last nanosecond of the "
                "64-bit timeline, which no segment may use: out of range"
            )
        bounds = timerange.half_open()
        assert bounds is not None
        start, end = bounds
        clash = [] if context.span_clear else tx.overlapping_segments(flow_id, start, end)
        if clash:
            existing = TimeRange.from_half_open(*clash[0])
            summary = f"timerange {timerange} overlaps the existing segment {existing}"
            if clash[0] == (start, end):
                # What a client retrying after a 504 meets when the first attempt was applied.
                summary += (
                    " of exactly this timerange (if an earlier attempt of this request timed "
                    "out, it was applied: GET the flow's segments to check)"
                )
            raise Rejected(summary)
        other = context.taken_overlapping(start, end)
        if other is not None:
            raise Rejected(f"timerange {timerange} overlaps {other.timerange} in this request")

        object_id = item["object_id"]
        init_id: str | None = item.get("init_object_id")
        if init_id is not None and init_id == object_id:
            raise Rejected(f"object {object_id} cannot be its own init object")
        obj = context.object(object_id)
        registered: list[ObjectRecord] = []
        external_urls = self._external_urls(object_id, item.get("get_urls") or [])
        updated: ObjectRecord | None = None
        if obj is not None and obj.is_init:
            raise Rejected(
                f"object {object_id} is an init object; it cannot be used as a media object"
            )
        if obj is None or not obj.registered:
            # First registration: the object's properties, its timerange among them, are
            # fixed now (`object_properties`).
            registered += self._init_object(context, object_id, init_id)
            new_range = _object_range(item, timerange)
            object_range: TimeRange | None = new_range
        else:
            # None for objects stored without one (init objects have none; so had objects
            # written straight into a store): nothing to check against.
            stored = obj.doc.get("timerange")
            try:
                object_range = TimeRange.parse(stored) if stored else None
            except TimeRangeError as exc:
                # Only versions before the shift was bounded could store such a range.
                raise Rejected(
                    f"object {object_id} has a timerange {stored} off the 64-bit timeline; "
                    "it cannot be reused"
                ) from exc
        if obj is None:
            if object_id in context.in_use:
                raise Rejected(f"object {object_id} is being deleted; it cannot be registered")
            if not item.get("get_urls"):
                raise Rejected(
                    f"object {object_id} is unknown: allocate it with POST /flows/{{id}}/storage "
                    "or give its get_urls"
                )
            registered.append(
                ObjectRecord(
                    object_id=object_id,
                    allocated_flow_id=None,
                    storage_id=None,
                    content_type=None,
                    registered=True,
                    first_referenced_by_flow=flow_id,
                    doc=object_properties(new_range, item, external_urls),
                )
            )
        elif not obj.registered:
            if obj.allocated_flow_id != flow_id:
                # The other flow is not named: the caller may not be allowed to know it.
                raise Rejected(
                    f"object {object_id} was allocated for another flow; its first "
                    "registration must be on that flow"
                )
            container = context.flow.get("container")
            if obj.content_type and obj.content_type != container:
                raise Rejected(
                    f"object {object_id} was allocated with content_type {obj.content_type} "
                    f"(an init object?); media objects of this flow are {container}"
                )
            if not self.uploaded.get(object_id):
                raise Rejected(f"object {object_id} has not been uploaded to its put_url")
            registered.append(
                ObjectRecord(
                    object_id=object_id,
                    allocated_flow_id=obj.allocated_flow_id,
                    storage_id=obj.storage_id,
                    content_type=obj.content_type,
                    registered=True,
                    first_referenced_by_flow=flow_id,
                    doc=object_properties(new_range, item, external_urls),
                    size=self.sizes.get(object_id),
                )
            )
        else:
            container = context.flow.get("container")
            if obj.content_type and obj.content_type != container:
                # flow-segment-post.json: the object's content-type MUST match the container.
                raise Rejected(
                    f"object {object_id} is {obj.content_type}; media objects of this flow "
                    f"are {container}"
                )
            if init_id is not None and init_id != obj.init_object_id:
                raise Rejected(
                    f"object {object_id} has init object {obj.init_object_id}; it cannot change"
                )
            corrected = _corrected_properties(obj, item)
            if corrected and not self._unreferenced(tx, context, object_id):
                stored_range = obj.doc.get("timerange")
                if "timerange" in corrected:
                    raise Rejected(
                        f"object {object_id} has object_timerange {stored_range}, and other "
                        "segments use it: it cannot change"
                    )
                key_frames = obj.doc.get("key_frame_count")
                has = (
                    "no key_frame_count" if key_frames is None else f"key_frame_count {key_frames}"
                )
                raise Rejected(
                    f"object {object_id} has {has}, and other segments use it: it cannot change"
                )
            if "timerange" in corrected:
                object_range = _object_range(item, timerange)
                corrected["timerange"] = str(object_range)
            if corrected or RELEASED_FROM in obj.doc:
                # No segment uses the object (its last one was deleted within the release
                # grace): a segment written again in its place may correct its properties,
                # as the spec's way to modify a segment (delete, then write) needs. Used
                # again, it is no longer the leaving flow's to decide (tams_runtime.deletion).
                doc = {k: v for k, v in obj.doc.items() if k != RELEASED_FROM}
                obj = updated = replace(obj, doc={**doc, **corrected})
            added = _new_urls(obj, external_urls)
            if added:
                uncontrolled = [*obj.doc.get("get_urls", []), *added]
                if len(uncontrolled) > MAX_UNCONTROLLED_URLS:
                    raise Rejected(too_many_urls(object_id))
                updated = with_instances(obj, obj.controlled_storage_ids, uncontrolled)
        if object_range is not None:
            _check_within_object(context, object_id, item, timerange, object_range)
        doc = {k: item[k] for k in SEGMENT_FIELDS if k in item}
        record = SegmentRecord(start, end, object_id, str(timerange), doc, now_ns)
        return record, registered, updated

    def _external_urls(self, object_id: str, urls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The segment's `get_urls`: uncontrolled instances of its object, each with its own
        label, none of them a storage backend's (ADR 0042)."""
        labels = [u["label"] for u in urls]
        if len(set(labels)) != len(labels):
            raise Rejected(f"the get_urls labels of object {object_id} must be unique")
        taken = sorted(set(labels) & self.backend_labels)
        if taken:
            raise Rejected(
                f"get_urls label {taken[0]!r} belongs to a storage backend; choose another"
            )
        return [
            {"url": u["url"], "label": u["label"], "presigned": False, "controlled": False}
            for u in urls
        ]

    def _init_object(
        self, context: Context, object_id: str, init_id: str | None
    ) -> list[ObjectRecord]:
        """Checks the init object of a media object registered for the first time (ADR 0045):
        required on flows with `init_segments`, never a media object; an init object allocated
        and uploaded for this flow is registered, in the init role, with it."""
        flow_id = context.flow["id"]
        if init_id is None:
            if (context.flow.get("essence_parameters") or {}).get("init_segments") is True:
                raise Rejected(
                    f"flow {flow_id} has init_segments: every new media object needs an "
                    "init_object_id"
                )
            return []
        init = context.object(init_id)
        if init is None:
            raise Rejected(
                f"init object {init_id} is unknown: allocate it with POST /flows/{{id}}/storage "
                "(with its content_type) and upload it first"
            )
        if init.registered:
            if not init.is_init:
                raise Rejected(f"object {init_id} is a media object; it cannot be an init object")
            return []
        if init.allocated_flow_id != flow_id:
            raise Rejected(
                f"init object {init_id} was allocated for another flow; its first "
                "registration must be on that flow"
            )
        if not self.uploaded.get(init_id):
            raise Rejected(f"init object {init_id} has not been uploaded to its put_url")
        return [
            ObjectRecord(
                object_id=init_id,
                allocated_flow_id=init.allocated_flow_id,
                storage_id=init.storage_id,
                content_type=init.content_type,
                registered=True,
                first_referenced_by_flow=flow_id,
                doc={"role": "init"},
                size=self.sizes.get(init_id),
            )
        ]


@dataclass
class Context:
    """What one registration command knows: its flow, the objects it names as the store has
    them, ids still in use by pending byte work, and the objects registered so far by it."""

    flow: dict[str, Any]
    known: dict[str, ObjectRecord]
    in_use: set[str]
    new_objects: dict[str, ObjectRecord] = field(default_factory=dict)
    # Objects registered before whose uncontrolled URLs this command adds to.
    updated: dict[str, ObjectRecord] = field(default_factory=dict)
    # Nothing in the flow overlaps the whole request: its segments need no overlap query.
    span_clear: bool = False
    # How far a segment may reach past its object's timerange (`sample_ns`).
    sample_ns: int = 1
    # The segments accepted so far, by start (they never overlap each other).
    _taken: list[SegmentRecord] = field(default_factory=list)

    def object(self, object_id: str) -> ObjectRecord | None:
        return (
            self.new_objects.get(object_id)
            or self.updated.get(object_id)
            or self.known.get(object_id)
        )

    def update(self, obj: ObjectRecord) -> None:
        """Keeps an object's added URLs: registered by this command, it is still new."""
        if obj.object_id in self.new_objects:
            self.new_objects[obj.object_id] = obj
        else:
            self.updated[obj.object_id] = obj

    def taken_overlapping(self, start: int, end: int) -> SegmentRecord | None:
        """An accepted segment overlapping [start, end): only the neighbours by start can."""
        at = bisect.bisect_left(self._taken, start, key=lambda r: r.start)
        if at > 0 and self._taken[at - 1].end > start:
            return self._taken[at - 1]
        if at < len(self._taken) and self._taken[at].start < end:
            return self._taken[at]
        return None

    def uses(self, object_id: str) -> bool:
        """Whether a segment accepted so far by this command uses the object."""
        return any(record.object_id == object_id for record in self._taken)

    def take(self, record: SegmentRecord) -> None:
        bisect.insort(self._taken, record, key=lambda r: r.start)


def _overlaps_span(tx: WriteTx, flow_id: str, ranges: list[TimeRange]) -> bool:
    """Whether any segment of the flow overlaps the span of these (bounded) timeranges."""
    bounds = [b for b in (r.half_open() for r in ranges if not r.is_empty) if b is not None]
    if not bounds:
        return True
    start, end = min(b[0] for b in bounds), max(b[1] for b in bounds)
    return bool(tx.overlapping_segments(flow_id, start, end))


def _ts_offset_ns(item: dict[str, Any]) -> int:
    return Timestamp.parse(item["ts_offset"]).ns if "ts_offset" in item else 0


def _media_range(item: dict[str, Any], timerange: TimeRange) -> TimeRange:
    """The segment's timerange on its object's timeline: moved back by `ts_offset`."""
    try:
        return timerange.shift(-_ts_offset_ns(item))
    except TimeRangeError as exc:
        raise Rejected(
            f"timerange {timerange} moved back by ts_offset {item['ts_offset']} leaves the "
            "timeline (times must fit a signed 64-bit count of nanoseconds)"
        ) from exc


def _corrected_properties(obj: ObjectRecord, item: dict[str, Any]) -> dict[str, Any]:
    """The object properties a segment POST gives other values than the object has: its
    `object_timerange` (`timerange`) and `key_frame_count`."""
    corrected: dict[str, Any] = {}
    stored_range = obj.doc.get("timerange")
    sent_range = item.get("object_timerange")
    if sent_range and stored_range and TimeRange.parse(sent_range) != TimeRange.parse(stored_range):
        corrected["timerange"] = sent_range
    if "key_frame_count" in item and item["key_frame_count"] != obj.doc.get("key_frame_count"):
        corrected["key_frame_count"] = item["key_frame_count"]
    return corrected


def _object_range(item: dict[str, Any], timerange: TimeRange) -> TimeRange:
    """The timerange of an object registered for the first time: the segment's
    `object_timerange`, by default the segment's own moved back by `ts_offset` (the segment
    uses the whole object). An object holds media, so its range is bounded and not empty."""
    sent = item.get("object_timerange")
    if not sent:
        return _media_range(item, timerange)
    object_range = TimeRange.parse(sent)
    if object_range.is_empty or object_range.start is None or object_range.end is None:
        raise Rejected(f"object_timerange {sent} must have a start and an end")
    return object_range


def _check_within_object(
    context: Context,
    object_id: str,
    item: dict[str, Any],
    timerange: TimeRange,
    object_range: TimeRange,
) -> None:
    """The segment's timerange, moved back by `ts_offset`, must lie within its object's
    (POST /flows/{id}/segments: "MUST be contained entirely within the Media Object's
    timerange"). Within one sample: editors that cut by interval overshoot by a nanosecond."""
    media = _media_range(item, timerange)
    slack = context.sample_ns
    lo, hi, object_lo, object_hi = media.lo, media.hi, object_range.lo, object_range.hi
    if (
        lo is None
        or hi is None
        or (object_lo is not None and lo < object_lo - slack)
        or (object_hi is not None and hi > object_hi + slack)
    ):
        raise Rejected(
            f"timerange {timerange} with ts_offset {item.get('ts_offset', '0:0')} is media "
            f"{media} of object {object_id}, outside the object's timerange {object_range}"
        )


def sample_ns(flow: dict[str, Any]) -> int:
    """One sample's duration on a flow (a video frame, an audio sample), rounded up; 1 ns
    when the flow gives no rate."""
    params = flow.get("essence_parameters") or {}
    rate = params.get("frame_rate")
    if isinstance(rate, dict) and rate.get("numerator"):
        return -(-1_000_000_000 * int(rate.get("denominator", 1)) // int(rate["numerator"]))
    sample_rate = params.get("sample_rate")
    if isinstance(sample_rate, int) and sample_rate > 0:
        return -(-1_000_000_000 // sample_rate)
    return 1


def object_properties(
    object_range: TimeRange, item: dict[str, Any], external_urls: list[dict[str, Any]]
) -> dict[str, Any]:
    """Properties fixed at an object's first registration, and the uncontrolled URLs it
    starts with."""
    props: dict[str, Any] = {"timerange": item.get("object_timerange") or str(object_range)}
    if "key_frame_count" in item:
        props["key_frame_count"] = item["key_frame_count"]
    if "init_object_id" in item:
        props["init_object_id"] = item["init_object_id"]
    if external_urls:
        props["get_urls"] = external_urls
    return props


def _new_urls(obj: ObjectRecord, urls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those of `urls` the object lacks. One it has already (same label, same URL) is no
    change, so a repeated registration is accepted; a label or a URL the object has with
    another partner is refused, as `POST /objects/{id}/instances` refuses it."""
    have = {u.get("label"): u.get("url") for u in obj.doc.get("get_urls", [])}
    added = []
    for url in urls:
        if have.get(url["label"]) == url["url"]:
            continue
        conflict = instance_conflict(obj, url["url"], url["label"])
        if conflict is not None:
            raise Rejected(conflict)
        added.append(url)
    return added
