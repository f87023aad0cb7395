"""Page keys are opaque to clients, but a client can craft one: base64 JSON of the right
length with values of the wrong types. Every listing refuses it as an invalid page key
(a 400 at the gateway), never as a store error (500) or an empty page. Segment pages are
checked in the media contract, on a flow that has segments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tams_store import FlowQuery, SourceQuery, Store, TagFilter
from tams_store.analytics import FlowFilter
from tams_store.cursor import encode
from tams_store.port import InvalidPageKey, WebhookQuery

from .docs import new_id

# No listing sorts on booleans, floats, nulls, objects or arrays, and none has a string
# before a number.
WRONG_KEYS = [
    encode([value] * length) for value in (True, 1.5, None, {"a": 1}, [1]) for length in (1, 2, 3)
] + [encode(["2020", 5]), encode(["2020", 5, "x"])]
# Right types, but integers no store can bind (signed 64 bits).
OUT_OF_RANGE_KEYS = [encode([2**70]), encode([2**70, "x"]), encode([-(2**64), "x", "y"])]

Listing = Callable[[Any, str], object]

LISTINGS: dict[str, Listing] = {
    "sources": lambda tx, page: tx.list_sources(SourceQuery(page=page)),
    "sources by label": lambda tx, page: tx.list_sources(SourceQuery(sort_by="label", page=page)),
    "flows": lambda tx, page: tx.list_flows(FlowQuery(page=page)),
    "flows by label": lambda tx, page: tx.list_flows(FlowQuery(sort_by="label", page=page)),
    "flows by update": lambda tx, page: tx.list_flows(
        FlowQuery(sort_by="metadata_updated", page=page)
    ),
    "object flows": lambda tx, page: tx.object_flows(new_id(), TagFilter(), page, 10),
    "profiles": lambda tx, page: tx.list_profiles(
        format=None, codec=None, label=None, page=page, limit=10
    ),
    "webhooks": lambda tx, page: tx.list_webhooks(WebhookQuery(page=page)),
    "deletion requests": lambda tx, page: tx.list_deletion_requests(
        sort_by="created", reverse_order=False, page=page, limit=10
    ),
    "deleted flows": lambda tx, page: tx.list_deleted_flows(page, 10),
    "flow usage": lambda tx, page: tx.flow_usage(FlowFilter(), page, 10),
    "flow coverage": lambda tx, page: tx.flow_coverage(FlowFilter(), None, 5, page, 10),
}


@pytest.mark.parametrize("listing", LISTINGS)
async def test_a_page_key_of_the_wrong_types_is_invalid(store: Store, listing: str) -> None:
    read = LISTINGS[listing]
    for key in WRONG_KEYS + OUT_OF_RANGE_KEYS:
        with pytest.raises(InvalidPageKey):
            await store.read(lambda tx, k=key: read(tx, k))
