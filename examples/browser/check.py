"""A browser against the local stack: upload a flow from a web page, play it with hls.js.

    cd examples/browser && npm install && cd ../..
    uv run python examples/browser/check.py [--chromium /usr/bin/chromium]

Starts a fresh stack with CORS open to one local origin, serves `client.html` from that
origin, and has headless Chromium (driven by `player.mjs`) run it twice: for an MPEG-TS flow
and for a fragmented MP4 flow with an init segment. The page creates the flow, uploads each
segment straight to the object store through its presigned PUT URL (so the bucket's CORS
must allow it), registers the segments and plays the flow's HLS playlist (docs/ext-hls.md)
to the end. ffmpeg encodes six seconds of 25 fps video for it, so each run must show 150
frames decoded and none dropped. Exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import imageio_ffmpeg
from aiohttp import web

from tams_stack.ports import free_port
from tams_stack.stack import Stack

HERE = Path(__file__).resolve().parent
FRAMES = 150  # six seconds at 25 fps
VIDEO = ("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "6")
H264 = ("-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p")


def encode(media: Path) -> None:
    """Three 2 s segments of the same video, as MPEG-TS and as CMAF with its init segment."""
    ffmpeg = (imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-nostdin")
    subprocess.run(
        [*ffmpeg, *VIDEO, *H264, "-f", "segment", "-segment_time", "2",
         "-segment_format", "mpegts", "segment%d.ts"],
        cwd=media, check=True,
    )  # fmt: skip
    subprocess.run(
        [*ffmpeg, *VIDEO, *H264, "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
         "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
         "-hls_segment_filename", "segment%d.m4s", "reference.m3u8"],
        cwd=media, check=True,
    )  # fmt: skip


def site(media: Path) -> web.Application:
    files = {
        "/client.html": HERE / "client.html",
        "/hls.min.js": HERE / "node_modules" / "hls.js" / "dist" / "hls.min.js",
    }

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(files[request.path])

    app = web.Application()
    for path in files:
        app.router.add_get(path, file)
    app.router.add_static("/media", media)
    return app


async def run_page(stack: Stack, origin: str, kind: str, chromium: str) -> dict[str, Any]:
    query = urlencode(
        {
            "gateway": stack.gateway_url,
            "authorization": stack.client_headers()["Authorization"],
            "kind": kind,
        }
    )
    player = await asyncio.create_subprocess_exec(
        "node", str(HERE / "player.mjs"), f"{origin}/client.html?{query}", chromium,
        cwd=HERE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await player.communicate()
    if player.returncode != 0:
        return {"ok": False, "kind": kind, "error": f"player.mjs exited {player.returncode}"}
    result: dict[str, Any] = json.loads(out)
    return result


async def check(stack: Stack, media: Path, port: int, chromium: str) -> bool:
    runner = web.AppRunner(site(media))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    passed = True
    try:
        for kind in ("ts", "fmp4"):
            result = await run_page(stack, f"http://127.0.0.1:{port}", kind, chromium)
            played = result.get("played") or {}
            ok = result["ok"] and played.get("frames") == FRAMES and played.get("dropped") == 0
            passed &= ok
            print(f"{kind}: {'passed' if ok else 'FAILED'}: {json.dumps(result, indent=1)}")
    finally:
        await runner.cleanup()
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not (HERE / "node_modules" / "hls.js").is_dir():
        print("run `npm install` in examples/browser first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="tams-browser-"))
    media = work / "media"
    media.mkdir()
    encode(media)
    # The page is served from its own origin, as a web tool would be: the gateway must allow
    # it (CORS), and so must the bucket, for the uploads and the segment fetches.
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    stack = Stack(work / "stack", extra_env={"TAMS_GATEWAY_CORS_ORIGINS": origin})
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services())
        return 0 if asyncio.run(check(stack, media, page_port, args.chromium)) else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
