"""Resident memory of each service: idle, then after a burst of writes and reads.

    uv run python bench/memory.py                 # starts its own stack in a temp dir
    uv run python bench/memory.py --flows 1000

Sizes the Helm chart's memory requests and limits (docs/deploy.md). Prints one line per
service with its RSS in MiB, read from /proc/<pid>/status (SQLite store, local tansu/SeaweedFS).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import aiohttp

from tams_stack.stack import Stack


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def snapshot(stack: Stack) -> dict[str, float]:
    return {name: rss_mib(s.process.pid) for name, s in stack.services.items()}


async def load(gateway: str, flows: int, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(base_url=gateway, headers=headers) as http:
        for _ in range(flows):
            flow_id = str(uuid.uuid4())
            body = {
                "id": flow_id,
                "source_id": str(uuid.uuid4()),
                "format": "urn:x-nmos:format:video",
                "codec": "video/h264",
                "container": "video/mp2t",
                "essence_parameters": {
                    "frame_width": 1920,
                    "frame_height": 1080,
                    "frame_rate": {"numerator": 25},
                },
            }
            async with http.put(f"/flows/{flow_id}", json=body) as resp:
                assert resp.status == 201, await resp.text()
        for _ in range(flows):
            async with http.get("/flows", params={"limit": "100"}) as resp:
                assert resp.status == 200
                await resp.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300, help="flows to PUT (and lists to GET)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="tams-bench-memory-"))
    stack = Stack(data_dir, extra_env={"TAMS_LOG_LEVEL": "WARNING"})
    try:
        stack.start_infrastructure()
        asyncio.run(stack.start_services())
        idle = snapshot(stack)
        asyncio.run(load(stack.gateway_url, args.flows, stack.client_headers()))
        busy = snapshot(stack)
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"{'service':<10} {'idle MiB':>9} {'after MiB':>10}   (after {args.flows} PUT + GET)")
    for name in idle:
        print(f"{name:<10} {idle[name]:>9.1f} {busy[name]:>10.1f}")


if __name__ == "__main__":
    main()
