"""The catalog part of the store port: what every adapter must do."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tams_schema.envelopes import Outcome, TamsEvent
from tams_schema.timerange import TimeRange
from tams_store import AccessFilter, FlowQuery, SourceQuery, Store, TagFilter
from tams_store.port import InvalidPageKey

from .docs import flow, new_id, source


async def put_all(store: Store, *docs: dict[str, Any]) -> None:
    def work(tx: Any) -> None:
        for doc in docs:
            if "source_id" in doc:
                if tx.get_source(doc["source_id"]) is None:
                    tx.put_source(source(doc["source_id"]))
                tx.put_flow(doc)
            else:
                tx.put_source(doc)

    await store.write(work)


async def flow_ids(store: Store, query: FlowQuery) -> list[str]:
    """Every page of a flow listing, in order."""
    found: list[str] = []
    page: str | None = None
    while True:
        current = FlowQuery(**{**query.__dict__, "page": page})
        result = await store.read(lambda tx, q=current: tx.list_flows(q))
        found += [f["id"] for f in result.items]
        if result.next_key is None:
            return found
        page = result.next_key


async def test_flow_round_trip_and_computed_fields(store: Store) -> None:
    member, collector = flow(), flow()
    collector["flow_collection"] = [{"id": member["id"], "role": "video"}]
    await put_all(store, member, collector)
    got = await store.read(lambda tx: tx.get_flow(member["id"]))
    assert got is not None
    assert got["collected_by"] == [collector["id"]]
    assert "timerange" not in got
    got_collector = await store.read(lambda tx: tx.get_flow(collector["id"]))
    assert got_collector is not None and "collected_by" not in got_collector
    assert got_collector["flow_collection"] == [{"id": member["id"], "role": "video"}]
    assert await store.read(lambda tx: tx.get_flow(new_id())) is None


async def test_source_collections_are_inferred_in_order(store: Store) -> None:
    video, audio = flow(), flow()
    multi = flow(flow_collection=[{"id": video["id"], "role": "v"}, {"id": audio["id"]}])
    await put_all(store, video, audio, multi)
    multi_source = await store.read(lambda tx: tx.get_source(multi["source_id"]))
    assert multi_source is not None
    assert multi_source["source_collection"] == [
        {"id": video["source_id"], "role": "v"},
        {"id": audio["source_id"]},
    ]
    member_source = await store.read(lambda tx: tx.get_source(video["source_id"]))
    assert member_source is not None
    assert member_source["collected_by"] == [multi["source_id"]]
    top = await store.read(lambda tx: tx.list_sources(SourceQuery(collected_by_ids=[], limit=1000)))
    assert multi["source_id"] in {s["id"] for s in top.items}
    assert video["source_id"] not in {s["id"] for s in top.items}
    by_collector = await store.read(
        lambda tx: tx.list_sources(SourceQuery(collected_by_ids=[multi["source_id"]]))
    )
    assert {s["id"] for s in by_collector.items} == {video["source_id"], audio["source_id"]}


async def test_source_routing_is_what_get_source_says_of_tags_and_collectors(
    store: Store,
) -> None:
    member = flow()
    collector = flow(flow_collection=[{"id": member["id"]}])
    await put_all(store, source(member["source_id"], tags={"auth_classes": ["news"]}), member)
    await put_all(store, collector)

    def both(tx: Any, source_id: str) -> tuple[Any, Any]:
        return tx.get_source(source_id), tx.source_routing(source_id)

    for source_id in (member["source_id"], collector["source_id"]):
        full, routing = await store.read(lambda tx, s=source_id: both(tx, s))
        assert routing == {k: full[k] for k in ("tags", "collected_by") if k in full}
    member_routing = await store.read(lambda tx: tx.source_routing(member["source_id"]))
    assert member_routing == {
        "tags": {"auth_classes": ["news"]},
        "collected_by": [collector["source_id"]],
    }
    assert await store.read(lambda tx: tx.source_routing(new_id())) is None


async def test_tag_filters(store: Store) -> None:
    a = flow(tags={"lang": ["en", "fr"], "genre": "news"})
    b = flow(tags={"lang": "cy"})
    c = flow(tags={"empty": []})
    await put_all(store, a, b, c)

    async def ids(tags: TagFilter) -> set[str]:
        return set(await flow_ids(store, FlowQuery(tags=tags)))

    assert await ids(TagFilter(values={"lang": ["fr"]})) == {a["id"]}
    assert await ids(TagFilter(values={"lang": ["cy", "fr"]})) == {a["id"], b["id"]}
    assert await ids(TagFilter(values={"lang": ["f"]})) == set()  # exact, never substring
    assert await ids(TagFilter(values={"lang": ["en"], "genre": ["news"]})) == {a["id"]}
    assert await ids(TagFilter(exists={"empty": True})) == {c["id"]}
    assert await ids(TagFilter(exists={"lang": False})) == {c["id"]}


async def test_flow_filters(store: Store) -> None:
    source_id = new_id()
    a = flow(source_id=source_id, label="A", status="ingesting")
    b = flow(codec="video/jpeg", profile_id=new_id())
    b["essence_parameters"] = {
        **b["essence_parameters"],
        "frame_width": 1280,
        "init_segments": True,
    }
    # An image flow of the same size: frame size filters are on video flows only.
    still = flow(
        format="urn:x-tam:format:image",
        codec="image/jpeg",
        essence_parameters={"frame_width": 1280, "frame_height": 1080},
    )
    await put_all(store, a, b, still)
    assert await flow_ids(store, FlowQuery(source_id=source_id)) == [a["id"]]
    assert await flow_ids(store, FlowQuery(codec="video/jpeg")) == [b["id"]]
    assert await flow_ids(store, FlowQuery(label="A")) == [a["id"]]
    assert await flow_ids(store, FlowQuery(status="ingesting")) == [a["id"]]
    assert await flow_ids(store, FlowQuery(profile_id=b["profile_id"])) == [b["id"]]
    assert await flow_ids(store, FlowQuery(frame_width=1280)) == [b["id"]]
    assert await flow_ids(store, FlowQuery(init_segments=True)) == [b["id"]]
    assert set(await flow_ids(store, FlowQuery(init_segments=False))) == {a["id"], still["id"]}
    assert set(await flow_ids(store, FlowQuery(frame_height=1080))) == {a["id"], b["id"]}
    empty = TimeRange.never()
    assert set(await flow_ids(store, FlowQuery(timerange=empty))) == {a["id"], b["id"], still["id"]}
    assert await flow_ids(store, FlowQuery(timerange=TimeRange.eternity())) == []
    # The last nanosecond, which no segment may hold, is not an empty range: no flow covers it.
    last_ns = TimeRange.parse("[9223372036:854775807]")
    assert await flow_ids(store, FlowQuery(timerange=last_ns)) == []


@pytest.mark.parametrize("sort_by", ["created", "metadata_updated", "label"])
@pytest.mark.parametrize("reverse", [False, True])
async def test_paging_visits_every_item_once_in_order(
    store: Store, sort_by: Any, reverse: bool
) -> None:
    marker = new_id()
    docs = []
    for i in range(25):
        doc = flow(at=i % 7, tags={"m": marker})
        doc["metadata_updated"] = doc["created"]
        if i % 4:
            doc["label"] = f"label {i % 5}"
        docs.append(doc)
    await put_all(store, *docs)
    query = FlowQuery(
        tags=TagFilter(values={"m": [marker]}), sort_by=sort_by, reverse_order=reverse, limit=7
    )
    got = await flow_ids(store, query)

    def key(doc: dict[str, Any]) -> tuple[Any, ...]:
        if sort_by == "label":
            return ("label" not in doc, doc.get("label", ""), doc["id"])
        return (doc["created"], doc["id"])

    newest_first = sort_by != "label"
    expected = sorted(docs, key=key, reverse=newest_first != reverse)
    assert got == [d["id"] for d in expected]


async def test_garbage_page_key(store: Store) -> None:
    for key in ("garbage!", "W10", "bm90IGpzb24"):
        with pytest.raises(InvalidPageKey):
            await store.read(lambda tx, k=key: tx.list_flows(FlowQuery(page=k)))


async def test_delete_flow_removes_it_from_collections(store: Store) -> None:
    member = flow()
    collector = flow(flow_collection=[{"id": member["id"]}])
    await put_all(store, member, collector)
    await store.write(lambda tx: tx.delete_flow(member["id"]))
    got = await store.read(lambda tx: tx.get_flow(collector["id"]))
    assert got is not None and got["flow_collection"] == []
    assert await store.write(lambda tx: tx.count_flows_of_source(member["source_id"])) == 0


async def test_write_is_rolled_back_when_the_work_raises(store: Store) -> None:
    doc = flow()

    def work(tx: Any) -> None:
        tx.put_source(source(doc["source_id"]))
        tx.put_flow(doc)
        raise RuntimeError("rule violated half-way")

    with pytest.raises(RuntimeError):
        await store.write(work)
    assert await store.read(lambda tx: tx.get_flow(doc["id"])) is None
    assert await store.read(lambda tx: tx.get_source(doc["source_id"])) is None


async def test_outcomes_are_recorded(store: Store) -> None:
    outcome = Outcome(
        status=201,
        body={"id": "x"},
        events=[TamsEvent(key="k", event_type="flows/created", event={"flow": {}})],
    )
    command_id = new_id()
    await store.write(lambda tx: tx.record_outcome(command_id, outcome))
    got = await store.write(lambda tx: tx.recorded_outcome(command_id))
    assert got == outcome
    assert await store.write(lambda tx: tx.recorded_outcome(new_id())) is None


async def test_old_outcomes_are_forgotten_oldest_first(store: Store) -> None:
    """Outcomes recorded before the cutoff go, a batch at a time and every part of each (a
    bulk registration's outcome spans several rows on VAST); later ones stay."""
    large = Outcome(
        status=201,
        events=[
            TamsEvent(
                key="k",
                event_type="flows/segments_added",
                event={"segments": [{"timerange": f"[{i}:0_{i + 1}:0)"} for i in range(5000)]},
            )
        ],
    )
    small = Outcome(status=204)
    old = [new_id(), new_id()]
    await store.write(lambda tx: tx.record_outcome(old[0], large))
    await store.write(lambda tx: tx.record_outcome(old[1], small))
    cutoff = time.time_ns()
    kept = new_id()
    await store.write(lambda tx: tx.record_outcome(kept, small))

    assert await store.write(lambda tx: tx.forget_outcomes(cutoff, 1)) == 1
    assert await store.write(lambda tx: tx.forget_outcomes(cutoff, 100)) == 1
    assert await store.write(lambda tx: tx.forget_outcomes(cutoff, 100)) == 0
    for command_id in old:
        assert await store.write(lambda tx, c=command_id: tx.recorded_outcome(c)) is None
    assert await store.write(lambda tx: tx.recorded_outcome(kept)) == small


async def test_profiles(store: Store) -> None:
    profile = {
        "id": new_id(),
        "label": "p",
        "created": "2026-01-01T00:00:00.000000Z",
        "flow_metadata": {"format": "urn:x-nmos:format:audio", "codec": "audio/aac"},
    }
    await store.write(lambda tx: tx.put_profile(profile))
    assert await store.read(lambda tx: tx.get_profile(profile["id"])) == profile
    page = await store.read(
        lambda tx: tx.list_profiles(
            format="urn:x-nmos:format:audio", codec=None, label="p", page=None, limit=10
        )
    )
    assert [p["id"] for p in page.items] == [profile["id"]]


async def test_access_filter_is_anded_with_the_callers_tag_filters(store: Store) -> None:
    """Fine-grained authorisation: `access` keeps flows/sources with an allowed class (or
    none, when unclassified ones are allowed) and is ANDed with the caller's own filters."""
    marker = new_id()

    def tagged(classes: Any) -> dict[str, Any]:
        tags: dict[str, Any] = {"m": marker}
        if classes is not None:
            tags["auth_classes"] = classes
        return flow(tags=tags)

    news, sport, both, single = (
        tagged(["news"]),
        tagged(["sport"]),
        tagged(["sport", "news"]),
        tagged("news"),
    )
    unset, emptied = tagged(None), tagged([])
    await put_all(store, news, sport, both, single, unset, emptied)
    mine = TagFilter(values={"m": [marker]})

    async def visible(access: AccessFilter, **extra: Any) -> set[str]:
        tags = TagFilter(values={**mine.values, **extra}, access=access)
        return set(await flow_ids(store, FlowQuery(tags=tags, limit=2)))

    ids = {
        name: doc["id"]
        for name, doc in (
            ("news", news),
            ("sport", sport),
            ("both", both),
            ("single", single),
            ("unset", unset),
            ("emptied", emptied),
        )
    }
    news_only = AccessFilter(classes=("news",))
    assert await visible(news_only) == {ids["news"], ids["both"], ids["single"]}
    assert await visible(AccessFilter(classes=("news",), unclassified=True)) == {
        ids["news"],
        ids["both"],
        ids["single"],
        ids["unset"],
        ids["emptied"],
    }
    assert await visible(AccessFilter(unclassified=True)) == {ids["unset"], ids["emptied"]}
    assert await visible(AccessFilter()) == set()
    # The caller's own `tag.auth_classes` filter narrows what the permission allows.
    assert await visible(news_only, auth_classes=["sport"]) == {ids["both"]}
    # Sources are filtered the same way.
    classified = source(tags={"m": marker, "auth_classes": ["news"]})
    open_source = source(tags={"m": marker})
    await put_all(store, classified, open_source)
    page = await store.read(
        lambda tx: tx.list_sources(
            SourceQuery(tags=TagFilter(values=mine.values, access=news_only))
        )
    )
    assert [s["id"] for s in page.items] == [classified["id"]]


async def source_ids(store: Store, query: SourceQuery) -> list[str]:
    """Every page of a source listing, in order."""
    found: list[str] = []
    page: str | None = None
    while True:
        current = SourceQuery(**{**query.__dict__, "page": page})
        result = await store.read(lambda tx, q=current: tx.list_sources(q))
        found += [s["id"] for s in result.items]
        if result.next_key is None:
            return found
        page = result.next_key


async def test_empty_collected_by_filter_is_relative_to_the_access_filter(store: Store) -> None:
    """Under fine-grained authorisation `collected_by` names only collections the caller may
    read, so `collected_by_ids=[]` (top-level items) means: collected by nothing the caller
    may read. An item collected only by a hidden collection is listed; one also collected by
    a readable collection is not. Filtered in the query: pages of one stay full."""
    marker = new_id()
    news_only = AccessFilter(classes=("news",))
    with_unclassified = AccessFilter(classes=("news",), unclassified=True)

    def tagged(classes: Any, **extra: Any) -> dict[str, Any]:
        tags: dict[str, Any] = {"m": marker}
        if classes is not None:
            tags["auth_classes"] = classes
        return flow(tags=tags, **extra)

    hidden_only, also_open, open_only, loose_member, plain = (tagged(["news"]) for _ in range(5))
    open_col = tagged(["news"], flow_collection=[{"id": also_open["id"]}, {"id": open_only["id"]}])
    hidden_col = tagged(
        ["sport"], flow_collection=[{"id": hidden_only["id"]}, {"id": also_open["id"]}]
    )
    loose_col = tagged(None, flow_collection=[{"id": loose_member["id"]}])
    await put_all(store, hidden_only, also_open, open_only, loose_member, plain)
    await put_all(store, open_col, hidden_col, loose_col)

    async def top_flows(access: AccessFilter | None) -> set[str]:
        tags = TagFilter(values={"m": [marker]}, access=access)
        return set(await flow_ids(store, FlowQuery(tags=tags, collected_by_ids=[], limit=1)))

    assert await top_flows(None) == {open_col["id"], hidden_col["id"], loose_col["id"], plain["id"]}
    assert await top_flows(news_only) == {
        open_col["id"],
        hidden_only["id"],
        loose_member["id"],
        plain["id"],
    }
    assert await top_flows(with_unclassified) == {
        open_col["id"],
        hidden_only["id"],
        loose_col["id"],
        plain["id"],
    }

    # Sources: a collector is readable by its source's own tags (not its flow's).
    def classified(classes: Any) -> dict[str, Any]:
        tags: dict[str, Any] = {"m": marker}
        if classes is not None:
            tags["auth_classes"] = classes
        return source(tags=tags)

    s_hidden_only, s_also_open, s_open_only, s_loose_member, s_plain = (
        classified(["news"]) for _ in range(5)
    )
    s_open, s_hidden, s_loose = classified(["news"]), classified(["sport"]), classified(None)
    await put_all(
        store, s_hidden_only, s_also_open, s_open_only, s_loose_member, s_plain, s_open, s_hidden
    )
    await put_all(store, s_loose)
    members = {
        name: flow(source_id=s["id"])
        for name, s in (
            ("hidden_only", s_hidden_only),
            ("also_open", s_also_open),
            ("open_only", s_open_only),
            ("loose_member", s_loose_member),
            ("plain", s_plain),
        )
    }
    await put_all(store, *members.values())
    await put_all(
        store,
        # Flow tags contrary to their sources' classes: they must not matter here.
        flow(
            source_id=s_open["id"],
            tags={"auth_classes": ["sport"]},
            flow_collection=[
                {"id": members["also_open"]["id"]},
                {"id": members["open_only"]["id"]},
            ],
        ),
        flow(
            source_id=s_hidden["id"],
            tags={"auth_classes": ["news"]},
            flow_collection=[
                {"id": members["hidden_only"]["id"]},
                {"id": members["also_open"]["id"]},
            ],
        ),
        flow(source_id=s_loose["id"], flow_collection=[{"id": members["loose_member"]["id"]}]),
    )

    async def top_sources(access: AccessFilter | None) -> set[str]:
        tags = TagFilter(values={"m": [marker]}, access=access)
        return set(await source_ids(store, SourceQuery(tags=tags, collected_by_ids=[], limit=1)))

    assert await top_sources(None) == {s_open["id"], s_hidden["id"], s_loose["id"], s_plain["id"]}
    assert await top_sources(news_only) == {
        s_open["id"],
        s_hidden_only["id"],
        s_loose_member["id"],
        s_plain["id"],
    }
    assert await top_sources(with_unclassified) == {
        s_open["id"],
        s_hidden_only["id"],
        s_loose["id"],
        s_plain["id"],
    }
