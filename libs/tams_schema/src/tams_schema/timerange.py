"""TAMS timestamps and timeranges: parsed once at the edge, held as integer nanoseconds.

Grammar (TAMS 8.2 `schemas/timestamp.json`, `schemas/timerange.json`, AppNote 0008):

    timestamp  ::= ["-"] ("0" | [1-9][0-9]*) ":" ("0" | [1-9][0-9]{0,8})
    timerange  ::= ["[" | "("] [timestamp] ["_" [timestamp]] ["]" | ")"]

The `-` applies to the whole value (`-1:500000000` is -1.5 s). `_` alone is eternity; `()` is
the empty range ("never"); `[t]` (or `[t_t]`, or a bare `t`) is an instant, and an instant with
an exclusive marker (`(t)`, `[t_t)`, `(t_t]`) is empty, as is any range whose end is before its
start. Every other string the spec's regex accepts but that holds neither a timestamp nor `_`
(`""`, `[]`, `[`, `)`) is empty too, so `parse` accepts exactly what the schema pattern accepts.

Every time is a whole number of nanoseconds, so `(a_b)` and `[a+1_b-1]` are the same set: the
algebra and equality work on these normalised inclusive bounds (`lo`, `hi`), while the
client's brackets are kept for rendering.

Timestamps must fit a signed 64-bit nanosecond count (about +-292 years around the epoch):
larger values are rejected by `parse` so that stores never overflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

NS_PER_SECOND = 1_000_000_000
MIN_NS = -(2**63)
MAX_NS = 2**63 - 1

# Verbatim from the spec's schemas, for the JSON schema of the pydantic fields.
TIMESTAMP_PATTERN = r"^-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$"
TIMERANGE_PATTERN = (
    r"^(\[|\()?(-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8}))?"
    r"(_(-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8}))?)?(\]|\))?$"
)

# Same grammar with capturing groups; always used with fullmatch (a `$` would let "\n" through).
_TS = r"(-)?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})"
_TIMESTAMP_RE = re.compile(_TS)
_TIMERANGE_RE = re.compile(rf"([\[(])?(?:{_TS})?(?:(_)(?:{_TS})?)?([\])])?")
# More seconds digits than this cannot fit int64 nanoseconds (and would hit int()'s digit limit).
_MAX_SECONDS_DIGITS = 11


class TimeRangeError(ValueError):
    """A malformed timestamp or timerange; the message names the bad value and the reason."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {kind} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


def _to_ns(sign: str | None, seconds: str, nanos: str) -> int | None:
    """Nanoseconds of a grammar-checked timestamp, or None if it does not fit int64."""
    if len(seconds) > _MAX_SECONDS_DIGITS:
        return None
    value = int(seconds) * NS_PER_SECOND + int(nanos)
    if sign:
        value = -value
    return value if MIN_NS <= value <= MAX_NS else None


_OUT_OF_RANGE = "out of range (must fit a signed 64-bit count of nanoseconds)"


def _timestamp_reason(text: str) -> str:
    """Why `text` is not a timestamp, for the error message."""
    if not text:
        return "expected [-]SECONDS:NANOSECONDS, got nothing"
    if any(c.isspace() for c in text):
        return "whitespace is not allowed"
    if text.startswith("+"):
        return "a leading '+' is not allowed"
    if text.count(":") != 1:
        return "expected [-]SECONDS:NANOSECONDS"
    seconds, _, nanos = text.removeprefix("-").partition(":")
    if not seconds:
        return "the seconds are missing"
    if not nanos:
        return "the nanoseconds are missing"
    if not (seconds + nanos).isascii() or not (seconds + nanos).isdigit():
        return "seconds and nanoseconds must be decimal digits"
    if (len(seconds) > 1 and seconds[0] == "0") or (len(nanos) > 1 and nanos[0] == "0"):
        return "leading zeros are not allowed"
    if len(nanos) > 9:
        return "nanoseconds have at most 9 digits (0..999999999)"
    return "expected [-]SECONDS:NANOSECONDS"


