"""Print segments as they are added to TAMS flows, straight from the public event stream.

    uv run python examples/subscriber.py --bootstrap-servers ADDRESS [--flow-id ID] [--group G]

ADDRESS is the broker's: the "Kafka broker" line `./dev up` prints (127.0.0.1:9092 is the
default, for a Kafka of your own). `uv run` gives it the workspace's FastStream.

A FastStream subscriber on the events topic (docs/events.md, docs/asyncapi.json). Events
arrive at least once: a redelivered copy carries the same `event_id` header, so it is
dropped here. With `--group`, the consumer group remembers where it stopped and a restart
resumes there; without it, the subscriber starts at the end of the topic (or at the
beginning with `--from-beginning`) and keeps no position.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import OrderedDict
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage

from tams_runtime.event_stream import TamsEventMessage


class RecentIds:
    """The last few thousand event ids, to drop redelivered copies."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def build_app(args: argparse.Namespace) -> FastStream:
    # No access log on stdout: stdout is for the segments.
    broker = KafkaBroker(args.bootstrap_servers, logger=None)
    seen = RecentIds()

    @broker.subscriber(
        args.topic,
        group_id=args.group,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        fetch_max_wait_ms=50,
        # tansu (the local broker) holds each group join for half the session timeout.
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
    )
    async def on_event(body: dict[str, Any], msg: KafkaMessage) -> None:
        if not seen.first_time(msg.headers.get("event_id", "")):
            return
        event = TamsEventMessage.model_validate(body).root
        if event.event_type != "flows/segments_added":
            return
        flow_id = str(event.event.flow_id)
        if args.flow_id and flow_id != args.flow_id:
            return
        for segment in event.event.segments:
            print(f"{flow_id} {segment.timerange} {segment.object_id}", flush=True)

    app = FastStream(broker, logger=None)

    @app.after_startup
    async def ready() -> None:
        print(f"listening on {args.topic}", flush=True)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="tams.events")
    parser.add_argument("--flow-id", help="only this flow's segments")
    parser.add_argument("--group", help="consumer group (resume where it stopped)")
    parser.add_argument("--from-beginning", action="store_true")
    args = parser.parse_args()
    asyncio.run(build_app(args).run())


if __name__ == "__main__":
    main()
