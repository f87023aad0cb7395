"""TimeRange and Timestamp: the spec's grammar, canonical rendering, and clusivity algebra."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tams_schema.timerange import (
    MAX_NS,
    MIN_NS,
    TIMERANGE_PATTERN,
    TIMESTAMP_PATTERN,
    TimeRange,
    TimeRangeError,
    TimeRangeField,
    Timestamp,
    TimestampField,
)

S = 1_000_000_000
SPEC_SCHEMAS = Path("/work/shared/tams-api/schemas")

# --- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns", "canonical"),
    [
        ("0:0", 0, "0:0"),
        ("-0:0", 0, "0:0"),
        ("10:5", 10 * S + 5, "10:5"),
        ("1:500000000", 1_500_000_000, "1:500000000"),
        ("-1:500000000", -1_500_000_000, "-1:500000000"),
        ("-0:5", -5, "-0:5"),
        ("0:999999999", S - 1, "0:999999999"),
        ("1694429247:40000000", 1694429247 * S + 40_000_000, "1694429247:40000000"),
        ("9223372036:854775807", MAX_NS, "9223372036:854775807"),
        ("-9223372036:854775808", MIN_NS, "-9223372036:854775808"),
    ],
)
def test_timestamp_grammar(text: str, ns: int, canonical: str) -> None:
    ts = Timestamp.parse(text)
    assert ts == Timestamp(ns) == Timestamp.from_ns(ns)
    assert str(ts) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("01:0", "leading zeros are not allowed"),
        ("1:01", "leading zeros are not allowed"),
        ("-00:0", "leading zeros are not allowed"),
        ("1:1234567890", "at most 9 digits"),
        ("+1:0", "'+' is not allowed"),
        ("1:", "nanoseconds are missing"),
        (":1", "seconds are missing"),
        ("-:1", "seconds are missing"),
        ("1.5", "expected [-]SECONDS:NANOSECONDS"),
        ("1", "expected [-]SECONDS:NANOSECONDS"),
        ("1:0:0", "expected [-]SECONDS:NANOSECONDS"),
        ("", "got nothing"),
        ("--1:0", "decimal digits"),
        ("1:-1", "decimal digits"),
        ("\u0661:0", "decimal digits"),
        ("1_0:0", "decimal digits"),
        (" 1:0", "whitespace"),
        ("1:0\n", "whitespace"),
        ("9223372036:854775808", "out of range"),
        ("-9223372036:854775809", "out of range"),
        ("9" * 5000 + ":0", "out of range"),
    ],
)
def test_timestamp_rejections_name_the_value(text: str, reason: str) -> None:
    with pytest.raises(TimeRangeError) as caught:
        Timestamp.parse(text)
    error = caught.value
    assert str(error) == f"invalid timestamp {text!r}: {error.reason}"
    assert reason in error.reason
    assert (error.kind, error.value) == ("timestamp", text)


def test_timestamp_leading_zero_message() -> None:
    with pytest.raises(TimeRangeError, match=r"^invalid timestamp '01:0': leading zeros are not"):
        Timestamp.parse("01:0")


def test_timestamp_arithmetic_and_order() -> None:
    a = Timestamp.parse("-1:500000000")
    assert a.ns == -1_500_000_000
    assert (a.seconds, a.nanoseconds) == (-1, 500_000_000)
    assert a + Timestamp(S) == Timestamp(-S // 2)
    assert a + 1 == Timestamp(-1_499_999_999)
    assert Timestamp(S) - a == Timestamp(2_500_000_000)
    assert Timestamp(S) - 1 == Timestamp(S - 1)
    assert sorted([Timestamp(3), a, Timestamp(0)]) == [a, Timestamp(0), Timestamp(3)]


# --- timerange grammar --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        # bounded, every clusivity
        ("[0:0_10:0)", "[0:0_10:0)"),
        ("(0:0_10:0]", "(0:0_10:0]"),
        ("[0:0_10:0]", "[0:0_10:0]"),
        ("(0:0_10:0)", "(0:0_10:0)"),
        # missing markers: start defaults inclusive, end exclusive
        ("0:0_10:0", "[0:0_10:0)"),
        ("[1:0_2:0", "[1:0_2:0)"),
        ("1:0_2:0]", "[1:0_2:0]"),
        # half-bounded
        ("[5:0_", "[5:0_"),
        ("5:0_", "[5:0_"),
        ("(5:0_", "(5:0_"),
        ("[5:0_)", "[5:0_"),
        ("(5:0_]", "(5:0_"),
        ("_5:0)", "_5:0)"),
        ("_5:0]", "_5:0]"),
        ("_5:0", "_5:0)"),
        ("(_5:0)", "_5:0)"),
        ("[_5:0]", "_5:0]"),
        # eternity
        ("_", "_"),
        ("[_", "_"),
        ("(_)", "_"),
        ("[_]", "_"),
        ("_)", "_"),
        # never / empty
        ("()", "()"),
        ("", "()"),
        ("[]", "()"),
        ("(]", "()"),
        ("[", "()"),
        (")", "()"),
        # instants
        ("[10:0]", "[10:0]"),
        ("10:0", "[10:0]"),
        ("[10:0", "[10:0]"),
        ("10:0]", "[10:0]"),
        ("[10:0_10:0]", "[10:0]"),
        ("(0:0_0:2)", "[0:1]"),
        ("-1:500000000", "[-1:500000000]"),
        # exclusive instants are empty
        ("(10:0)", "()"),
        ("[10:0)", "()"),
        ("(10:0]", "()"),
        ("10:0)", "()"),
        ("(10:0", "()"),
        ("[10:0_10:0)", "()"),
        ("(10:0_10:0]", "()"),
        ("(10:0_10:0)", "()"),
        ("(0:0_0:1)", "()"),
        # end before start is empty
        ("[10:0_5:0)", "()"),
        ("[10:0_5:0]", "()"),
        # negatives
        ("[-10:0_-5:999999999)", "[-10:0_-5:999999999)"),
        ("(-0:0_0:2]", "(0:0_0:2]"),
        ("(-0:0_0:0]", "()"),
    ],
)
def test_grammar_and_canonical_form(text: str, canonical: str) -> None:
    parsed = TimeRange.parse(text)
    assert str(parsed) == canonical
    assert TimeRange.parse(canonical) == parsed
    assert re.fullmatch(TIMERANGE_PATTERN, text)


def test_parsed_fields() -> None:
    assert TimeRange.parse("(1:0_2:0]") == TimeRange(S, 2 * S, False, True)
    tr = TimeRange.parse("(1:0_2:0]")
    assert (tr.start, tr.end, tr.include_start, tr.include_end) == (S, 2 * S, False, True)
    assert (tr.lo, tr.hi) == (S + 1, 2 * S)
    half = TimeRange.parse("(_5:0)")
    assert (half.start, half.end, half.include_start, half.include_end) == (
        None,
        5 * S,
        False,
        False,
    )
    assert TimeRange.parse("_") == TimeRange.eternity()
    assert TimeRange.parse("()") == TimeRange.never()
    assert TimeRange.parse("[3:0]") == TimeRange.instant(3 * S)
    assert TimeRange.parse("[3:0_4:0)") == TimeRange.from_ns(3 * S, 4 * S)
    assert TimeRange.parse("(3:0_4:0]") == TimeRange.from_ns(3 * S, 4 * S, False, True)


@pytest.mark.parametrize(
    "text",
    [
        "01:0",
        "1:01",
        "[01:0_2:0)",
        "[1:0_2:01)",
        "1:1234567890",
        "[0:0_1:1234567890)",
        "+1:0",
        "[+1:0_2:0)",
        "[1:0_+2:0)",
        "1:",
        ":1",
        "[1:_2:0)",
        "1.5",
        "[1.5_2:0)",
        "[[1:0]",
        "[1:0]]",
        "[1:0_2:0))",
        "1:0_2:0_3:0",
        "__",
        "[1:0)_",
        "[_]x",
        "x",
        "a:b",
        " 1:0",
        "1:0 ",
        "[1:0_ 2:0)",
        "[1:0_2:0)\n",
        "\u0661:0",
        "[1:0]_[2:0]",
        "[1:0,2:0)",
        "%5B1:0_2:0%29",
        "[9223372036:854775808_",
        "_-9223372036:854775809)",
        "[" + "9" * 5000 + ":0_",
    ],
)
def test_rejections_name_the_value(text: str) -> None:
    with pytest.raises(TimeRangeError) as caught:
        TimeRange.parse(text)
    error = caught.value
    assert str(error).startswith(f"invalid timerange {text!r}: ")
    assert (error.kind, error.value) == ("timerange", text)
    assert error.reason


def test_rejection_reasons_point_at_the_problem() -> None:
    def reason(text: str) -> str:
        with pytest.raises(TimeRangeError) as caught:
            TimeRange.parse(text)
        return caught.value.reason

    assert "leading zeros" in reason("[01:0_2:0)")
    assert "'01:0'" in reason("[01:0_2:0)")
    assert "at most 9 digits" in reason("[0:0_1:1234567890)")
    assert "'+'" in reason("+1:0")
    assert "whitespace" in reason("[1:0_ 2:0)")
    assert "one '_'" in reason("1:0_2:0_3:0")
    assert "'['" in reason("[[1:0]")
    assert "out of range" in reason("[9223372036:854775808_")
    assert str(TimeRangeError("timerange", "[1:0_x)", "bad")) == "invalid timerange '[1:0_x)': bad"


@given(st.text(alphabet="[]()_:-+019 \n", max_size=14))
@example("")
@example("[]")
@example("1:0\n")
def test_parse_accepts_exactly_the_spec_pattern(text: str) -> None:
    try:
        TimeRange.parse(text)
    except TimeRangeError as error:
        assert error.value == text
        accepted = False
        out_of_range = "out of range" in error.reason
    else:
        accepted, out_of_range = True, False
    assert accepted or out_of_range or not re.fullmatch(TIMERANGE_PATTERN, text)
    assert not accepted or re.fullmatch(TIMERANGE_PATTERN, text)


@given(st.text(alphabet=":-+0159 \n", max_size=14))
def test_timestamp_parse_accepts_exactly_the_spec_pattern(text: str) -> None:
    try:
        Timestamp.parse(text)
    except TimeRangeError as error:
        matches = re.fullmatch(TIMESTAMP_PATTERN, text)
        assert not matches or "out of range" in error.reason
    else:
        assert re.fullmatch(TIMESTAMP_PATTERN, text)


@pytest.mark.skipif(not SPEC_SCHEMAS.is_dir(), reason="spec checkout not available")
def test_patterns_are_the_specs() -> None:
    timerange = json.loads((SPEC_SCHEMAS / "timerange.json").read_text())
    timestamp = json.loads((SPEC_SCHEMAS / "timestamp.json").read_text())
    assert timerange["pattern"] == TIMERANGE_PATTERN
    assert timestamp["pattern"] == TIMESTAMP_PATTERN


# --- algebra: examples -----------------------------------------------------------------


def tr(text: str) -> TimeRange:
    return TimeRange.parse(text)


def test_checklist_overlap_examples() -> None:
    a, b, instant = tr("[0:0_10:0)"), tr("[10:0_20:0)"), tr("[10:0]")
    assert not a.overlaps(b) and not b.overlaps(a)
    assert b.overlaps(instant) and instant.overlaps(b)
    assert not a.overlaps(instant) and not instant.overlaps(a)
    assert tr("[0:0_10:0]").overlaps(instant)
    assert not tr("(10:0_20:0)").overlaps(instant)
    for empty in (TimeRange.never(), tr("(10:0)"), tr("[20:0_10:0)")):
        assert not empty.overlaps(TimeRange.eternity())
        assert not TimeRange.eternity().overlaps(empty)
        assert not empty.overlaps(empty)


def test_negative_timestamp_is_the_whole_value() -> None:
    assert Timestamp.parse("-1:500000000").ns == -1_500_000_000
    assert tr("[-1:500000000_0:0)").duration_ns == 1_500_000_000


def test_equality_is_by_set() -> None:
    assert tr("(0:0_1:0)") == tr("[0:1_0:999999999]")
    assert hash(tr("(0:0_1:0)")) == hash(tr("[0:1_0:999999999]"))
    assert tr("()") == tr("(5:0)") == tr("[9:0_1:0)") == TimeRange.never()
    assert len({tr("()"), tr("(5:0)"), tr("")}) == 1
    assert tr("[0:0_1:0)") != tr("[0:0_1:0]")
    assert tr("_") != tr("[0:0_")
    assert tr("[0:0_") != tr("(0:0_")
    assert tr("_") != "_"


def test_predicates() -> None:
    assert tr("_").is_eternity and not tr("[0:0_").is_eternity
    assert tr("()").is_empty and not tr("_").is_empty and not tr("_0:0)").is_empty
    assert tr("[1:0]").is_instant and tr("(0:0_0:2)").is_instant
    assert not tr("[1:0_1:1)").is_empty and tr("[1:0_1:1)").is_instant
    assert not tr("[1:0_1:2)").is_instant and not tr("()").is_instant and not tr("_").is_instant
    assert tr("[1:0_2:0)").contains_ns(S) and not tr("(1:0_2:0)").contains_ns(S)
    assert not tr("[1:0_2:0)").contains_ns(2 * S) and tr("_").contains_ns(MIN_NS - 1)
    assert not tr("()").contains_ns(0)


def test_contains() -> None:
    assert tr("[0:0_10:0)").contains(tr("[0:0_10:0)"))
    assert tr("[0:0_10:0)").contains(tr("[2:0_3:0]"))
    assert not tr("[0:0_10:0)").contains(tr("[5:0_10:0]"))
    assert tr("[0:0_10:0)").contains(tr("[5:0_9:999999999]"))
    assert not tr("(0:0_10:0)").contains(tr("[0:0]"))
    assert tr("_").contains(tr("[0:0_")) and not tr("[0:0_").contains(tr("_"))
    assert tr("[1:0]").contains(tr("()")) and tr("()").contains(tr("()"))
    assert not tr("()").contains(tr("[1:0]"))
    # segment DELETE with a retention `_<ts>)` selector
    assert tr("_10:0)").contains(tr("[0:0_10:0)")) and not tr("_10:0)").contains(tr("[0:0_10:0]"))


def test_intersection_keeps_brackets() -> None:
    assert str(tr("[0:0_10:0]").intersection(tr("_"))) == "[0:0_10:0]"
    assert str(tr("[1:0_").intersection(tr("(0:999999999_2:0)"))) == "[1:0_2:0)"
    assert str(tr("_5:0]").intersection(tr("[0:0_5:0]"))) == "[0:0_5:0]"
    assert str(tr("_5:0]").intersection(tr("[0:0_5:1)"))) == "[0:0_5:1)"
    assert str(tr("[0:0_10:0)").intersection(tr("[5:0_20:0)"))) == "[5:0_10:0)"
    assert str(tr("[0:0_10:0)").intersection(tr("(5:0_"))) == "(5:0_10:0)"
    assert tr("[0:0_10:0)").intersection(tr("[10:0_20:0)")) == TimeRange.never()
    assert str(tr("[0:0_10:0]").intersection(tr("[10:0_20:0)"))) == "[10:0]"
    assert tr("()").intersection(tr("_")).is_empty


def test_covering() -> None:
    assert str(tr("[0:0_1:0)").covering(tr("[5:0_6:0]"))) == "[0:0_6:0]"
    assert str(tr("[5:0_6:0)").covering(tr("(0:0_1:0)"))) == "(0:0_6:0)"
    assert str(tr("[0:0_1:0)").covering(tr("[0:0_1:0]"))) == "[0:0_1:0]"
    assert str(tr("[0:0_1:0)").covering(tr("(0:999999999_"))) == "[0:0_"
    assert str(tr("()").covering(tr("[2:0]"))) == "[2:0]"
    assert str(tr("[2:0]").covering(tr("()"))) == "[2:0]"
    assert tr("()").covering(tr("()")).is_empty
    flow = TimeRange.never()
    for segment in ("[0:0_1:0)", "[1:0_2:0)", "[2:0]"):
        flow = flow.covering(tr(segment))
    assert str(flow) == "[0:0_2:0]"


def test_shift() -> None:
    assert str(tr("[0:0_1:0)").shift(S)) == "[1:0_2:0)"
    assert (
        str(tr("(0:0_1:0]").shift(Timestamp.parse("-1:500000000"))) == "(-1:500000000_-0:500000000]"
    )
    assert str(tr("_1:0)").shift(-S)) == "_0:0)"
    assert tr("_").shift(5) == tr("_")
    assert tr("()").shift(5).is_empty


def test_a_shift_off_the_64_bit_timeline_is_refused() -> None:
    near_end = TimeRange(MAX_NS - S, MAX_NS)
    with pytest.raises(TimeRangeError, match="out of range"):
        near_end.shift(1)
    with pytest.raises(TimeRangeError, match="out of range"):
        TimeRange(MIN_NS, MIN_NS + S).shift(-1)
    assert near_end.shift(0) == near_end
    assert tr("_1:0)").shift(-S) == tr("_0:0)")  # an open end stays open


def test_duration() -> None:
    assert tr("[0:0_10:0)").duration_ns == 10 * S
    assert tr("(0:0_10:0]").duration_ns == 10 * S
    assert tr("(0:0_10:0)").duration_ns == 10 * S - 1
    assert tr("[0:0_10:0]").duration_ns == 10 * S + 1
    assert tr("[1:0]").duration_ns == 1
    assert tr("()").duration_ns == 0
    assert tr("[0:0_").duration_ns is None
    assert tr("_").duration_ns is None


def test_timestamps_of_bounds() -> None:
    bounded = tr("(1:0_2:500000000]")
    assert bounded.start_ts == Timestamp(S) and bounded.end_ts == Timestamp(2_500_000_000)
    assert tr("_2:0)").start_ts is None and tr("[1:0_").end_ts is None


def test_half_open_bounds() -> None:
    assert tr("[1:0_2:0)").half_open() == (S, 2 * S)
    assert tr("(1:0_2:0]").half_open() == (S + 1, 2 * S + 1)
    assert tr("[1:0]").half_open() == (S, S + 1)
    assert tr("_").half_open() == (MIN_NS, MAX_NS)
    assert tr("_1:0)").half_open() == (MIN_NS, S)
    assert tr("[1:0_").half_open() == (S, MAX_NS)
    assert tr("()").half_open() is None
    assert TimeRange.from_half_open(S, 2 * S) == tr("[1:0_2:0)")
    assert str(TimeRange.from_half_open(S + 1, 2 * S + 1)) == "[1:1_2:1)"
    assert str(TimeRange.from_half_open(MIN_NS, S)) == "_1:0)"
    assert str(TimeRange.from_half_open(S, MAX_NS)) == "[1:0_"
    assert TimeRange.from_half_open(MIN_NS, MAX_NS).is_eternity
    assert TimeRange.from_half_open(S, S).is_empty


def test_half_open_clamps_into_int64() -> None:
    assert TimeRange(MAX_NS + 5, MAX_NS + 10).half_open() is None
    # The last nanosecond has no int64 exclusive end: `[MAX_NS]` is not stored as its neighbour.
    assert TimeRange.instant(MAX_NS).half_open() is None
    assert TimeRange.instant(MAX_NS).holds_last_ns
    assert TimeRange.instant(MAX_NS - 1).half_open() == (MAX_NS - 1, MAX_NS)
    assert not TimeRange.instant(MAX_NS - 1).holds_last_ns
    assert TimeRange(None, MIN_NS - 10).half_open() == (MIN_NS, MIN_NS + 1)
    assert TimeRange(MIN_NS - 10, MAX_NS + 10, True, True).half_open() == (MIN_NS, MAX_NS)


def test_sort_key_exclusive_end_before_instant() -> None:
    ordered = [tr("[2:0]"), tr("[2:0_3:0)"), tr("[1:0_2:0)"), tr("_1:0)"), tr("[3:0_")]
    ordered.sort(key=TimeRange.sort_key)
    assert [str(x) for x in ordered] == ["_1:0)", "[1:0_2:0)", "[2:0]", "[2:0_3:0)", "[3:0_"]
    assert tr("_2:0)").sort_key() < tr("[2:0]").sort_key()
    assert tr("(1:0_2:0]").sort_key() < tr("[2:0]").sort_key() < tr("(2:0_3:0)").sort_key()
    assert tr("()").sort_key() < tr("_").sort_key()


def test_constructor_rejects_non_integers() -> None:
    with pytest.raises(TypeError):
        TimeRange(1.5, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        TimeRange(True, None)


def test_unbounded_side_flags_are_normalised() -> None:
    assert TimeRange.from_ns(None, 5, True, True) == TimeRange(None, 5, False, True)
    assert TimeRange.from_ns(None, 5, True, True).include_start is False
    assert repr(tr("(1:0_2:0]")) == "TimeRange.parse('(1:0_2:0]')"


# --- pydantic ------------------------------------------------------------------------------


class Segment(BaseModel):
    timerange: TimeRangeField
    ts_offset: TimestampField | None = None


def test_pydantic_round_trip() -> None:
    raw = '{"timerange":"(0:0_10:0]","ts_offset":"-1:500000000"}'
    segment = Segment.model_validate_json(raw)
    assert segment.timerange == TimeRange(0, 10 * S, False, True)
    assert segment.ts_offset == Timestamp(-1_500_000_000)
    assert segment.model_dump_json() == raw
    assert segment.model_dump() == {"timerange": "(0:0_10:0]", "ts_offset": "-1:500000000"}
    assert Segment.model_validate(segment.model_dump()) == segment
    assert Segment.model_validate({"timerange": "10:0"}).model_dump(mode="json") == {
        "timerange": "[10:0]",
        "ts_offset": None,
    }
    direct = Segment(timerange=TimeRange.instant(S), ts_offset=Timestamp(1))
    assert direct.model_dump() == {"timerange": "[1:0]", "ts_offset": "0:1"}


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"timerange": "[1:0_x)"}, "invalid timerange '[1:0_x)'"),
        ({"timerange": "01:0"}, "invalid timerange '01:0'"),
        ({"timerange": 5}, "expected a string"),
        ({"timerange": None}, "expected a string"),
        ({"timerange": "_", "ts_offset": "1:01"}, "invalid timestamp '1:01': leading zeros"),
    ],
)
def test_pydantic_rejects_bad_values(payload: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Segment.model_validate(payload)
    assert needle in str(caught.value)
    with pytest.raises(ValidationError) as caught_json:
        Segment.model_validate_json(json.dumps(payload))
    assert needle in str(caught_json.value)


def test_pydantic_json_schema() -> None:
    for mode in ("validation", "serialization"):
        properties = Segment.model_json_schema(mode=mode)["properties"]
        timerange = properties["timerange"]
        assert (timerange["type"], timerange["pattern"]) == ("string", TIMERANGE_PATTERN)
        offset = properties["ts_offset"]["anyOf"][0]
        assert offset == {"type": "string", "pattern": TIMESTAMP_PATTERN}


# --- properties ---------------------------------------------------------------------------

wide_ns = st.integers(min_value=MIN_NS, max_value=MAX_NS)
# Mostly small values so that bounds collide, plus wide ones kept clear of the int64 edges
# (where half_open's clamping turns a bound into "unbounded").
ns_values = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(2**62), max_value=2**62),
)
bounds = st.one_of(st.none(), ns_values)


@st.composite
def ranges(draw: st.DrawFn, values: st.SearchStrategy[int | None] = bounds) -> TimeRange:
    return TimeRange(draw(values), draw(values), draw(st.booleans()), draw(st.booleans()))


small = st.one_of(st.none(), st.integers(min_value=-5, max_value=5))
WINDOW = range(-8, 9)


def members(x: TimeRange) -> frozenset[int]:
    """Brute force: the members in a window wider than every bound of a `small` range.

    Bounds lie in -5..5, so whatever happens outside the window also happens at its edges:
    comparing windows decides overlap, containment and equality exactly.
    """
    return frozenset(n for n in WINDOW if x.contains_ns(n))


@given(wide_ns)
@example(0)
@example(-1)
@example(-1_500_000_000)
@example(MIN_NS)
@example(MAX_NS)
def test_timestamp_round_trip(ns: int) -> None:
    text = str(Timestamp(ns))
    assert re.fullmatch(TIMESTAMP_PATTERN, text)
    assert Timestamp.parse(text).ns == ns


@given(ranges())
def test_parse_format_round_trip(x: TimeRange) -> None:
    text = str(x)
    assert re.fullmatch(TIMERANGE_PATTERN, text)
    assert TimeRange.parse(text) == x
    assert str(TimeRange.parse(text)) == text


@given(ranges(), ranges())
def test_equal_ranges_hash_equal(a: TimeRange, b: TimeRange) -> None:
    if a == b:
        assert hash(a) == hash(b)
    assert (a == b) == (a.contains(b) and b.contains(a))


@given(ranges(), ranges())
def test_overlap_is_symmetric_and_matches_intersection(a: TimeRange, b: TimeRange) -> None:
    assert a.overlaps(b) == b.overlaps(a)
    assert a.overlaps(b) == (not a.intersection(b).is_empty)
    assert a.intersection(b) == b.intersection(a)


@given(ranges(), ranges())
def test_intersection_and_covering(a: TimeRange, b: TimeRange) -> None:
    both = a.intersection(b)
    assert a.contains(both) and b.contains(both)
    hull = a.covering(b)
    assert hull.contains(a) and hull.contains(b)
    assert hull == b.covering(a)


@given(ranges(), ranges())
def test_contains_agrees_with_intersection(a: TimeRange, b: TimeRange) -> None:
    if not b.is_empty:
        assert a.contains(b) == (a.intersection(b) == b)


@given(ranges())
def test_half_open_round_trip(x: TimeRange) -> None:
    pair = x.half_open()
    if pair is None:
        assert x.is_empty
    else:
        start, end = pair
        assert MIN_NS <= start < end <= MAX_NS
        assert TimeRange.from_half_open(start, end) == x
        assert x.duration_ns in (None, end - start)


@given(ranges(st.one_of(st.none(), st.integers())), st.integers())
def test_half_open_stays_in_int64(x: TimeRange, offset: int) -> None:
    shifted = [x]
    with contextlib.suppress(TimeRangeError):  # a bound moved off the timeline is refused
        shifted.append(x.shift(offset))
    for y in shifted:
        pair = y.half_open()
        assert pair is None or MIN_NS <= pair[0] < pair[1] <= MAX_NS


@given(ranges(), st.integers(min_value=-(2**61), max_value=2**61))
def test_shift_moves_members(x: TimeRange, offset: int) -> None:
    moved = x.shift(offset)
    assert moved.is_empty == x.is_empty
    assert moved.shift(-offset) == x
    if not x.is_empty and x.lo is not None:
        assert moved.contains_ns(x.lo + offset)


@given(ranges(), ranges())
def test_sort_key_orders_disjoint_ranges(a: TimeRange, b: TimeRange) -> None:
    if a.is_empty or b.is_empty or a.overlaps(b):
        return
    first, second = sorted([a, b], key=TimeRange.sort_key)
    assert first.hi is not None and second.lo is not None
    assert first.hi < second.lo
    assert (a.sort_key() < b.sort_key()) == (a is first)


@given(ranges(small), ranges(small))
def test_algebra_against_brute_force(a: TimeRange, b: TimeRange) -> None:
    ma, mb = members(a), members(b)
    assert a.is_empty == (not ma)
    assert a.overlaps(b) == bool(ma & mb)
    assert members(a.intersection(b)) == ma & mb
    assert a.contains(b) == (mb <= ma)
    assert (a == b) == (ma == mb)
    union = ma | mb
    hull = members(a.covering(b))
    assert hull == (frozenset(range(min(union), max(union) + 1)) if union else frozenset())
    assert a.is_instant == (len(ma) == 1 and min(ma) not in (WINDOW[0], WINDOW[-1]))


@given(ranges(small), ranges(small))
def test_sort_key_against_brute_force(a: TimeRange, b: TimeRange) -> None:
    ma, mb = members(a), members(b)
    if ma and mb and not ma & mb:
        assert (a.sort_key() < b.sort_key()) == (min(ma) < min(mb))
