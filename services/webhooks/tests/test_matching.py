"""Which events a webhook wants: event types and every filter, with their scopes, ANDed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tams_schema.envelopes import EventContext, TamsEvent
from tams_webhooks.matching import Subscription, SubscriptionIndex

FLOW, SOURCE, COLLECTOR, COLLECTOR_SOURCE, OTHER = (str(uuid.uuid4()) for _ in range(5))


def flow_event(kind: str = "updated", collected: bool = True) -> TamsEvent:
    return TamsEvent(
        key=FLOW,
        event_type=f"flows/{kind}",
        event={"flow_id": FLOW},
        context=EventContext(
            flow_id=FLOW,
            source_id=SOURCE,
            flow_collected_by=[COLLECTOR] if collected else [],
            source_collected_by=[COLLECTOR_SOURCE] if collected else [],
        ),
    )


def source_event(collected: bool = True) -> TamsEvent:
    return TamsEvent(
        key=SOURCE,
        event_type="sources/updated",
        event={"source": {"id": SOURCE}},
        context=EventContext(
            source_id=SOURCE, source_collected_by=[COLLECTOR_SOURCE] if collected else []
        ),
    )


def wants(filters: dict[str, Any], event: TamsEvent) -> bool:
    doc = {"events": ["flows/updated", "flows/segments_added", "sources/updated"], **filters}
    return Subscription.of(doc).wants(event)


@pytest.mark.parametrize(
    ("filters", "flow", "segments", "source"),
    [
        ({}, True, True, True),
        ({"flow_ids": [FLOW]}, True, True, True),
        ({"flow_ids": [OTHER]}, False, False, True),  # no effect on source events
        ({"flow_ids": []}, False, False, True),
        ({"source_ids": [SOURCE]}, True, True, True),
        ({"source_ids": [OTHER]}, False, False, False),
        ({"flow_collected_by_ids": [COLLECTOR]}, True, True, True),
        ({"flow_collected_by_ids": [OTHER]}, False, False, True),
        ({"flow_collected_by_ids": []}, False, False, True),  # only uncollected flows
        ({"source_collected_by_ids": [COLLECTOR_SOURCE]}, True, True, True),
        ({"source_collected_by_ids": [OTHER]}, False, False, False),
        ({"source_collected_by_ids": []}, False, False, False),
        ({"flow_ids": [FLOW], "source_ids": [OTHER]}, False, False, False),  # ANDed
        ({"flow_ids": [FLOW], "source_collected_by_ids": [COLLECTOR_SOURCE]}, True, True, True),
    ],
)
def test_filters_and_their_scopes(
    filters: dict[str, Any], flow: bool, segments: bool, source: bool
) -> None:
    assert wants(filters, flow_event()) is flow
    assert wants(filters, flow_event("segments_added")) is segments
    assert wants(filters, source_event()) is source


def test_empty_collection_filters_keep_only_the_uncollected() -> None:
    assert wants({"flow_collected_by_ids": []}, flow_event(collected=False))
    assert wants({"source_collected_by_ids": []}, flow_event(collected=False))
    assert wants({"source_collected_by_ids": []}, source_event(collected=False))


def test_event_types_are_required() -> None:
    assert not wants({}, flow_event("created"))
    assert not Subscription.of({"events": []}).wants(flow_event())


def test_events_without_routing_headers_fall_back_to_their_payload() -> None:
    flow = {"id": FLOW, "source_id": SOURCE, "collected_by": [COLLECTOR]}
    bare = TamsEvent(key=FLOW, event_type="flows/updated", event={"flow": flow})
    assert wants({"source_ids": [SOURCE], "flow_collected_by_ids": [COLLECTOR]}, bare)
    assert not wants({"source_ids": [OTHER]}, bare)
    deleted = TamsEvent(key=SOURCE, event_type="sources/updated", event={"source_id": SOURCE})
    assert wants({"source_ids": [SOURCE]}, deleted)


def test_an_owner_gets_only_what_they_may_read_when_it_happened() -> None:
    from tams_runtime.authz import AccessPolicy
    from tams_schema.auth import Principal
    from tams_webhooks.matching import Reader

    policy = AccessPolicy.parse(
        {"classes": {"news": {"news": ["read"]}}, "unclassified": ["read", "write"]}
    )
    news = Principal(name="n", scopes=("read",), groups=("news",))

    def event(classes: list[str] | None, kind: str = "flows/updated") -> TamsEvent:
        return TamsEvent(
            key=FLOW,
            event_type=kind,
            event={"flow_id": FLOW} if kind.startswith("flows/") else {"source_id": SOURCE},
            context=EventContext(
                flow_id=FLOW if kind.startswith("flows/") else None,
                source_id=SOURCE,
                flow_auth_classes=classes,
                source_auth_classes=classes,
            ),
        )

    events = ["flows/updated", "sources/updated"]
    mine = Subscription.of({"events": events}, Reader.of(policy, news))
    assert mine.wants(event(["news"])) and mine.wants(event([]))
    assert not mine.wants(event(["sport"]))
    assert mine.wants(event(["news"], "sources/updated"))
    assert not mine.wants(event(None))  # classes unknown: only unrestricted owners
    # Admins, owners of webhooks registered without authentication, and no policy: all.
    admin = Principal(name="a", scopes=("admin",))
    assert Reader.of(policy, admin) is None
    assert Reader.of(policy, None) is None
    assert Reader.of(AccessPolicy.off(), news) is None
    # Without the read scope an owner could not GET what happened, so gets nothing.
    writer = Principal(name="w", scopes=("write",), groups=("news",))
    assert not Subscription.of({"events": events}, Reader.of(policy, writer)).wants(event([]))


FILTER_CHOICES: list[dict[str, Any]] = [
    {},
    {"flow_ids": [FLOW]},
    {"flow_ids": [OTHER]},
    {"flow_ids": []},
    {"source_ids": [SOURCE]},
    {"source_ids": [OTHER, SOURCE]},
    {"flow_ids": [FLOW], "source_ids": [OTHER]},
    {"flow_collected_by_ids": [COLLECTOR]},
    {"source_collected_by_ids": []},
]
EVENT_TYPES = ["flows/updated", "flows/segments_added", "sources/updated", "flows/created"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(FILTER_CHOICES),
            st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=3),
        ),
        max_size=12,
    ),
    st.lists(st.integers(min_value=0, max_value=11), max_size=4),
)
def test_the_index_finds_exactly_the_subscriptions_that_want_an_event(
    registrations: list[tuple[dict[str, Any], list[str]]], removed: list[int]
) -> None:
    """Matched through the index, an event goes to the same webhooks as when every
    subscription is asked, also after some are removed or replaced."""
    index = SubscriptionIndex()
    plain: dict[str, Subscription] = {}
    for n, (filters, events) in enumerate(registrations):
        subscription = Subscription.of({"events": events, **filters})
        index[f"w{n}"] = subscription
        plain[f"w{n}"] = subscription
    for n in removed:
        index.pop(f"w{n}", None)
        plain.pop(f"w{n}", None)
    if registrations:  # a replacement with other filters moves the webhook in the index
        replacement = Subscription.of({"events": EVENT_TYPES, "source_ids": [SOURCE]})
        index["w0"] = plain["w0"] = replacement
    for event in (
        flow_event(),
        flow_event("segments_added", collected=False),
        flow_event("created"),
        source_event(),
    ):
        found = [i for i, s in index.candidates(event) if s.wants(event)]
        assert found == sorted(i for i, s in plain.items() if s.wants(event))
    assert set(index) == set(plain)
    assert index.wanted_types() == frozenset(t for s in plain.values() for t in s.events)
