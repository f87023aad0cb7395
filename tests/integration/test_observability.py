"""Metrics on every service, the deploy files that use them, and /ready naming what fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tams_stack.stack import Stack

from .helpers import put_flow, video_flow
from .standalone import standalone
from .test_analytics import ingest

ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> tuple[str, Samples, set[str]]:
    """The /metrics text, its samples by (name, labels), and its metric family names."""
    async with aiohttp.ClientSession() as client, client.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples, families


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.1)


async def test_every_service_exposes_fed_metrics_with_bounded_labels(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    segments_url = tams_stack.services["segments"].url
    _, before, _ = await scrape(segments_url)
    flow = video_flow()
    await put_flow(http, flow)
    await ingest(http, flow, [0, 1, 2], size=4096)
    for path in (f"/flows/{flow['id']}", f"/analytics/flow-usage?flow_id={flow['id']}"):
        async with http.get(path) as resp:
            assert resp.status == 200

    scraped = {name: await scrape(s.url) for name, s in tams_stack.services.items()}
    for name, (text, _, families) in scraped.items():
        assert not UUID.search(text), f"{name} exposes an id as a label value"
        assert "tams_http_request_seconds" in families, name

    gateway = scraped["gateway"][1]
    assert total(gateway, "tams_http_request_seconds_count", route="/flows/{flow_id}") >= 1
    assert total(gateway, "tams_command_round_trip_seconds_count", command="segments.add") >= 1
    assert total(gateway, "tams_store_transaction_seconds_count", operation="read") >= 1
    for service in ("catalog", "segments"):
        samples = scraped[service][1]
        assert total(samples, "tams_command_stage_seconds_count", stage="apply") >= 1
        assert total(samples, "tams_command_queue_seconds_count") >= 1
        assert total(samples, "tams_store_transaction_seconds_count", operation="write") >= 1

        async def lag_measured(service: str = service) -> bool:
            _, samples, _ = await scrape(tams_stack.services[service].url)
            groups = {dict(ls)["group"] for n, ls in samples if n == "tams_consumer_lag_messages"}
            return groups == {f"tams-{service}"}

        await eventually(lag_measured)

    # The series the alerts watch exist before anything fails: a lone failure is seen.
    for service in ("catalog", "segments", "webhooks"):
        samples = scraped[service][1]
        failed = [ls for n, ls in samples if n == "tams_commands_applied_total"]
        assert any(("status", "5xx") in ls for ls in failed), service
        assert any(n == "tams_command_batch_retries_total" for n, _ in samples), service

    # Exactly what this test registered: 3 segments of 4096 bytes, each object HEADed once.
    segments = scraped["segments"][1]
    registered = total(segments, "tams_segments_registered_total")
    assert registered - total(before, "tams_segments_registered_total") == 3
    new_bytes = total(segments, "tams_object_bytes_registered_total")
    assert new_bytes - total(before, "tams_object_bytes_registered_total") == 3 * 4096
    heads = {"operation": "HeadObject", "outcome": "ok"}
    head_ok = total(segments, "tams_s3_request_seconds_count", **heads)
    assert head_ok - total(before, "tams_s3_request_seconds_count", **heads) == 3

    analytics_url = tams_stack.services["analytics"].url
    served = total(
        scraped["analytics"][1], "tams_http_request_seconds_count", route="/analytics/flow-usage"
    )
    assert served >= 1

    async def gauges_caught_up() -> bool:
        _, samples, _ = await scrape(analytics_url)
        usage = await (await http.get("/analytics/catalog-summary")).json()
        flows = total(samples, "tams_catalog_flows")
        stored = total(samples, "tams_stored_segments")
        return flows == usage["flows"]["count"] and stored == usage["usage"]["segments"]

    await eventually(gauges_caught_up)


def promql_metric_names(expr: str) -> set[str]:
    # Grafana's variables are not PromQL: give them values the parser accepts.
    expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*")
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def family_of(sample_name: str, families: set[str]) -> str | None:
    for suffix in ("", "_bucket", "_sum", "_count", "_total", "_created"):
        if sample_name.endswith(suffix):
            base = sample_name[: len(sample_name) - len(suffix)] if suffix else sample_name
            if base in families:
                return base
    return None


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/tams-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


async def test_a_bad_request_found_in_a_transaction_is_not_a_store_error(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    gateway_url = tams_stack.services["gateway"].url
    flow = video_flow()
    await put_flow(http, flow)
    _, before, _ = await scrape(gateway_url)
    # A page key the store did not issue: the store reads fine, the request is refused.
    async with http.get(f"/flows/{flow['id']}/segments?page=garbage") as resp:
        assert resp.status == 400
    _, after, _ = await scrape(gateway_url)

    def change(outcome: str) -> float:
        labels = {"operation": "read", "outcome": outcome}
        name = "tams_store_transaction_seconds_count"
        return total(after, name, **labels) - total(before, name, **labels)

    assert change("refused") == 1
    assert change("error") == 0


async def test_a_refused_request_is_logged_with_its_correlation_id_and_reason(
    http: aiohttp.ClientSession, tams_stack: Stack
) -> None:
    flow = video_flow()
    await put_flow(http, flow)
    headers = {"X-Correlation-Id": "refused-write-17"}
    segment = {"object_id": "5f3c7f0e-1111-4a2b-8c3d-00000000abcd", "timerange": "[0:0_1:0)"}
    async with http.post(
        f"/flows/{flow['id']}/segments?secret=x", json=segment, headers=headers
    ) as resp:
        assert resp.status == 400
        summary = (await resp.json())["summary"]
    log_path = tams_stack.services["gateway"].process.log_path

    def logged() -> list[dict[str, Any]]:
        return [
            entry
            for entry in map(json.loads, log_path.read_text().splitlines())
            if entry.get("correlation_id") == "refused-write-17"
        ]

    async def found() -> bool:
        return bool(logged())

    await eventually(found)
    (line,) = logged()
    assert line["level"] == "info"
    assert line["message"] == "request answered with an error"
    assert (line["method"], line["route"], line["status"]) == (
        "POST",
        "/flows/{flow_id}/segments",
        400,
    )
    assert line["summary"] == summary
    assert line["path"] == f"/flows/{flow['id']}/segments"  # never the query string
    assert "secret" not in json.dumps(line)


async def test_dashboard_and_alerts_use_only_metrics_the_services_expose(
    tams_stack: Stack,
) -> None:
    families: set[str] = set()
    for service in tams_stack.services.values():
        families |= (await scrape(service.url))[2]
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    used = set().union(*(promql_metric_names(e) for e in exprs)) - {"up"}
    unknown = sorted(name for name in used if family_of(name, families) is None)
    assert not unknown, f"referenced but exposed by no service: {unknown}"


def test_every_alert_is_documented_with_what_to_do() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert f"### {rule['alert']}" in operations, f"{rule['alert']} is not in operations.md"


class TcpProxy:
    """A TCP forwarder to the S3 server that the test can take away and bring back, or
    make hang (`holding`: connections are taken but never answered)."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.holding = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.close()
        await self._server.wait_closed()

    def hold(self, holding: bool) -> None:
        """Hang (`True`: the open connections close, new ones are never answered) or forward
        again."""
        self.holding = holding
        if holding:
            for writer in list(self._open):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.holding:
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open -= {writer, up_writer}


