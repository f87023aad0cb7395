"""The HLS extension (docs/ext-hls.md) over real HTTP: a flow's segments as a VOD media
playlist whose URLs fetch the uploaded bytes from the real S3 server, and that a real HLS
client (ffmpeg) plays back frame for frame."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import aiohttp
import imageio_ffmpeg

from tams_stack.stack import Stack
from tams_stack.testing import TEST_PLAYLIST_MAX_SEGMENTS

from .helpers import allocate_and_upload, new_id, post, put_flow, video_flow
from .test_auth_resources import As, classed_flow, client  # noqa: F401 (a fixture)
from .test_init_objects import fmp4_flow, upload


@dataclass
class Entry:
    duration: str
    url: str
    discontinuity: bool
    map_uri: str | None


@dataclass
class Playlist:
    headers: dict[str, str]
    entries: list[Entry] = field(default_factory=list)


def parse(text: str, *, ended: bool = True) -> Playlist:
    """A media playlist: its header tags, and each segment with the tags before it; `ended`
    (VOD) with `#EXT-X-ENDLIST`, else (live) without."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U", text
    assert (lines[-1] == "#EXT-X-ENDLIST") == ended, text
    playlist = Playlist({})
    duration, discontinuity, map_uri = None, False, None
    for line in lines[1:-1] if ended else lines[1:]:
        if line.startswith("#EXTINF:"):
            duration = line.removeprefix("#EXTINF:").removesuffix(",")
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-MAP:URI="):
            map_uri = line.removeprefix("#EXT-X-MAP:URI=").strip('"')
        elif line.startswith("#"):
            name, _, value = line.partition(":")
            playlist.headers[name] = value
        else:
            assert duration is not None, text
            playlist.entries.append(Entry(duration, line, discontinuity, map_uri))
            duration, discontinuity, map_uri = None, False, None
    return playlist


async def get_playlist(
    http: aiohttp.ClientSession,
    flow_id: str,
    query: str = "",
    status: int = 200,
    *,
    ended: bool = True,
) -> Any:
    async with http.get(f"/flows/{flow_id}/playlist.m3u8{query}") as resp:
        assert resp.status == status, await resp.text()
        if status != 200:
            return await resp.json()
        assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        return parse(await resp.text(), ended=ended)


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


def expires_s(url: str) -> int:
    """How long a presigned URL is valid (`X-Amz-Expires`)."""
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


async def register(http: aiohttp.ClientSession, flow_id: str, segments: list[Any]) -> None:
    status, body = await post(http, flow_id, segments)
    assert status == 201, body


