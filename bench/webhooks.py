"""Benchmark: webhook fan-out latency, from a segment POST's reply to each receiver's receipt.

    uv run python bench/webhooks.py [--url http://127.0.0.1:8000] [--webhooks 100]

Starts a stack in a temporary directory unless `--url` is given (that stack must allow
loopback receivers: TAMS_WEBHOOKS_ALLOWED_NETWORKS=127.0.0.0/8, which `tams up` sets).
Receivers are separate processes on loopback (`--receivers`, the webhooks spread over them),
so receiving does not compete with the load generator's event loop. `--webhooks` webhooks
all want `flows/segments_added` of one flow; segments are POSTed one at a time at `--rate`
per second, each answered 201 and then delivered to every webhook with its presigned
`get_urls` signed at delivery. A sample is one (segment, webhook) pair: receipt time minus the
time the POST's reply arrived (one monotonic clock for all processes). A delivery may arrive
before the reply (events and reply are sent together), so small negative values are possible.
When it starts the stack itself, it also prints each process's CPU time during the measured
phase (from /proc), and the webhooks service's CPU per delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tams_stack.credentials import add_auth_arguments, auth_from_arguments

sys.path.insert(0, str(Path(__file__).parent))
from catalog import cpu_seconds, percentile
from segments_write import prepare_objects, reuse, video_flow

# --- receiver process --------------------------------------------------------------------


async def receive(flush_every_s: float = 0.05) -> None:
    """Print `port` once, then one line per POST: `<hook index> <timerange> <receipt ns>`."""
    lines: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        received = time.monotonic_ns()
        body = await request.json()
        segments = body["event"]["segments"]
        lines.append(f"{request.match_info['index']} {segments[0]['timerange']} {received}")
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook/{index}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    while True:
        await asyncio.sleep(flush_every_s)
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            lines.clear()


class Receivers:
    """Receiver processes and the receipts they report."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ports: list[int] = []
        self.receipts: dict[tuple[int, str], int] = {}
        self._processes: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for _ in range(self.count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--receive", stdout=asyncio.subprocess.PIPE
            )
            assert process.stdout is not None
            self.ports.append(int(await process.stdout.readline()))
            self._processes.append(process)
            self._readers.append(asyncio.create_task(self._read(process)))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            index, timerange, received = line.decode().split()
            self.receipts.setdefault((int(index), timerange), int(received))

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % self.count]}/hook/{index}"

    async def stop(self) -> None:
        for task in self._readers:
            task.cancel()
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


# --- load ----------------------------------------------------------------------------------


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def post_segments(
    http: aiohttp.ClientSession,
    flow_id: str,
    objects: list[str],
    first: int,
    count: int,
    rate: float,
) -> tuple[dict[str, int], list[float]]:
    """POST `count` segments one at a time at `rate`/s; reply times by timerange."""
    replies: dict[str, int] = {}
    post_latencies: list[float] = []
    start = time.monotonic()
    for n in range(count):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        segment = reuse(objects, n, first + n)
        timerange = segment["timerange"]
        sent = time.monotonic()
        async with http.post(f"/flows/{flow_id}/segments", json=segment) as resp:
            await resp.read()
            replies[timerange] = time.monotonic_ns()
            assert resp.status == 201, resp.status
        post_latencies.append(replies[timerange] / 1e9 - sent)
    return replies, post_latencies


