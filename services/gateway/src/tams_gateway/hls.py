"""HLS media playlists (RFC 8216) of a flow's segments: the HLS extension (docs/ext-hls.md).

Pure functions: the route (`routes/hls.py`) reads the segments and their URLs, and
`render_playlist` writes the playlist text: a VOD playlist, or a live EVENT playlist that
grows as segments are registered. No sliding window: HLS media sequence numbers must grow
by one per segment leaving it, which a timerange window over TAMS segments cannot give
cheaply and stably (see the doc); an EVENT playlist keeps its first segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MEDIA_TYPE = "application/vnd.apple.mpegurl"
NS_PER_S = 1_000_000_000

# Flow containers an HLS player can play (RFC 8216 §3): MPEG-TS; fragmented MPEG-4 (its init
# segment comes from the segments' init objects, ADR 0045); packed AAC audio. Compared without
# case and parameters (media types are case-insensitive).
MPEG_TS = frozenset({"video/mp2t"})
FRAGMENTED_MP4 = frozenset({"video/mp4", "audio/mp4", "video/iso.segment", "audio/iso.segment"})
PACKED_AUDIO = frozenset({"audio/aac"})
PLAYABLE_CONTAINERS = MPEG_TS | FRAGMENTED_MP4 | PACKED_AUDIO


def playable(container: str | None) -> bool:
    """Whether HLS can play segments in this container."""
    if not container:
        return False
    return container.split(";", 1)[0].strip().lower() in PLAYABLE_CONTAINERS


@dataclass(frozen=True)
class PlaylistSegment:
    """One segment as the playlist needs it: half-open bounds in nanoseconds, the URL a player
    fetches, its init object (id and URL) when it has one, and its `ts_offset` in
    nanoseconds (segment time minus the media's own timestamps)."""

    start: int
    end: int
    url: str
    init_object_id: str | None = None
    init_url: str | None = None
    ts_offset: int = 0


def plays_whole_object(
    start: int, end: int, ts_offset: int, object_range: tuple[int, int] | None
) -> bool:
    """Whether a segment's time covers all of its object's media: HLS plays a segment's whole
    file and cannot trim it, so a segment using part of an object (`object_timerange`
    wider than the segment's own time, moved back by `ts_offset`) would play the wrong
    media for the wrong duration. Half-open nanosecond bounds; an object with no known
    timerange counts as whole."""
    if object_range is None:
        return True
    return start - ts_offset <= object_range[0] and end - ts_offset >= object_range[1]


def seconds(ns: int) -> str:
    """Nanoseconds as exact decimal seconds: `2.0`, `1.92`, `0.033366667`."""
    whole, fraction = divmod(ns, NS_PER_S)
    return f"{whole}.{f'{fraction:09d}'.rstrip('0') or '0'}"


def target_duration(segments: Sequence[PlaylistSegment]) -> int:
    """The longest segment's duration rounded up to whole seconds (RFC 8216 §4.3.3.1: every
    EXTINF rounded to the nearest integer must not exceed it); 1 for an empty playlist."""
    longest = max((s.end - s.start for s in segments), default=0)
    return max(1, -(-longest // NS_PER_S))


# A live playlist lists the segments after a gap once they hold this many target durations
# of media (below): hls.js plays three target durations behind the live edge by default,
# so at that distance the wait is not seen.
GAP_WAIT_TARGET_DURATIONS = 3


def settled(segments: Sequence[PlaylistSegment]) -> list[PlaylistSegment]:
    """The segments a live playlist lists: all of them but those after a gap followed by
    less than `GAP_WAIT_TARGET_DURATIONS` target durations of media, where the playlist ends
    for now. An ingest whose uploads finish out of order registers segment n+1 before
    segment n; a player that saw the playlist with that gap (and the discontinuity after it)
    finds a different segment at position n on its next reload, which hls.js takes as a
    fatal error ("media sequence mismatch"). Waiting keeps a gap out of the playlist while
    it is likely to fill; a lasting gap (a recording paused, a segment lost) is listed once
    that much media follows it."""
    if not segments:
        return []
    wait_ns = GAP_WAIT_TARGET_DURATIONS * target_duration(segments) * NS_PER_S
    end = segments[-1].end
    for i in range(1, len(segments)):
        if segments[i].start > segments[i - 1].end and end - segments[i].start < wait_ns:
            return list(segments[:i])
    return list(segments)


def render_playlist(segments: Sequence[PlaylistSegment], *, live: bool = False) -> str:
    """A VOD media playlist of `segments` (in time order); with `live`, an EVENT playlist
    (RFC 8216 §4.3.3.5): no `#EXT-X-ENDLIST`, so a player reloads it and plays the segments
    added at its end.

    `#EXT-X-DISCONTINUITY` before a segment that does not start where the previous one ended
    (a gap, or an overlap), before a change of `ts_offset` (its media timestamps then jump
    even where the flow's timeline runs on: a reused or edited object), and before a change
    of init object: RFC 8216 §4.3.2.3 requires it when the file format, the tracks or the
    timestamp sequence change, which a new init segment may do. `#EXT-X-MAP` before the
    first segment with an init object and at every change. EXT-X-MAP outside an I-frame
    playlist needs version 6 (§7); without it, decimal EXTINF durations need version 3.
    """
    uses_map = any(s.init_url for s in segments)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{6 if uses_map else 3}",
        f"#EXT-X-TARGETDURATION:{target_duration(segments)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if live else 'VOD'}",
    ]
    previous: PlaylistSegment | None = None
    for segment in segments:
        init_changed = previous is not None and segment.init_object_id != previous.init_object_id
        if previous is not None and (
            segment.start != previous.end or segment.ts_offset != previous.ts_offset or init_changed
        ):
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_url and (previous is None or init_changed):
            lines.append(f'#EXT-X-MAP:URI="{segment.init_url}"')
        lines.append(f"#EXTINF:{seconds(segment.end - segment.start)},")
        lines.append(segment.url)
        previous = segment
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def usable_url(url: str) -> bool:
    """A URL a playlist line (or a quoted EXT-X-MAP URI) can carry: no line breaks or quotes."""
    return bool(url) and not any(c in url for c in '"\r\n')