async def test_ready_turns_503_naming_s3_when_s3_goes_away(tams_stack: Stack) -> None:
    proxy = TcpProxy(tams_stack.env["TAMS_S3_ENDPOINT_URL"])
    await proxy.start()
    env = {"TAMS_S3_ENDPOINT_URL": proxy.url, "TAMS_HTTP_READY_TIMEOUT_S": "1"}
    async with (
        standalone(tams_stack, ("segments",), env) as stack,
        aiohttp.ClientSession() as client,
    ):
        url = stack.services["segments"].url

        async def ready() -> tuple[int, dict[str, Any]]:
            async with client.get(f"{url}/ready") as resp:
                return resp.status, await resp.json()

        status, body = await ready()
        assert status == 200
        assert body["checks"] == {"store": "ok", "broker": "ok", "commands": "ok", "s3": "ok"}

        await proxy.stop()
        status, body = await ready()
        assert status == 503
        assert body["failing"] == ["s3"] and body["checks"]["s3"] in ("failing", "timeout")
        assert body["checks"]["store"] == body["checks"]["broker"] == "ok"
        async with client.get(f"{url}/health") as resp:
            assert resp.status == 200  # alive, just not ready

        await proxy.start()

        async def ready_again() -> bool:
            return (await ready())[0] == 200

        await eventually(ready_again)
    await proxy.stop()