def summary(name: str, values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    row = {
        "phase": name,
        "samples": len(ordered),
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p90_ms": round(percentile(ordered, 90) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
    print(
        f"{name}: {row['samples']} samples  p50 {row['p50_ms']} ms  p90 {row['p90_ms']} ms  "
        f"p99 {row['p99_ms']} ms  max {row['max_ms']} ms",
        flush=True,
    )
    return row


async def bench(
    url: str,
    webhooks: int,
    receivers: int,
    segments: int,
    rate: float,
    pids: dict[str, int] | None = None,
    idle_s: float = 5.0,
    headers: dict[str, str] | None = None,
) -> list[Any]:
    receiving = Receivers(receivers)
    await receiving.start()
    ids: list[str] = []
    try:
        async with aiohttp.ClientSession(url, headers=headers) as http:
            objects = await prepare_objects(http, 50)
            flow = video_flow()
            async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
                assert resp.status == 201
            for index in range(webhooks):
                body = {
                    "url": receiving.url(index),
                    "events": ["flows/segments_added"],
                    "flow_ids": [flow["id"]],
                    "api_key_name": "Authorization",
                    "api_key_value": f"Bearer {uuid.uuid4()}",
                }
                async with http.post("/service/webhooks", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    ids.append((await resp.json())["id"])

            async def all_started() -> bool:
                async with http.get(f"/service/webhooks?limit={webhooks + 100}") as resp:
                    listed = [w for w in await resp.json() if w["id"] in set(ids)]
                return all(w["status"] == "started" for w in listed)

            deadline = time.monotonic() + 30
            while not await all_started():
                assert time.monotonic() < deadline, "webhooks did not start"
                await asyncio.sleep(0.1)

            warm = 20
            await post_segments(http, flow["id"], objects, 0, warm, rate)
            await wait_for(
                lambda: len(receiving.receipts) >= warm * webhooks, 60, "warm-up deliveries"
            )
            # The services' idle CPU (Kafka consumers polling) over a quiet window, so the
            # webhooks service's CPU per delivery can be given net of it.
            idle_before = cpu_seconds(pids or {})
            idle_started = time.monotonic()
            await asyncio.sleep(idle_s if pids else 0)
            idle_elapsed = time.monotonic() - idle_started
            cpu_before = cpu_seconds(pids or {})
            idle_rate = {
                name: (used - idle_before[name]) / idle_elapsed
                for name, used in cpu_before.items()
                if name in idle_before and idle_elapsed > 0
            }
            measured_started = time.monotonic()
            replies, post_latencies = await post_segments(
                http, flow["id"], objects, warm, segments, rate
            )
            expected = len(replies) * webhooks
            measured = lambda: sum(  # noqa: E731
                1 for (_, t) in receiving.receipts if t in replies
            )
            with contextlib.suppress(TimeoutError):
                await wait_for(lambda: measured() >= expected, 120, "deliveries")
            cpu = {
                name: round(used - cpu_before[name], 2)
                for name, used in cpu_seconds(pids or {}).items()
                if name in cpu_before
            }
            measured_elapsed = time.monotonic() - measured_started
            latencies = [
                (received - replies[timerange]) / 1e9
                for (_, timerange), received in receiving.receipts.items()
                if timerange in replies
            ]
            rows = [
                summary(f"segment POST reply ({rate:g}/s)", post_latencies),
                summary(f"reply -> receipt, {webhooks} webhooks", latencies),
            ]
            rows[-1]["missing"] = expected - len(latencies)
            print(f"deliveries: {len(latencies)} of {expected}", flush=True)
            if cpu:
                rows.append({"phase": "CPU seconds during the measured phase", **cpu})
                deliveries = max(1, len(latencies))
                gross = cpu.get("webhooks", 0) / deliveries * 1000
                idle = idle_rate.get("webhooks", 0) * measured_elapsed
                net = (cpu.get("webhooks", 0) - idle) / deliveries * 1000
                print(
                    f"CPU s over {measured_elapsed:.1f} s: {cpu}\n"
                    f"webhooks service: {gross:.3f} ms CPU per delivery, {net:.3f} ms net of "
                    f"its idle polling ({idle_rate.get('webhooks', 0):.3f} cores when idle)",
                    flush=True,
                )
                rows[-1]["webhooks_ms_per_delivery_net_of_idle"] = round(net, 3)
            for webhook_id in ids:
                async with http.delete(f"/service/webhooks/{webhook_id}") as resp:
                    assert resp.status == 204
            return rows
    finally:
        await receiving.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="gateway URL (default: start a stack in a temp dir)")
    add_auth_arguments(parser)
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--receivers", type=int, default=2, help="receiver processes")
    parser.add_argument("--segments", type=int, default=300, help="measured segment POSTs")
    parser.add_argument("--rate", type=float, default=10.0, help="segment POSTs per second")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        asyncio.run(receive())
        return 0

    stack = None
    url = args.url
    headers = auth_from_arguments(args)
    pids: dict[str, int] = {}
    if url is None:
        from tams_stack.stack import Stack

        stack = Stack(Path(tempfile.mkdtemp(prefix="tams-bench-")))
        stack.start_infrastructure()
        asyncio.run(stack.start_services())
        url = stack.gateway_url
        headers = stack.client_headers()
        pids = {name: service.process.pid for name, service in stack.services.items()}
        if stack.broker is not None:
            pids["tansu"] = stack.broker.process.pid
    try:
        results = asyncio.run(
            bench(
                url, args.webhooks, args.receivers, args.segments, args.rate, pids, headers=headers
            )
        )
    finally:
        if stack is not None:
            stack.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
