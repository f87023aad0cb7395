"""HLS playlist rendering (docs/ext-hls.md), a pure function."""

from __future__ import annotations

import pytest

from tams_gateway.hls import (
    PlaylistSegment,
    playable,
    plays_whole_object,
    render_playlist,
    seconds,
    settled,
)

S = 1_000_000_000


def test_a_ts_playlist_with_a_gap() -> None:
    text = render_playlist(
        [
            PlaylistSegment(0, 2 * S, "http://s3/a"),
            PlaylistSegment(2 * S, 3 * S + S // 2, "http://s3/b"),
            PlaylistSegment(5 * S, 6 * S, "http://s3/c"),
        ]
    )
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:2.0,\nhttp://s3/a\n"
        "#EXTINF:1.5,\nhttp://s3/b\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXTINF:1.0,\nhttp://s3/c\n"
        "#EXT-X-ENDLIST\n"
    )


def test_a_live_playlist_is_an_event_playlist_without_an_end() -> None:
    """A player reloads an EVENT playlist and plays what was added at its end; the segments
    it had keep their place (media sequence 0, nothing removed)."""
    first = [PlaylistSegment(0, 2 * S, "http://s3/a")]
    grown = [*first, PlaylistSegment(2 * S, 4 * S, "http://s3/b")]
    assert render_playlist(first, live=True) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXT-X-PLAYLIST-TYPE:EVENT\n"
        "#EXTINF:2.0,\nhttp://s3/a\n"
    )
    assert render_playlist(grown, live=True).startswith(render_playlist(first, live=True))


def test_a_live_playlist_waits_for_a_gap_at_its_edge_to_fill() -> None:
    """An ingest registers segment 3 before segment 2 (its uploads finished out of order).
    Listing the gap would put segment 3 at position 2, and segment 2 there on the next
    reload, which hls.js 1.7.4 takes as a fatal "media sequence mismatch": the live playlist
    ends before the gap until three target durations of media follow it, so a gap that
    fills soon is never seen, and one that lasts is listed then (a recording resumed after
    a pause)."""

    def seg(i: int) -> PlaylistSegment:
        return PlaylistSegment(2 * i * S, 2 * (i + 1) * S, f"http://s3/{i}")

    registered = [seg(0), seg(1), seg(3)]
    assert settled(registered) == registered[:2]
    filled = [seg(0), seg(1), seg(2), seg(3)]
    assert settled(filled) == filled
    # Each playlist a player reloads starts with the one before: an EVENT playlist only grows.
    before = render_playlist(settled(registered), live=True)
    assert render_playlist(settled(filled), live=True).startswith(before)
    # Segment 2 never comes: with 6 s (three target durations) after the gap it is listed.
    assert settled([seg(0), seg(1), seg(3), seg(4)]) == [seg(0), seg(1)]
    lasting = [seg(0), seg(1), seg(3), seg(4), seg(5)]
    assert settled(lasting) == lasting
    assert "#EXT-X-DISCONTINUITY" in render_playlist(settled(lasting), live=True)
    # Only a gap holds the playlist back: not a change of ts_offset or init object, nor an
    # old gap with enough media after it, nor a VOD playlist (the route asks only for live).
    offset = [seg(0), PlaylistSegment(2 * S, 4 * S, "http://s3/x", ts_offset=S)]
    assert settled(offset) == offset
    assert settled([]) == []


def test_init_segments_get_a_map_at_first_and_at_every_change() -> None:
    text = render_playlist(
        [
            PlaylistSegment(0, S, "http://s3/a", "i1", "http://s3/i1"),
            PlaylistSegment(S, 2 * S, "http://s3/b", "i1", "http://s3/i1"),
            PlaylistSegment(2 * S, 3 * S, "http://s3/c", "i2", "http://s3/i2"),
        ]
    )
    lines = text.splitlines()
    assert lines[1] == "#EXT-X-VERSION:6"  # EXT-X-MAP outside an I-frame playlist (§7)
    assert lines[5:] == [
        '#EXT-X-MAP:URI="http://s3/i1"',
        "#EXTINF:1.0,",
        "http://s3/a",
        "#EXTINF:1.0,",
        "http://s3/b",
        "#EXT-X-DISCONTINUITY",
        '#EXT-X-MAP:URI="http://s3/i2"',
        "#EXTINF:1.0,",
        "http://s3/c",
        "#EXT-X-ENDLIST",
    ]


def test_a_change_of_ts_offset_is_a_discontinuity() -> None:
    # Contiguous on the flow's timeline, but the second segment's media timestamps start
    # 10 s before the first's ended (RFC 8216 §4.3.2.3: the timestamp sequence changes).
    text = render_playlist(
        [
            PlaylistSegment(0, 2 * S, "http://s3/a", ts_offset=-8 * S),
            PlaylistSegment(2 * S, 4 * S, "http://s3/b", ts_offset=2 * S),
            PlaylistSegment(4 * S, 6 * S, "http://s3/c", ts_offset=2 * S),
        ]
    )
    assert text.splitlines()[5:] == [
        "#EXTINF:2.0,",
        "http://s3/a",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:2.0,",
        "http://s3/b",
        "#EXTINF:2.0,",
        "http://s3/c",
        "#EXT-X-ENDLIST",
    ]


@pytest.mark.parametrize(
    ("start", "end", "ts_offset", "object_range", "whole"),
    [
        (0, 2 * S, 0, (0, 2 * S), True),
        (10 * S, 12 * S, 10 * S, (0, 2 * S), True),  # moved by ts_offset
        (0, 2 * S, 0, None, True),  # no known object timerange
        (0, 2 * S, 0, (0, 2 * S - 1), True),  # an inclusive object end inside the segment
        (0, S, 0, (0, 2 * S), False),  # the first half of the object
        (S, 2 * S, -2 * S, (2 * S, 4 * S), False),  # the second half of [2:0_4:0)
    ],
)
def test_a_segment_plays_only_if_it_covers_its_whole_object(
    start: int, end: int, ts_offset: int, object_range: tuple[int, int] | None, whole: bool
) -> None:
    assert plays_whole_object(start, end, ts_offset, object_range) is whole


def test_target_duration_is_the_longest_segment_rounded_up() -> None:
    text = render_playlist(
        [PlaylistSegment(0, 4 * S + 1, "u"), PlaylistSegment(4 * S + 1, 5 * S, "v")]
    )
    assert "#EXT-X-TARGETDURATION:5\n" in text
    assert "#EXT-X-TARGETDURATION:1\n" in render_playlist([])


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0.0"), (2 * S, "2.0"), (1_920_000_000, "1.92"), (33_366_667, "0.033366667")],
)
def test_durations_are_exact_decimal_seconds(ns: int, text: str) -> None:
    assert seconds(ns) == text


@pytest.mark.parametrize(
    ("container", "ok"),
    [
        ("video/mp2t", True),
        ("Video/MP2T", True),
        ("video/mp4", True),
        ("video/iso.segment", True),
        ("audio/aac", True),
        ("application/mxf", False),
        ("image/jpeg", False),
        (None, False),
        ("", False),
    ],
)
def test_playable_containers(container: str | None, ok: bool) -> None:
    assert playable(container) is ok
