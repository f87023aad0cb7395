"""Benchmark: PUT /flows/{id} and GET /flows/{id} through the gateway, 32 clients.

    uv run python bench/catalog.py                  # starts its own stack in a temp dir
    uv run python bench/catalog.py --url http://127.0.0.1:8000   # against a running stack

Two load shapes, both with 32 concurrent clients:
  paced   each client sends at a fixed rate (the total is --rate requests/s): latency at a
          steady, realistic load, which is what the p99 targets are about;
  closed  each client sends its next request as soon as the previous one is answered:
          the maximum throughput, and the latency at saturation.
Prints one line per (operation, shape) with throughput and p50/p90/p99/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tams_stack.credentials import add_auth_arguments, auth_from_arguments

CLIENTS = 32


def flow_body(flow_id: str, source_id: str, n: int) -> dict[str, Any]:
    return {
        "id": flow_id,
        "source_id": source_id,
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "label": f"bench flow {n}",
        "tags": {"bench": "catalog", "n": str(n)},
        "essence_parameters": {
            "frame_width": 1920,
            "frame_height": 1080,
            "frame_rate": {"numerator": 50, "denominator": 1},
        },
    }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU time of each process so far (Linux /proc)."""
    found = {}
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[name] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return found


def percentile(sorted_values: list[float], p: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def report(name: str, latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    values = sorted(latencies)
    row = {
        "name": name,
        "requests": len(values),
        "errors": errors,
        "throughput_per_s": round(len(values) / elapsed, 1),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p90_ms": round(percentile(values, 90) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }
    print(
        f"{name:<22} {row['requests']:>6} req {row['throughput_per_s']:>8.1f}/s  "
        f"p50 {row['p50_ms']:>6.2f}  p90 {row['p90_ms']:>6.2f}  p99 {row['p99_ms']:>6.2f}  "
        f"max {row['max_ms']:>7.2f} ms  errors {errors}",
        flush=True,
    )
    return row


async def await_turn(due: float) -> float:
    """Wait until a paced request is `due` (a `perf_counter` time); the time its latency
    counts from. A client behind its timetable goes at once, and its wait counts, so a
    stall cannot hide by holding back the requests that would have met it (coordinated
    omission)."""
    now = time.perf_counter()
    if due <= now:
        return due
    await asyncio.sleep(due - now)
    return time.perf_counter()


async def run_load(
    name: str,
    operation: Callable[[int], Awaitable[int]],
    expected: int,
    *,
    total: int,
    rate: float | None,
) -> dict[str, Any]:
    """`total` operations from CLIENTS workers; paced at `rate`/s in total, or closed-loop."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    interval = CLIENTS / rate if rate else 0.0

    async def client(offset: int) -> None:
        nonlocal errors
        next_at = time.perf_counter() + offset * interval / CLIENTS
        for n in counter:
            started = time.perf_counter()
            if interval:
                started = await await_turn(next_at)
                next_at += interval
            status = await operation(n)
            latencies.append(time.perf_counter() - started)
            if status != expected:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return report(name, latencies, time.perf_counter() - started, errors)


async def bench(url: str, total: int, rate: float, headers: dict[str, str]) -> list[dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=CLIENTS * 2)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as http:
        source_ids = [str(uuid.uuid4()) for _ in range(64)]
        created: list[str] = []
        source_of: dict[str, str] = {}

        async def put_new(n: int) -> int:
            flow_id = str(uuid.uuid4())
            body = flow_body(flow_id, source_ids[n % len(source_ids)], n)
            async with http.put(f"/flows/{flow_id}", json=body) as resp:
                await resp.read()
                if resp.status == 201:
                    created.append(flow_id)
                    source_of[flow_id] = body["source_id"]
                return resp.status

        async def put_replace(n: int) -> int:
            flow_id = created[n % len(created)]
            body = flow_body(flow_id, source_of[flow_id], n)
            async with http.put(f"/flows/{flow_id}", json=body) as resp:
                await resp.read()
                return resp.status

        async def get(n: int) -> int:
            async with http.get(f"/flows/{created[n % len(created)]}") as resp:
                await resp.read()
                return resp.status

        # Warm up connections and caches.
        await run_load("warm-up", put_new, 201, total=200, rate=None)
        results = [
            await run_load("PUT create (paced)", put_new, 201, total=total, rate=rate),
            await run_load("PUT replace (paced)", put_replace, 204, total=total, rate=rate),
            await run_load("GET flow (paced)", get, 200, total=total * 2, rate=rate * 2),
            await run_load("PUT create (closed)", put_new, 201, total=total, rate=None),
            await run_load("GET flow (closed)", get, 200, total=total * 2, rate=None),
        ]
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway URL (default: start a stack in a temp dir)")
    add_auth_arguments(parser)
    parser.add_argument("--requests", type=int, default=3000, help="requests per paced run")
    parser.add_argument("--rate", type=float, default=300.0, help="paced PUT rate, requests/s")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    stack = None
    url = args.url
    headers = auth_from_arguments(args)
    if url is None:
        from tams_stack.stack import Stack

        stack = Stack(Path(tempfile.mkdtemp(prefix="tams-bench-")))
        stack.start_infrastructure()
        asyncio.run(stack.start_services())
        url = stack.gateway_url
        headers = stack.client_headers()
    try:
        print(f"gateway {url}, {CLIENTS} clients", flush=True)
        results = asyncio.run(bench(url, args.requests, args.rate, headers))
    finally:
        if stack is not None:
            stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
