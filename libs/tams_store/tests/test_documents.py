"""Stored times: RFC 3339 strings to the integer nanoseconds the stores sort by."""

from __future__ import annotations

import pytest

from tams_store.documents import to_ns


@pytest.mark.parametrize(
    ("stamp", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-26T12:42:41.068928Z", 1_795_696_961_068_928_000),
        ("2026-11-26T13:42:41.068928+01:00", 1_795_696_961_068_928_000),
        # Before the epoch, a fraction counts back from the second before, not forward.
        ("1969-12-31T23:59:59.5Z", -500_000_000),
        ("1969-12-31T23:59:58.000001Z", -1_999_999_000),
        # Without an offset: UTC, not the machine's local time.
        ("2026-11-26T12:42:41.068928", 1_795_696_961_068_928_000),
    ],
)
def test_times_become_nanoseconds_since_the_epoch(stamp: str, ns: int) -> None:
    assert to_ns(stamp) == ns


def test_times_in_order_stay_in_order_across_the_epoch() -> None:
    stamps = ["1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.5Z"]
    assert [to_ns(s) for s in stamps] == sorted(to_ns(s) for s in stamps)
