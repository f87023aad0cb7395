"""TAMS timestamps and timeranges: parsed once, held as integer nanoseconds.

Grammar (TAMS 8.2, `schemas/timerange.json`, AppNote 0008):

    timestamp  ::= ["-"] ("0" | [1-9][0-9]*) ":" ("0" | [1-9][0-9]{0,8})
    timerange  ::= [ "[" | "(" ] [timestamp] [ "_" [timestamp] ] [ "]" | ")" ]

The `-` applies to the whole value (`-1:500000000` is -1.5 s). `_` alone is eternity,
`()` (and the empty string) is the empty range, `[t]` or a bare `t` is an instant.

Because every time is a whole number of nanoseconds, `(a_b)` and `[a+1_b-1]` are the same set;
all algebra works on these normalised inclusive bounds, while the client's brackets are kept
for rendering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

NS_PER_SECOND = 1_000_000_000
MIN_NS = -(2**63)
MAX_NS = 2**63 - 1

TIMESTAMP_PATTERN = r"^-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$"
TIMERANGE_PATTERN = (
    r"^(\[|\()?(-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8}))?(_(-?(0|[1-9][0-9]*):"
    r"(0|[1-9][0-9]{0,8}))?)?(\]|\))?$"
)
_TS = r"(-?)(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})"
_TIMESTAMP_RE = re.compile(rf"^{_TS}$")
_TIMERANGE_RE = re.compile(rf"^([\[(]?)(?:{_TS})?(?:(_)(?:{_TS})?)?([\])]?)$")


class TimeRangeError(ValueError):
    """A malformed timestamp or timerange; the message names the bad value."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")
        self.kind = kind
        self.value = value


def _ns(sign: str, seconds: str, nanos: str) -> int:
    value = int(seconds) * NS_PER_SECOND + int(nanos)
    return -value if sign == "-" else value


