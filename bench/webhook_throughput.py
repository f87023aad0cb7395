"""Benchmark: one webhook watching many flows, against a receiver that takes time to answer.

    uv run python bench/webhook_throughput.py [--in-flight 16] [--answer-ms 2] [--rate 500]

A media asset manager typically registers one webhook for `flows/segments_added` of every
flow it cares about. Its events then come at the plant's ingest rate, and each delivery
costs the receiver's answer time. This starts a stack in a temporary directory with
`TAMS_WEBHOOKS_MAX_IN_FLIGHT_PER_WEBHOOK=--in-flight`, registers one webhook for `--flows`
flows, and POSTs single segments to those flows in turn, paced at `--rate` per second for
`--seconds`. The receiver (a separate process on loopback) answers each POST after
`--answer-ms` milliseconds, as a receiver doing a little work per event would.

Prints the rate of POSTs and of deliveries, the time from each POST's reply to the
receiver's receipt of its event (p50/p99/max), the most deliveries the receiver had in hand
at once, and the events not yet delivered when the POSTs stopped (the backlog). A webhook that
keeps up delivers at the POST rate with a small, steady latency; one that does not falls
behind by the difference, for as long as the load lasts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from catalog import percentile
from segments_write import prepare_objects, reuse, video_flow

# --- receiver process --------------------------------------------------------------------


async def receive(answer_s: float, flush_every_s: float = 0.05) -> None:
    """Print `port` once, then one line per POST: `<timerange of its flow> <flow id> <ns>`,
    and, when asked on stdin, `most <n>`: the most requests in hand at once."""
    lines: list[str] = []
    in_hand = most = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_hand, most
        received = time.monotonic_ns()
        in_hand += 1
        most = max(most, in_hand)
        try:
            event = (await request.json())["event"]
            lines.append(f"{event['segments'][0]['timerange']} {event['flow_id']} {received}")
            if answer_s:
                await asyncio.sleep(answer_s)
            return web.Response()
        finally:
            in_hand -= 1

    app = web.Application()
    app.router.add_post("/hook", handler)
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
            lines.clear()
        sys.stdout.write(f"most {most}\n")
        sys.stdout.flush()


class Receiver:
    def __init__(self, answer_ms: float) -> None:
        self.answer_ms = answer_ms
        self.receipts: dict[tuple[str, str], int] = {}
        self.most_at_once = 0
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--receive",
            "--answer-ms",
            str(self.answer_ms),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self.port = int(await self._process.stdout.readline())
        self._reader = asyncio.create_task(self._read())
        return f"http://127.0.0.1:{self.port}/hook"

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            first, second, *rest = line.decode().split()
            if first == "most":
                self.most_at_once = int(second)
            else:
                self.receipts.setdefault((second, first), int(rest[0]))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()


# --- load ----------------------------------------------------------------------------------


async def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def bench(
    url: str,
    headers: dict[str, str],
    flows: int,
    rate: float,
    seconds: float,
    answer_ms: float,
) -> None:
    receiver = Receiver(answer_ms)
    hook_url = await receiver.start()
    try:
        async with aiohttp.ClientSession(url, headers=headers) as http:
            objects = await prepare_objects(http, 50)
            flow_ids = []
            for _ in range(flows):
                flow = video_flow()
                async with http.put(f"/flows/{flow['id']}", json=flow) as resp:
                    assert resp.status == 201
                flow_ids.append(flow["id"])
            body = {"url": hook_url, "events": ["flows/segments_added"], "flow_ids": flow_ids}
            async with http.post("/service/webhooks", json=body) as resp:
                assert resp.status == 201, await resp.text()
                webhook_id = (await resp.json())["id"]

            async def started() -> bool:
                async with http.get(f"/service/webhooks/{webhook_id}") as resp:
                    return bool((await resp.json())["status"] == "started")

            deadline = time.monotonic() + 30
            while not await started():
                assert time.monotonic() < deadline, "the webhook did not start"
                await asyncio.sleep(0.1)

            replies: dict[tuple[str, str], int] = {}
            clients = 16

            async def client(index: int, first: int, total: int, began: float) -> None:
                for n in range(first + index, first + total, clients):
                    due = began + (n - first) / rate
                    if (wait := due - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    flow_id = flow_ids[n % flows]
                    segment = reuse(objects, n, n // flows)
                    async with http.post(f"/flows/{flow_id}/segments", json=segment) as resp:
                        await resp.read()
                        assert resp.status == 201, resp.status
                        replies[(flow_id, segment["timerange"])] = time.monotonic_ns()

            # A warm-up second, delivered, before the measured POSTs (the first events after
            # a registration may wait out the events reader's idle interval, up to 1 s).
            warm = int(rate)
            await asyncio.gather(*(client(i, 0, warm, time.monotonic()) for i in range(clients)))
            assert await wait_until(lambda: all(k in receiver.receipts for k in replies), 60)
            replies.clear()
            total = int(rate * seconds)
            began = time.monotonic()
            await asyncio.gather(*(client(i, warm, total, began) for i in range(clients)))
            posted_s = time.monotonic() - began
            backlog = sum(1 for key in replies if key not in receiver.receipts)
            caught_up = await wait_until(lambda: all(k in receiver.receipts for k in replies), 600)
            delivered_s = time.monotonic() - began
            latencies = sorted(
                (receiver.receipts[key] - replied) / 1e9
                for key, replied in replies.items()
                if key in receiver.receipts
            )
            print(
                f"POSTs: {len(replies)} in {posted_s:.1f} s ({len(replies) / posted_s:.0f}/s); "
                f"backlog when they stopped: {backlog} events",
                flush=True,
            )
            print(
                f"deliveries: {len(latencies)} in {delivered_s:.1f} s "
                f"({len(latencies) / delivered_s:.0f}/s){'' if caught_up else ', NOT all'}; "
                f"reply -> receipt p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
                f"max {latencies[-1] * 1000:.1f} ms; most in hand at once "
                f"{receiver.most_at_once}",
                flush=True,
            )
            async with http.delete(f"/service/webhooks/{webhook_id}") as resp:
                assert resp.status == 204
    finally:
        await receiver.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=16, help="deliveries per webhook")
    parser.add_argument("--answer-ms", type=float, default=2.0, help="receiver's answer time")
    parser.add_argument("--flows", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0, help="segment POSTs per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive:
        asyncio.run(receive(args.answer_ms / 1000))
        return 0

    from tams_stack.stack import Stack

    env = {"TAMS_WEBHOOKS_MAX_IN_FLIGHT_PER_WEBHOOK": str(args.in_flight)}
    stack = Stack(Path(tempfile.mkdtemp(prefix="tams-bench-")), extra_env=env)
    stack.start_infrastructure()
    try:
        asyncio.run(stack.start_services())
        print(
            f"one webhook, {args.flows} flows, {args.rate:g} POSTs/s for {args.seconds:g} s, "
            f"receiver answers in {args.answer_ms:g} ms, {args.in_flight} in flight per webhook",
            flush=True,
        )
        asyncio.run(
            bench(
                stack.gateway_url,
                stack.client_headers(),
                args.flows,
                args.rate,
                args.seconds,
                args.answer_ms,
            )
        )
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