async def test_an_mpeg_ts_flow_with_a_gap(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    payloads = [b"ts segment a" * 50, b"ts segment b" * 50, b"ts segment c" * 50]
    objects = await allocate_and_upload(http, flow["id"], payloads)
    timeranges = ["[0:0_2:0)", "[2:0_3:500000000)", "[5:0_6:0)"]
    await register(
        http,
        flow["id"],
        [{"object_id": o, "timerange": t} for o, t in zip(objects, timeranges, strict=True)],
    )

    playlist = await get_playlist(http, flow["id"])
    assert playlist.headers == {
        "#EXT-X-VERSION": "3",
        "#EXT-X-TARGETDURATION": "2",
        "#EXT-X-MEDIA-SEQUENCE": "0",
        "#EXT-X-PLAYLIST-TYPE": "VOD",
    }
    assert [e.duration for e in playlist.entries] == ["2.0", "1.5", "1.0"]
    assert [e.discontinuity for e in playlist.entries] == [False, False, True]
    assert all(e.map_uri is None for e in playlist.entries)
    assert [await fetch(e.url) for e in playlist.entries] == payloads
    # A player fetches the playlist once and plays for hours: its URLs outlive the
    # listing's (TAMS_GATEWAY_PLAYLIST_URL_TIMEOUT_S, 6 h).
    async with http.get(f"/flows/{flow['id']}/segments") as resp:
        listed = (await resp.json())[0]["get_urls"][0]["url"]
    assert expires_s(listed) < 6 * 3600 <= expires_s(playlist.entries[0].url)

    # The segments overlapping the timerange, as the listing selects them.
    only_b = await get_playlist(http, flow["id"], "?timerange=[2:0_5:0)")
    assert [await fetch(e.url) for e in only_b.entries] == payloads[1:2]
    overlapping = await get_playlist(http, flow["id"], "?timerange=[1:0_5:1)")
    assert len(overlapping.entries) == 3
    assert (await get_playlist(http, flow["id"], "?timerange=[9:0_10:0)")).entries == []
    # A URL filter that keeps no URL leaves nothing to play.
    assert (await get_playlist(http, flow["id"], "?accept_get_urls=")).entries == []


async def test_reused_objects_and_objects_played_in_part(http: aiohttp.ClientSession) -> None:
    # An edit: two 2 s objects, each registered whole and then reused later in the flow
    # with a ts_offset, and once in part, which HLS cannot play (it plays whole files).
    flow = video_flow()
    await put_flow(http, flow)
    payloads = [b"ts object a" * 50, b"ts object b" * 50]
    a, b = await allocate_and_upload(http, flow["id"], payloads)
    await register(
        http,
        flow["id"],
        [
            {"object_id": a, "timerange": "[0:0_2:0)"},
            {"object_id": b, "timerange": "[2:0_4:0)"},
            {"object_id": a, "timerange": "[4:0_6:0)", "ts_offset": "4:0"},
            {"object_id": b, "timerange": "[6:0_7:0)", "ts_offset": "4:0"},  # b's first half
            {"object_id": b, "timerange": "[7:0_9:0)", "ts_offset": "5:0"},
        ],
    )

    playlist = await get_playlist(http, flow["id"])
    assert [await fetch(e.url) for e in playlist.entries] == [
        payloads[0],
        payloads[1],
        payloads[0],
        payloads[1],
    ]
    assert [e.duration for e in playlist.entries] == ["2.0", "2.0", "2.0", "2.0"]
    # Each reuse restarts the media timestamps, and the part left out is a gap.
    assert [e.discontinuity for e in playlist.entries] == [False, False, True, True]


async def test_init_segments_become_ext_x_map(http: aiohttp.ClientSession) -> None:
    flow = fmp4_flow()
    await put_flow(http, flow)
    flow_id = flow["id"]
    inits = await upload(http, flow_id, [b"ftyp moov 1", b"ftyp moov 2"], "application/mp4")
    payloads = [b"moof mdat 0", b"moof mdat 1", b"moof mdat 2"]
    media = await upload(http, flow_id, payloads)
    await register(
        http,
        flow_id,
        [
            {"object_id": media[i], "timerange": f"[{i}:0_{i + 1}:0)", "init_object_id": init}
            for i, init in enumerate([inits[0], inits[0], inits[1]])
        ],
    )

    playlist = await get_playlist(http, flow_id)
    assert playlist.headers["#EXT-X-VERSION"] == "6"
    entries = playlist.entries
    assert [await fetch(e.url) for e in entries] == payloads
    # A map before the first segment and at the change of init object, with a discontinuity.
    assert entries[0].map_uri and entries[1].map_uri is None and entries[2].map_uri
    assert [e.discontinuity for e in entries] == [False, False, True]
    assert await fetch(entries[0].map_uri) == b"ftyp moov 1"
    assert await fetch(entries[2].map_uri) == b"ftyp moov 2"


async def test_at_most_the_configured_number_of_segments(http: aiohttp.ClientSession) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    count = TEST_PLAYLIST_MAX_SEGMENTS + 1
    objects = await allocate_and_upload(http, flow["id"], [b"x"] * count)
    await register(
        http,
        flow["id"],
        [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(objects)],
    )
    error = await get_playlist(http, flow["id"], status=400)
    assert "narrow the timerange" in error["summary"], error
    at_limit = await get_playlist(http, flow["id"], f"?timerange=[0:0_{count - 1}:0)")
    assert len(at_limit.entries) == TEST_PLAYLIST_MAX_SEGMENTS


async def test_errors(http: aiohttp.ClientSession, gateway_url: str) -> None:
    mxf = video_flow(container="application/mxf")
    await put_flow(http, mxf)
    error = await get_playlist(http, mxf["id"], status=400)
    assert "application/mxf" in error["summary"], error
    assert (await get_playlist(http, new_id(), status=404))["type"]
    ts = video_flow()
    await put_flow(http, ts)
    error = await get_playlist(http, ts["id"], "?timerange=nonsense", status=400)
    assert "nonsense" in error["summary"], error
    async with (
        aiohttp.ClientSession(gateway_url) as anonymous,
        anonymous.get(f"/flows/{ts['id']}/playlist.m3u8") as resp,
    ):
        assert resp.status == 401


async def test_reading_needs_read_on_the_flow(
    http: aiohttp.ClientSession,
    client: aiohttp.ClientSession,  # noqa: F811
) -> None:
    news = await classed_flow(http, ["news"])
    desk = await classed_flow(http, ["desk_write"])

    async def status(who: str, flow: dict[str, Any]) -> int:
        path = f"/flows/{flow['id']}/playlist.m3u8"
        async with client.get(path, headers=As(client, who).headers) as resp:
            return resp.status

    assert await status("reader", news) == 200
    # No permission at all: as if the flow did not exist; some, but not read: 403.
    assert await status("sport", news) == 404
    assert await status("intern", desk) == 403


# A real HLS client: ffmpeg's HLS demuxer, the one ffplay plays with. It reads the playlist
# as a player would, fetches every segment from S3 through its presigned URL, and decodes.


async def ffmpeg(*args: str, cwd: Path) -> str:
    """Run the ffmpeg binary of the `imageio-ffmpeg` wheel; its standard output."""
    process = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def decoded_frames(source: str, cwd: Path, *options: str) -> list[str]:
    """The MD5 of every decoded video frame of `source`, in order."""
    lines = await ffmpeg(*options, "-i", source, "-map", "0:v", "-f", "framemd5", "-", cwd=cwd)
    return [line.rsplit(",", 1)[1].strip() for line in lines.splitlines() if line[:1] != "#"]


HLS_CLIENT = ("-protocol_whitelist", "file,http,tcp", "-extension_picky", "0")
TEST_VIDEO = ("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "6")
H264 = ("-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p")


async def played(
    http: aiohttp.ClientSession, flow_id: str, cwd: Path, query: str = ""
) -> list[str]:
    """The frames ffmpeg decodes from the flow's playlist."""
    async with http.get(f"/flows/{flow_id}/playlist.m3u8{query}") as resp:
        assert resp.status == 200, await resp.text()
        (cwd / "flow.m3u8").write_text(await resp.text())
    return await decoded_frames("flow.m3u8", cwd, *HLS_CLIENT)


async def mpeg_ts_segments(cwd: Path, seconds: int) -> tuple[list[bytes], list[str]]:
    """`seconds` of H.264 in MPEG-TS, cut into 2 s segments at key frames: their bytes, and
    the frames (MD5s) of the whole."""
    await ffmpeg(
        *TEST_VIDEO[:-1], str(seconds), *H264, "-f", "segment", "-segment_time", "2",
        "-segment_format", "mpegts", "segment%d.ts",
        cwd=cwd,
    )  # fmt: skip
    payloads = [(cwd / f"segment{i}.ts").read_bytes() for i in range(seconds // 2)]
    (cwd / "whole.ts").write_bytes(b"".join(payloads))
    source_frames = await decoded_frames("whole.ts", cwd)
    assert len(source_frames) == 25 * seconds
    return payloads, source_frames


async def test_ffmpeg_plays_an_mpeg_ts_flow_frame_for_frame(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    payloads, source_frames = await mpeg_ts_segments(tmp_path, 6)

    flow = video_flow()
    await put_flow(http, flow)
    objects = await allocate_and_upload(http, flow["id"], payloads)
    await register(
        http,
        flow["id"],
        [
            {"object_id": o, "timerange": f"[{2 * i}:0_{2 * i + 2}:0)"}
            for i, o in enumerate(objects)
        ],
    )

    assert await played(http, flow["id"], tmp_path) == source_frames
    # A timerange plays the segments it overlaps: here the middle one alone.
    middle = await played(http, flow["id"], tmp_path, "?timerange=[2:0_4:0)")
    assert middle == source_frames[50:100]


async def test_ffmpeg_follows_a_live_playlist_as_segments_are_registered(
    http: aiohttp.ClientSession, tams_stack: Stack, tmp_path: Path
) -> None:
    """A flow being recorded: ffmpeg opens its live playlist from the gateway, plays the
    three segments there, and goes on to those registered after it started, reloading the
    playlist as a player does, frame for frame. (Its decoder holds the last few frames it
    has until more media comes, as a live stream never ends: it is asked for the first 12
    seconds of 14.)"""
    payloads, source_frames = await mpeg_ts_segments(tmp_path, 14)

    flow = video_flow()
    await put_flow(http, flow)
    objects = await allocate_and_upload(http, flow["id"], payloads)
    segments = [
        {"object_id": o, "timerange": f"[{2 * i}:0_{2 * i + 2}:0)"} for i, o in enumerate(objects)
    ]
    await register(http, flow["id"], segments[:3])
    live = await get_playlist(http, flow["id"], "?live=true", ended=False)
    assert live.headers["#EXT-X-PLAYLIST-TYPE"] == "EVENT"
    assert len(live.entries) == 3

    # The player signs in with Basic credentials in the URL, as VLC does (docs/ext-hls.md);
    # they go to the gateway only, not with the presigned segment URLs.
    assert tams_stack.admin is not None
    signed_in = urlsplit(tams_stack.gateway_url)._replace(
        netloc=f"{quote(tams_stack.admin.user, safe='')}:"
        f"{quote(tams_stack.admin.password, safe='')}@{urlsplit(tams_stack.gateway_url).netloc}"
    )
    url = f"{urlunsplit(signed_in)}/flows/{flow['id']}/playlist.m3u8?live=true"
    player = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner", "-nostdin", "-loglevel", "verbose", *HLS_CLIENT,
        "-live_start_index", "0", "-i", url,
        "-map", "0:v", "-frames:v", "300", "-f", "framemd5", "-",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert player.stdout is not None and player.stderr is not None
    log: list[str] = []
    opened_third = asyncio.Event()

    async def read_log() -> None:
        assert player.stderr is not None
        async for line in player.stderr:
            log.append(line.decode(errors="replace"))
            if objects[2] in log[-1]:
                opened_third.set()

    logging = asyncio.create_task(read_log())
    try:
        async with asyncio.timeout(60):
            # It has played the playlist of three: the rest are registered while it plays.
            await opened_third.wait()
            await register(http, flow["id"], segments[3:])
            out = await player.stdout.read()
            await player.wait()
            await logging
    finally:
        if player.returncode is None:
            player.kill()
            await player.wait()
    assert player.returncode == 0, log[-20:]
    frames = [row.rsplit(",", 1)[1].strip() for row in out.decode().splitlines() if row[:1] != "#"]
    assert frames == source_frames[:300]


async def test_a_live_playlist_waits_for_a_gap_at_its_edge_to_fill(
    http: aiohttp.ClientSession,
) -> None:
    """Segment 2 registered after segment 3 (uploads finishing out of order): the live
    playlist ends before the gap until it fills, so a player never sees segment 3 at
    position 2 (hls.js stops on that); the VOD playlist shows what is there."""
    flow = video_flow()
    await put_flow(http, flow)
    objects = await allocate_and_upload(http, flow["id"], [b"ts %d" % i * 50 for i in range(4)])
    segments = [
        {"object_id": o, "timerange": f"[{2 * i}:0_{2 * i + 2}:0)"} for i, o in enumerate(objects)
    ]
    await register(http, flow["id"], [segments[0], segments[1], segments[3]])
    live = await get_playlist(http, flow["id"], "?live=true", ended=False)
    assert [e.discontinuity for e in live.entries] == [False, False]
    vod = await get_playlist(http, flow["id"])
    assert [e.discontinuity for e in vod.entries] == [False, False, True]
    await register(http, flow["id"], [segments[2]])
    live = await get_playlist(http, flow["id"], "?live=true", ended=False)
    assert [await fetch(e.url) for e in live.entries] == [b"ts %d" % i * 50 for i in range(4)]
    assert not any(e.discontinuity for e in live.entries)


async def test_ffmpeg_plays_a_fragmented_mp4_flow_with_its_init_segment(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # The same video as CMAF: one init segment (EXT-X-MAP) and three 2 s media segments,
    # as ffmpeg's own HLS muxer cuts them; its playlist is the reference.
    await ffmpeg(
        *TEST_VIDEO, *H264, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", "segment%d.m4s", "reference.m3u8",
        cwd=tmp_path,
    )  # fmt: skip
    source_frames = await decoded_frames("reference.m3u8", tmp_path, *HLS_CLIENT)
    assert len(source_frames) == 150

    flow = fmp4_flow()
    await put_flow(http, flow)
    (init,) = await upload(
        http, flow["id"], [(tmp_path / "init.mp4").read_bytes()], "application/mp4"
    )
    media = await upload(
        http, flow["id"], [(tmp_path / f"segment{i}.m4s").read_bytes() for i in range(3)]
    )
    await register(
        http,
        flow["id"],
        [
            {"object_id": o, "timerange": f"[{2 * i}:0_{2 * i + 2}:0)", "init_object_id": init}
            for i, o in enumerate(media)
        ],
    )

    assert await played(http, flow["id"], tmp_path) == source_frames