def _timerange_reason(text: str) -> str:
    """Why `text` is not a timerange, for the error message."""
    if any(c.isspace() for c in text):
        return "whitespace is not allowed"
    if "+" in text:
        return "'+' is not allowed"
    body = text
    if body and body[0] in "[(":
        body = body[1:]
    if body and body[-1] in "])":
        body = body[:-1]
    if any(c in "[]()" for c in body):
        return "only one '[' or '(' may open and one ']' or ')' may close the range"
    parts = body.split("_")
    if len(parts) > 2:
        return "at most one '_' may separate start and end"
    for part in parts:
        if part and _TIMESTAMP_RE.fullmatch(part) is None:
            return f"bad timestamp {part!r}: {_timestamp_reason(part)}"
    return "expected [start]_[end] between optional '[' or '(' and ']' or ')'"


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A point on the TAMS timeline in signed integer nanoseconds.

    `-0:0` is accepted and equals `0:0` (it renders as `0:0`); `-0:5` is -5 ns.
    """

    ns: int

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse `[-]SECONDS:NANOS`; raise TimeRangeError for anything else."""
        match = _TIMESTAMP_RE.fullmatch(text)
        if match is None:
            raise TimeRangeError("timestamp", text, _timestamp_reason(text))
        ns = _to_ns(*match.groups())
        if ns is None:
            raise TimeRangeError("timestamp", text, _OUT_OF_RANGE)
        return cls(ns)

    @classmethod
    def from_ns(cls, ns: int) -> Timestamp:
        return cls(ns)

    @property
    def seconds(self) -> int:
        """The `SECONDS` part with the value's sign (so `-0:5` gives 0: the sign lives in `ns`)."""
        whole = abs(self.ns) // NS_PER_SECOND
        return -whole if self.ns < 0 else whole

    @property
    def nanoseconds(self) -> int:
        """The unsigned `NANOS` part (0..999999999)."""
        return abs(self.ns) % NS_PER_SECOND

    def __str__(self) -> str:
        sign = "-" if self.ns < 0 else ""
        seconds, nanos = divmod(abs(self.ns), NS_PER_SECOND)
        return f"{sign}{seconds}:{nanos}"

    def __add__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns + (other.ns if isinstance(other, Timestamp) else other))

    def __sub__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns - (other.ns if isinstance(other, Timestamp) else other))


def format_ns(ns: int) -> str:
    """Render integer nanoseconds as a TAMS timestamp string."""
    return str(Timestamp(ns))


