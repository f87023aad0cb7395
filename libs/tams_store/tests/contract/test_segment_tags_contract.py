"""Segment tags (docs/ext-segment-tags.md) in the store port: every adapter."""

from __future__ import annotations

from typing import Any

from tams_schema.timerange import TimeRange
from tams_store import Store, TagFilter
from tams_store.segment_tags import matches

from .test_media_contract import SECOND, add, new_flow, segment


async def tagged_pages(
    store: Store,
    flow_id: str,
    tags: TagFilter,
    *,
    timerange: TimeRange | None = None,
    object_id: str | None = None,
    reverse: bool = False,
    limit: int = 3,
    scan_limit: int = 5000,
) -> list[int]:
    """Every page of a tag-filtered listing; each page holds at most `limit` segments."""
    starts: list[int] = []
    page: str | None = None
    for _ in range(1000):
        result = await store.read(
            lambda tx, p=page: tx.list_segments(
                flow_id,
                timerange=timerange,
                object_id=object_id,
                reverse=reverse,
                page=p,
                limit=limit,
                tags=tags,
                scan_limit=scan_limit,
            )
        )
        assert len(result.items) <= limit
        for item in result.items:
            assert matches(item.tags, tags)
        starts += [s.start for s in result.items]
        if result.next_key is None:
            return starts
        page = result.next_key
    raise AssertionError("the listing never ended")


# Tags of segment i (0..19); None: untagged.
def tags_of(i: int) -> dict[str, Any] | None:
    if i % 5 == 0:
        return None
    if i % 2:
        return {"genre": "news", "take": str(i)}
    return {"genre": ["sport", "news"] if i % 4 == 0 else ["sport"], "empty": []}


async def tagged_flow(store: Store, count: int = 20) -> tuple[str, list[Any]]:
    doc = await new_flow(store)
    segments = [segment(i * SECOND, (i + 1) * SECOND) for i in range(count)]
    await add(store, doc["id"], segments)
    wanted = {s.start: tags_of(i) for i, s in enumerate(segments) if tags_of(i) is not None}
    await store.write(lambda tx: tx.replace_segment_tags(doc["id"], wanted, "tagged"))
    return doc["id"], segments


def expected(segments: list[Any], tags: TagFilter) -> list[int]:
    return [s.start for i, s in enumerate(segments) if matches(tags_of(i) or {}, tags)]


async def test_tags_are_stored_and_listed(store: Store) -> None:
    flow_id, _segments = await tagged_flow(store)
    page = await store.read(
        lambda tx: tx.list_segments(
            flow_id, timerange=None, object_id=None, reverse=False, page=None, limit=100
        )
    )
    assert [s.tags for s in page.items] == [tags_of(i) or {} for i in range(20)]
    within = await store.read(
        lambda tx: tx.segments_within(flow_id, TimeRange.eternity(), object_id=None, limit=3)
    )
    assert [s.tags for s in within] == [{}, tags_of(1), tags_of(2)]
    stored = await store.read(lambda tx: tx.get_flow(flow_id))
    assert stored is not None and stored["segments_updated"] == "tagged"


async def test_replacing_with_nothing_removes_tags(store: Store) -> None:
    flow_id, _segments = await tagged_flow(store, 4)
    await store.write(
        lambda tx: tx.replace_segment_tags(flow_id, {SECOND: {}, 99: {"x": "y"}}, "t2")
    )
    page = await store.read(
        lambda tx: tx.list_segments(
            flow_id, timerange=None, object_id=None, reverse=False, page=None, limit=10
        )
    )
    assert [s.tags for s in page.items] == [{}, {}, tags_of(2), tags_of(3)]


async def test_tags_belong_to_the_flow_not_to_the_object(store: Store) -> None:
    first, segments = await tagged_flow(store, 2)
    other = await new_flow(store)
    # The same object registered in another flow: its segment there has no tags.
    await add(store, other["id"], [segment(0, SECOND, segments[1].object_id)])
    page = await store.read(
        lambda tx: tx.list_segments(
            other["id"], timerange=None, object_id=None, reverse=False, page=None, limit=10
        )
    )
    assert [s.tags for s in page.items] == [{}]
    found = await tagged_pages(store, other["id"], TagFilter(exists={"genre": True}))
    assert found == []
    assert await tagged_pages(store, first, TagFilter(exists={"genre": True})) == [SECOND]


async def test_deleted_segments_take_their_tags(store: Store) -> None:
    flow_id, segments = await tagged_flow(store, 2)
    await store.write(lambda tx: tx.delete_segments(flow_id, [segments[1]], "later"))
    await add(store, flow_id, [segment(SECOND, 2 * SECOND)])
    assert await tagged_pages(store, flow_id, TagFilter(exists={"genre": True})) == []


async def test_filters_match_like_flow_tags(store: Store) -> None:
    flow_id, segments = await tagged_flow(store)
    cases = [
        TagFilter(values={"genre": ["news"]}),
        TagFilter(values={"genre": ["sport"]}),
        TagFilter(values={"genre": ["weather", "sport"]}),
        TagFilter(values={"genre": []}),
        TagFilter(values={"take": ["3", "7"]}),
        TagFilter(exists={"empty": True}),
        TagFilter(exists={"genre": False}),
        TagFilter(exists={"genre": True, "take": False}),
        TagFilter(values={"genre": ["news"]}, exists={"empty": True}),
    ]
    for tags in cases:
        want = expected(segments, tags)
        assert want == sorted(want)
        assert await tagged_pages(store, flow_id, tags) == want, tags
        assert await tagged_pages(store, flow_id, tags, reverse=True) == want[::-1], tags


async def test_filters_and_with_timerange_and_object(store: Store) -> None:
    flow_id, segments = await tagged_flow(store)
    tags = TagFilter(values={"genre": ["sport"]})
    window = TimeRange.from_half_open(5 * SECOND, 13 * SECOND)
    want = [s for s in expected(segments, tags) if 5 * SECOND <= s < 13 * SECOND]
    assert await tagged_pages(store, flow_id, tags, timerange=window) == want
    target = segments[6]
    assert await tagged_pages(store, flow_id, tags, object_id=target.object_id) == [target.start]
    assert await tagged_pages(store, flow_id, tags, object_id=segments[7].object_id) == []


async def test_a_page_examines_a_bounded_number_of_segments(store: Store) -> None:
    flow_id, _segments = await tagged_flow(store)
    tags = TagFilter(values={"take": ["1", "19"]})
    first = await store.read(
        lambda tx: tx.list_segments(
            flow_id,
            timerange=None,
            object_id=None,
            reverse=False,
            page=None,
            limit=5,
            tags=tags,
            scan_limit=4,
        )
    )
    # Four segments examined, one match: a short page that continues after the fourth.
    assert [s.start for s in first.items] == [SECOND]
    assert first.next_key is not None
    for scan_limit in (1, 3, 4, 7):
        for reverse in (False, True):
            found = await tagged_pages(
                store, flow_id, tags, scan_limit=scan_limit, reverse=reverse, limit=1
            )
            assert found == ([SECOND, 19 * SECOND][::-1] if reverse else [SECOND, 19 * SECOND])
