"""TimeRange and Timestamp: the spec's grammar, canonical rendering, and clusivity algebra."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tams_schema.timerange import (
    MAX_NS,
    MIN_NS,
    TimeRange,
    TimeRangeError,
    TimeRangeField,
    Timestamp,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("[0:0_10:0)", "[0:0_10:0)"),
        ("(0:0_10:0]", "(0:0_10:0]"),
        ("[0:0_10:0]", "[0:0_10:0]"),
        ("(0:0_10:0)", "(0:0_10:0)"),
        ("[5:0_", "[5:0_"),
        ("5:0_", "[5:0_"),
        ("(5:0_", "(5:0_"),
        ("_5:0)", "_5:0)"),
        ("_5:0]", "_5:0]"),
        ("_5:0", "_5:0)"),
        ("(_5:0)", "_5:0)"),
        ("_", "_"),
        ("()", "()"),
        ("", "()"),
        ("[10:0]", "[10:0]"),
        ("10:0", "[10:0]"),
        ("[10:0_10:0]", "[10:0]"),
        ("(10:0)", "()"),
        ("[10:0_10:0)", "()"),
        ("(10:0_10:0]", "()"),
        ("[10:0_5:0)", "()"),
        ("-1:500000000", "[-1:500000000]"),
        ("[-10:0_-5:999999999)", "[-10:0_-5:999999999)"),
        ("[1:0_2:0", "[1:0_2:0)"),
    ],
)
def test_grammar_and_canonical_form(text: str, canonical: str) -> None:
    assert str(TimeRange.parse(text)) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "01:0",
        "1:01",
        "1:1234567890",
        "+1:0",
        "1:",
        ":1",
        "1.5",
        "[[1:0]",
        "1:0_2:0_3:0",
        " 1:0",
        "1:0 ",
        "[1:0_2:0))",
        "a:b",
        "[_]x",
    ],
)
def test_rejections_name_the_value(text: str) -> None:
    with pytest.raises(TimeRangeError) as caught:
        TimeRange.parse(text)
    assert repr(text) in str(caught.value)
    assert caught.value.value == text


def test_negative_timestamps_apply_the_sign_to_the_whole_value() -> None:
    assert Timestamp.parse("-1:500000000").ns == -1_500_000_000
    assert str(Timestamp(-1_500_000_000)) == "-1:500000000"
    assert Timestamp.parse("-0:0").ns == 0


def test_checklist_overlap_examples() -> None:
    a, b, instant = (TimeRange.parse(t) for t in ("[0:0_10:0)", "[10:0_20:0)", "[10:0]"))
    assert not a.overlaps(b)
    assert b.overlaps(instant)
    assert not a.overlaps(instant)
    assert not TimeRange.never().overlaps(TimeRange.eternity())
    assert TimeRange.parse("[0:0_10:0]").overlaps(instant)


def test_half_open_bounds() -> None:
    assert TimeRange.parse("[1:0_2:0)").half_open() == (S, 2 * S)
    assert TimeRange.parse("(1:0_2:0]").half_open() == (S + 1, 2 * S + 1)
    assert TimeRange.parse("_").half_open() == (MIN_NS, MAX_NS)
    assert TimeRange.parse("()").half_open() is None
    assert TimeRange.from_half_open(S, 2 * S) == TimeRange.parse("[1:0_2:0)")


def test_pydantic_field() -> None:
    class Segment(BaseModel):
        timerange: TimeRangeField

    segment = Segment.model_validate({"timerange": "10:0"})
    assert segment.timerange == TimeRange.instant(10 * S)
    assert segment.model_dump(mode="json") == {"timerange": "[10:0]"}
    with pytest.raises(ValidationError) as caught:
        Segment.model_validate({"timerange": "[1:0_x)"})
    assert "[1:0_x)" in str(caught.value)
    assert Segment.model_json_schema()["properties"]["timerange"]["pattern"].startswith("^")


# --- properties ---------------------------------------------------------------------------

ns_values = st.integers(min_value=-(10**15), max_value=10**15)
bounds = st.one_of(st.none(), ns_values)


@st.composite
def ranges(draw: st.DrawFn, values: st.SearchStrategy[int | None] = bounds) -> TimeRange:
    return TimeRange(draw(values), draw(values), draw(st.booleans()), draw(st.booleans()))


small = st.one_of(st.none(), st.integers(min_value=-5, max_value=5))


def members(tr: TimeRange) -> set[int]:
    """Brute force: which integers in [-8, 8] does the range hold?"""
    return {n for n in range(-8, 9) if tr.contains_ns(n)}


@given(ns_values)
def test_timestamp_round_trip(ns: int) -> None:
    assert Timestamp.parse(str(Timestamp(ns))).ns == ns


@given(ranges())
def test_parse_format_round_trip(tr: TimeRange) -> None:
    assert TimeRange.parse(str(tr)) == tr


@given(ranges(), ranges())
def test_overlap_is_symmetric_and_matches_intersection(a: TimeRange, b: TimeRange) -> None:
    assert a.overlaps(b) == b.overlaps(a)
    assert a.overlaps(b) == (not a.intersection(b).is_empty)


@given(ranges(), ranges())
def test_intersection_and_covering(a: TimeRange, b: TimeRange) -> None:
    both = a.intersection(b)
    assert a.contains(both) and b.contains(both)
    hull = a.covering(b)
    assert hull.contains(a) and hull.contains(b)


@given(ranges(), ranges())
def test_contains_agrees_with_intersection(a: TimeRange, b: TimeRange) -> None:
    if not b.is_empty:
        assert a.contains(b) == (a.intersection(b) == b)


@given(ranges())
def test_half_open_round_trip(tr: TimeRange) -> None:
    bounds_ = tr.half_open()
    if bounds_ is None:
        assert tr.is_empty
    else:
        assert TimeRange.from_half_open(*bounds_) == tr


@given(ranges(small), ranges(small))
def test_algebra_against_brute_force(a: TimeRange, b: TimeRange) -> None:
    def clipped(tr: TimeRange) -> bool:
        # Unbounded sides reach past the brute-force window; compare only bounded ranges.
        return tr.start is not None and tr.end is not None

    if clipped(a) and clipped(b):
        assert a.overlaps(b) == bool(members(a) & members(b))
        assert members(a.intersection(b)) == members(a) & members(b)
        assert a.contains(b) == (members(b) <= members(a))
        assert (a == b) == (members(a) == members(b))


@given(ranges(), ranges())
def test_sort_key_orders_disjoint_ranges(a: TimeRange, b: TimeRange) -> None:
    if a.is_empty or b.is_empty or a.overlaps(b):
        return
    first, second = sorted([a, b], key=TimeRange.sort_key)
    assert first.hi < second.lo