@dataclass(frozen=True, slots=True, eq=False)
class TimeRange:
    """A set of integer nanoseconds on the timeline; a None bound is unbounded on that side.

    Equality and hashing are by the set denoted, so all empty ranges are equal and
    `(0:0_1:0)` == `[0:1_0:999999999]`. The clusivity flags of an unbounded side are
    normalised to False (an infinite bound is never a member).
    """

    start: int | None
    end: int | None
    include_start: bool = True
    include_end: bool = False

    def __post_init__(self) -> None:
        for bound in (self.start, self.end):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
                raise TypeError(f"TimeRange bounds are int nanoseconds or None, not {bound!r}")
        if self.start is None and self.include_start:
            object.__setattr__(self, "include_start", False)
        if self.end is None and self.include_end:
            object.__setattr__(self, "include_end", False)

    # --- construction -----------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """Parse any timerange the spec's pattern accepts; raise TimeRangeError otherwise.

        A missing start marker means inclusive, a missing end marker exclusive; markers on a
        missing side are ignored. The caller percent-decodes query strings first.
        """
        match = _TIMERANGE_RE.fullmatch(text)
        if match is None:
            raise TimeRangeError("timerange", text, _timerange_reason(text))
        open_mark, s_sign, s_sec, s_nanos, underscore, e_sign, e_sec, e_nanos, close_mark = (
            match.groups()
        )
        start = end = None
        if s_sec is not None:
            start = _to_ns(s_sign, s_sec, s_nanos)
            if start is None:
                raise TimeRangeError("timerange", text, f"the start is {_OUT_OF_RANGE}")
        if e_sec is not None:
            end = _to_ns(e_sign, e_sec, e_nanos)
            if end is None:
                raise TimeRangeError("timerange", text, f"the end is {_OUT_OF_RANGE}")
        if underscore is None:
            if start is None:
                # "", "()", "[]", "[", ")"...: nothing but markers is the empty range.
                return cls.never()
            # An instant: "[t]", "t"; an exclusive marker on it ("(t)", "[t)", "t)") empties it.
            if open_mark == "(" or close_mark == ")":
                return cls.never()
            return cls.instant(start)
        return cls(start, end, open_mark != "(", close_mark == "]")

    @classmethod
    def eternity(cls) -> TimeRange:
        """The whole timeline, `_`."""
        return cls(None, None, False, False)

    @classmethod
    def never(cls) -> TimeRange:
        """The empty range, `()`."""
        return cls(0, 0, False, False)

    @classmethod
    def instant(cls, ns: int) -> TimeRange:
        """The zero-duration range `[t]` holding the single nanosecond `ns`."""
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
        """Inverse of `half_open`: `[start_end)`, with MIN_NS/MAX_NS meaning unbounded."""
        if start >= end:
            return cls.never()
        return cls(
            None if start <= MIN_NS else start,
            None if end >= MAX_NS else end,
            True,
            False,
        )

    # --- normalised bounds ------------------------------------------------------------

    @property
    def lo(self) -> int | None:
        """Smallest member, None when unbounded below (meaningless when empty)."""
        if self.start is None:
            return None
        return self.start if self.include_start else self.start + 1

    @property
    def hi(self) -> int | None:
        """Largest member, None when unbounded above (meaningless when empty)."""
        if self.end is None:
            return None
        return self.end if self.include_end else self.end - 1

    @property
    def is_empty(self) -> bool:
        lo, hi = self.lo, self.hi
        return lo is not None and hi is not None and lo > hi

    @property
    def is_eternity(self) -> bool:
        return self.start is None and self.end is None

    @property
    def is_instant(self) -> bool:
        lo = self.lo
        return lo is not None and lo == self.hi

    @property
    def start_ts(self) -> Timestamp | None:
        """The stored start (None if unbounded); check `include_start` for its clusivity."""
        return None if self.start is None else Timestamp(self.start)

    @property
    def end_ts(self) -> Timestamp | None:
        """The stored end (None if unbounded); check `include_end` for its clusivity."""
        return None if self.end is None else Timestamp(self.end)

    @property
    def duration_ns(self) -> int | None:
        """Nanoseconds covered, `hi + 1 - lo`: 0 when empty, None when unbounded.

        This is `b - a` of the canonical `[a_b)` spelling, so it adds up over adjoining
        segments; an instant therefore counts 1 ns (use `is_instant` to detect one).
        """
        if self.is_empty:
            return 0
        lo, hi = self.lo, self.hi
        if lo is None or hi is None:
            return None
        return hi + 1 - lo

    def half_open(self) -> tuple[int, int] | None:
        """`(lo, hi + 1)` for stores and indexes, None when empty.

        Unbounded sides map to MIN_NS / MAX_NS and values are clamped into int64 (keeping
        start < end), so a bound at an int64 extreme reads back as unbounded. The last
        nanosecond, MAX_NS, has no int64 exclusive end: no segment may hold it
        (`holds_last_ns`), so it is dropped, and a range of nothing else is None, as an empty
        one (clamping its start down to MAX_NS - 1 made `[MAX_NS]` match, and a DELETE of
        `[MAX_NS - 1]` delete, its neighbour).
        """
        if self.is_empty:
            return None
        lo, hi = self.lo, self.hi
        if lo is not None and lo >= MAX_NS:
            return None
        start = MIN_NS if lo is None else max(lo, MIN_NS)
        end = MAX_NS if hi is None else max(min(hi + 1, MAX_NS), start + 1)
        return start, end

    def overlap_bounds(self) -> tuple[int, int]:
        """`half_open()` of a range that is not empty, for overlap tests: a range of only
        MAX_NS, which no store holds, is `(MAX_NS, MAX_NS)`, which overlaps nothing stored
        (not None, which callers read as the empty range `()`)."""
        assert not self.is_empty
        return self.half_open() or (MAX_NS, MAX_NS)

    @property
    def holds_last_ns(self) -> bool:
        """Whether the range holds MAX_NS, which `half_open` cannot store."""
        return not self.is_empty and (self.hi is None or self.hi >= MAX_NS)

    def sort_key(self) -> tuple[int, int, int, int]:
        """Ascending time order on the normalised bounds: by first member, then last member.

        An exclusive end `_2:0)` sorts before an instant `[2:0]`; unbounded sides sort
        outermost; empty ranges sort before everything.
        """
        if self.is_empty:
            return (0, 0, 0, 0)
        lo, hi = self.lo, self.hi
        return (1 if lo is None else 2, lo or 0, 1 if hi is None else 0, hi or 0)

    # --- algebra --------------------------------------------------------------------

    def overlaps(self, other: TimeRange) -> bool:
        """True iff the intersection is non-empty (an empty range overlaps nothing)."""
        if self.is_empty or other.is_empty:
            return False
        return _le(self.lo, other.hi) and _le(other.lo, self.hi)

    def contains(self, other: TimeRange) -> bool:
        """`other` is a subset of `self` (the empty range is contained in everything)."""
        if other.is_empty:
            return True
        if self.is_empty:
            return False
        return _lo_key(self) <= _lo_key(other) and _hi_key(other) <= _hi_key(self)

    def contains_ns(self, ns: int) -> bool:
        return not self.is_empty and _le(self.lo, ns) and _le(ns, self.hi)

    def intersection(self, other: TimeRange) -> TimeRange:
        """The common part, keeping the operands' own brackets; `never()` if disjoint."""
        if not self.overlaps(other):
            return TimeRange.never()
        first = _start_side(self, other, later=True)
        last = _end_side(self, other, later=False)
        return TimeRange(first.start, last.end, first.include_start, last.include_end)

    def covering(self, other: TimeRange) -> TimeRange:
        """The smallest range containing both (gaps included): a flow's timerange."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        first = _start_side(self, other, later=False)
        last = _end_side(self, other, later=True)
        return TimeRange(first.start, last.end, first.include_start, last.include_end)

    def shift(self, offset_ns: int | Timestamp) -> TimeRange:
        """The range moved by `offset_ns` (e.g. a segment's `ts_offset`); empty stays empty.
        A bound moved off the 64-bit timeline is a `TimeRangeError`: no range may hold a
        time that no timerange can be written with."""
        if self.is_empty:
            return TimeRange.never()
        offset = offset_ns.ns if isinstance(offset_ns, Timestamp) else offset_ns
        start = None if self.start is None else self.start + offset
        end = None if self.end is None else self.end + offset
        for bound in (start, end):
            if bound is not None and not MIN_NS <= bound <= MAX_NS:
                raise TimeRangeError(
                    "timerange", str(self), f"moved by {offset} ns, {_OUT_OF_RANGE}"
                )
        return TimeRange(start, end, self.include_start, self.include_end)

    # --- identity and rendering ---------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeRange):
            return NotImplemented
        if self.is_empty or other.is_empty:
            return self.is_empty and other.is_empty
        return self.lo == other.lo and self.hi == other.hi

    def __hash__(self) -> int:
        return hash(()) if self.is_empty else hash((self.lo, self.hi))

    def __str__(self) -> str:
        """Canonical form: `[a_b)` (stored brackets), `[a]`, `[a_`, `_b)`, `_`, `()`."""
        if self.is_empty:
            return "()"
        lo = self.lo
        if lo is not None and lo == self.hi:
            return f"[{format_ns(lo)}]"
        left = ""
        if self.start is not None:
            left = ("[" if self.include_start else "(") + format_ns(self.start)
        right = ""
        if self.end is not None:
            right = format_ns(self.end) + ("]" if self.include_end else ")")
        return f"{left}_{right}"

    def __repr__(self) -> str:
        return f"TimeRange.parse({str(self)!r})"


# Comparable forms of the normalised bounds, where a None `lo` is -infinity and a None `hi`
# is +infinity.
def _lo_key(tr: TimeRange) -> tuple[int, int]:
    lo = tr.lo
    return (0, 0) if lo is None else (1, lo)


def _hi_key(tr: TimeRange) -> tuple[int, int]:
    hi = tr.hi
    return (1, 0) if hi is None else (0, hi)


def _start_side(a: TimeRange, b: TimeRange, later: bool) -> TimeRange:
    """The operand whose start is later (or earlier); on a tie the one spelt inclusive `[`."""
    ka, kb = _lo_key(a), _lo_key(b)
    if ka == kb:
        return b if b.include_start and not a.include_start else a
    return a if (ka > kb) == later else b


def _end_side(a: TimeRange, b: TimeRange, later: bool) -> TimeRange:
    """The operand whose end is later (or earlier); on a tie the one spelt exclusive `)`."""
    ka, kb = _hi_key(a), _hi_key(b)
    if ka == kb:
        return b if a.include_end and not b.include_end else a
    return a if (ka > kb) == later else b


def _le(lo: int | None, hi: int | None) -> bool:
    """`lo <= hi` where a None `lo` is -infinity and a None `hi` is +infinity."""
    return lo is None or hi is None or lo <= hi


# --- pydantic integration -------------------------------------------------------------


def _validate_timerange(value: Any) -> TimeRange:
    if isinstance(value, TimeRange):
        return value
    if not isinstance(value, str):
        raise TimeRangeError(
            "timerange", repr(value), f"expected a string, not {type(value).__name__}"
        )
    return TimeRange.parse(value)


def _validate_timestamp(value: Any) -> Timestamp:
    if isinstance(value, Timestamp):
        return value
    if not isinstance(value, str):
        raise TimeRangeError(
            "timestamp", repr(value), f"expected a string, not {type(value).__name__}"
        )
    return Timestamp.parse(value)


TimeRangeField = Annotated[
    TimeRange,
    PlainValidator(_validate_timerange),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": TIMERANGE_PATTERN}),
]
"""A TimeRange that is a canonical string in JSON and in `model_dump()`."""

TimestampField = Annotated[
    Timestamp,
    PlainValidator(_validate_timestamp),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": TIMESTAMP_PATTERN}),
]
"""A Timestamp that is a canonical string in JSON and in `model_dump()`."""