async def test_an_s3_that_hangs_fails_readiness_and_counts_as_unreachable(
    tams_stack: Stack,
) -> None:
    """A server that takes the connection and never answers: the readiness deadline cuts the
    request short before botocore's own timeouts would, and the request is still counted
    (the S3 alert watches `unreachable`)."""
    proxy = TcpProxy(tams_stack.env["TAMS_S3_ENDPOINT_URL"])
    await proxy.start()
    env = {"TAMS_S3_ENDPOINT_URL": proxy.url, "TAMS_HTTP_READY_TIMEOUT_S": "1"}
    unreachable = {"operation": "HeadBucket", "outcome": "unreachable"}
    try:
        async with (
            standalone(tams_stack, ("segments",), env) as stack,
            aiohttp.ClientSession() as client,
        ):
            url = stack.services["segments"].url
            _, before, _ = await scrape(url)
            proxy.hold(True)
            async with client.get(f"{url}/ready") as resp:
                assert resp.status == 503
                assert (await resp.json())["checks"]["s3"] == "timeout"

            async def counted() -> bool:
                _, samples, _ = await scrape(url)
                return total(samples, "tams_s3_request_seconds_count", **unreachable) > total(
                    before, "tams_s3_request_seconds_count", **unreachable
                )

            await eventually(counted)
            proxy.hold(False)

            async def ready_again() -> bool:
                async with client.get(f"{url}/ready") as resp:
                    return resp.status == 200

            await eventually(ready_again)
    finally:
        await proxy.stop()


async def test_ready_turns_503_naming_commands_while_the_store_refuses_writes(
    tams_stack: Stack,
) -> None:
    """Reads still work, so the store check passes; the catalog's command consumer is stuck
    retrying the batch that cannot be written, and /ready says so until the write goes in."""
    env = {"TAMS_HTTP_READY_TIMEOUT_S": "1"}
    async with (
        standalone(tams_stack, ("catalog", "gateway"), env) as stack,
        aiohttp.ClientSession(headers=tams_stack.client_headers()) as client,
    ):
        catalog, gateway = stack.services["catalog"].url, stack.services["gateway"].url

        async def ready() -> tuple[int, dict[str, Any]]:
            async with client.get(f"{catalog}/ready") as resp:
                return resp.status, await resp.json()

        # Another connection holds the write lock: the catalog's write fails once its busy
        # timeout (10 s) runs out, and is retried.
        blocker = sqlite3.connect(Path(stack.env["TAMS_DATA_DIR"]) / "tams.db")
        blocker.isolation_level = None
        blocker.execute("BEGIN IMMEDIATE")
        flow = video_flow()
        put = asyncio.create_task(client.put(f"{gateway}/flows/{flow['id']}", json=flow))
        try:

            async def stuck() -> bool:
                status, body = await ready()
                return status == 503 and body["failing"] == ["commands"]

            await eventually(stuck, timeout=30)
            assert (await ready())[1]["checks"]["store"] == "ok"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        async def ready_again() -> bool:
            return (await ready())[0] == 200

        await eventually(ready_again)
        (await put).release()
        async with client.get(f"{gateway}/flows/{flow['id']}") as resp:
            assert resp.status == 200  # applied once the lock was gone