def _why_timestamp(text: str) -> str:
    if text.startswith("+"):
        return "a leading '+' is not allowed"
    if ":" not in text:
        return "expected SECONDS:NANOSECONDS"
    seconds, _, nanos = text.lstrip("-").partition(":")
    if not seconds.isdigit() or not nanos.isdigit():
        return "seconds and nanoseconds must be decimal digits"
    if (len(seconds) > 1 and seconds[0] == "0") or (len(nanos) > 1 and nanos[0] == "0"):
        return "leading zeros are not allowed"
    if len(nanos) > 9:
        return "nanoseconds have at most 9 digits"
    return "expected [-]SECONDS:NANOSECONDS"


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A point on the TAMS timeline in integer nanoseconds. `-0:0` parses as `0:0`."""

    ns: int

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        match = _TIMESTAMP_RE.match(text)
        if match is None:
            raise TimeRangeError("timestamp", text, _why_timestamp(text))
        return cls(_ns(*match.groups()))

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        return cls(ns)

    def __str__(self) -> str:
        sign = "-" if self.ns < 0 else ""
        seconds, nanos = divmod(abs(self.ns), NS_PER_SECOND)
        return f"{sign}{seconds}:{nanos}"

    def __add__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns + (other.ns if isinstance(other, Timestamp) else other))

    def __sub__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns - (other.ns if isinstance(other, Timestamp) else other))


def format_ns(ns: int) -> str:
    return str(Timestamp(ns))


@dataclass(frozen=True, slots=True, eq=False)
class TimeRange:
    """A set of nanoseconds on the timeline; None bounds are unbounded."""

    start: int | None
    end: int | None
    include_start: bool = True
    include_end: bool = False

    # --- construction -----------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        if text in ("", "()"):
            return cls.never()
        match = _TIMERANGE_RE.match(text)
        if match is None:
            raise TimeRangeError("timerange", text, _why_timerange(text))
        open_mark, s_sign, s_sec, s_ns, underscore, e_sign, e_sec, e_ns, close_mark = match.groups()
        start = _ns(s_sign, s_sec, s_ns) if s_sec is not None else None
        end = _ns(e_sign, e_sec, e_ns) if e_sec is not None else None
        include_start = open_mark != "("
        include_end = close_mark == "]"
        if underscore is None:
            if start is None:
                if open_mark and close_mark:
                    # "[]", "(]", "[)": brackets around nothing are an empty range.
                    return cls.never()
                raise TimeRangeError("timerange", text, "expected a timestamp or '_'")
            # An instant: "[t]", bare "t"; "(t)", "[t)", "(t]" are empty.
            inclusive = open_mark != "(" and close_mark != ")"
            if not inclusive:
                return cls.never()
            return cls(start, start, True, True)
        if close_mark == "" and end is not None:
            include_end = False
        return cls(start, end, include_start, include_end)

    @classmethod
    def eternity(cls) -> TimeRange:
        return cls(None, None, True, False)

    @classmethod
    def never(cls) -> TimeRange:
        return cls(0, 0, False, False)

    @classmethod
    def instant(cls, ns: int) -> TimeRange:
        return cls(ns, ns, True, True)

    @classmethod
    def from_ns(
        cls,
        start: int | None,
        end: int | None,
        include_start: bool = True,
        include_end: bool = False,
    ) -> TimeRange:
        return cls(start, end, include_start, include_end)

    @classmethod
    def from_half_open(cls, start: int, end: int) -> TimeRange:
        """Inverse of `half_open`: MIN_NS/MAX_NS mean unbounded."""
        if start >= end:
            return cls.never()
        return cls(
            None if start == MIN_NS else start,
            None if end == MAX_NS else end,
            True,
            False,
        )

    # --- normalised bounds ------------------------------------------------------------

    @property
    def lo(self) -> int:
        """Smallest member (MIN_NS when unbounded below)."""
        if self.start is None:
            return MIN_NS
        return self.start if self.include_start else self.start + 1

    @property
    def hi(self) -> int:
        """Largest member (MAX_NS when unbounded above)."""
        if self.end is None:
            return MAX_NS
        return self.end if self.include_end else self.end - 1

    @property
    def is_empty(self) -> bool:
        return self.lo > self.hi

    @property
    def is_eternity(self) -> bool:
        return self.start is None and self.end is None

    @property
    def is_instant(self) -> bool:
        return not self.is_empty and self.lo == self.hi

    @property
    def start_ts(self) -> Timestamp | None:
        return None if self.start is None else Timestamp(self.start)

    @property
    def end_ts(self) -> Timestamp | None:
        return None if self.end is None else Timestamp(self.end)

    @property
    def duration_ns(self) -> int | None:
        """Length of the range (0 for an instant or an empty range; None if unbounded)."""
        if self.is_empty:
            return 0
        if self.start is None or self.end is None:
            return None
        return self.hi - self.lo + (0 if self.is_instant else 1)

    def half_open(self) -> tuple[int, int] | None:
        """`(lo, hi + 1)`, clamped to int64, or None when empty: the store's form."""
        if self.is_empty:
            return None
        return self.lo, min(self.hi + 1, MAX_NS) if self.end is not None else MAX_NS

    def sort_key(self) -> tuple[int, int]:
        return self.lo, self.hi

    # --- algebra --------------------------------------------------------------------

    def overlaps(self, other: TimeRange) -> bool:
        if self.is_empty or other.is_empty:
            return False
        return self.lo <= other.hi and other.lo <= self.hi

    def contains(self, other: TimeRange) -> bool:
        """`other` ⊆ `self` (the empty range is contained in everything)."""
        if other.is_empty:
            return True
        if self.is_empty:
            return False
        return self.lo <= other.lo and other.hi <= self.hi

    def contains_ns(self, ns: int) -> bool:
        return not self.is_empty and self.lo <= ns <= self.hi

    def intersection(self, other: TimeRange) -> TimeRange:
        if not self.overlaps(other):
            return TimeRange.never()
        start, include_start = max(
            (self._start_bound(), self), (other._start_bound(), other), key=lambda b: b[0]
        )[1]._start_parts()
        end, include_end = min(
            (self._end_bound(), self), (other._end_bound(), other), key=lambda b: b[0]
        )[1]._end_parts()
        return TimeRange(start, end, include_start, include_end)

    def covering(self, other: TimeRange) -> TimeRange:
        """The smallest range containing both (a flow's timerange from its segments)."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        first = self if self._start_bound() <= other._start_bound() else other
        last = self if self._end_bound() >= other._end_bound() else other
        start, include_start = first._start_parts()
        end, include_end = last._end_parts()
        return TimeRange(start, end, include_start, include_end)

    def shift(self, offset_ns: int) -> TimeRange:
        if self.is_empty:
            return self
        return TimeRange(
            None if self.start is None else self.start + offset_ns,
            None if self.end is None else self.end + offset_ns,
            self.include_start,
            self.include_end,
        )

    def _start_bound(self) -> int:
        return self.lo

    def _end_bound(self) -> int:
        return self.hi

    def _start_parts(self) -> tuple[int | None, bool]:
        return self.start, self.include_start

    def _end_parts(self) -> tuple[int | None, bool]:
        return self.end, self.include_end

    # --- identity and rendering ---------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeRange):
            return NotImplemented
        if self.is_empty or other.is_empty:
            return self.is_empty and other.is_empty
        return self.lo == other.lo and self.hi == other.hi

    def __hash__(self) -> int:
        return hash(None) if self.is_empty else hash((self.lo, self.hi))

    def __str__(self) -> str:
        if self.is_empty:
            return "()"
        if self.is_eternity:
            return "_"
        if self.start is not None and self.end is not None and self.lo == self.hi:
            return f"[{format_ns(self.lo)}]"
        left = (
            ""
            if self.start is None
            else ("[" if self.include_start else "(") + format_ns(self.start)
        )
        right = "" if self.end is None else format_ns(self.end) + ("]" if self.include_end else ")")
        return f"{left}_{right}"

    def __repr__(self) -> str:
        return f"TimeRange({str(self)!r})"


def _why_timerange(text: str) -> str:
    body = text.strip("[]()")
    if not body:
        return "expected a timestamp, '_' or '()'"
    parts = body.split("_")
    if len(parts) > 2:
        return "at most one '_' separates start and end"
    for part in parts:
        if part and _TIMESTAMP_RE.match(part) is None:
            return f"bad timestamp {part!r}: {_why_timestamp(part)}"
    return "expected [start]_[end] between optional '[' '(' and ']' ')'"


def _to_timerange(value: Any) -> TimeRange:
    if isinstance(value, TimeRange):
        return value
    if not isinstance(value, str):
        raise ValueError("a timerange must be a string")
    return TimeRange.parse(value)


def _to_timestamp(value: Any) -> Timestamp:
    if isinstance(value, Timestamp):
        return value
    if not isinstance(value, str):
        raise ValueError("a timestamp must be a string")
    return Timestamp.parse(value)


TimeRangeField = Annotated[
    TimeRange,
    BeforeValidator(_to_timerange),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": TIMERANGE_PATTERN}),
]
TimestampField = Annotated[
    Timestamp,
    BeforeValidator(_to_timestamp),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": TIMESTAMP_PATTERN}),
]
