"""The segments service while S3 does not answer: a registration that needs S3 to confirm an
upload gets a quick 503 saying so, and everything else goes on (the service applies a
partition's commands in order, so one unanswered HEAD must not hold the rest)."""

from __future__ import annotations

import aiohttp

from tams_stack.stack import Stack

from .helpers import allocate_and_upload, post, put_flow, video_flow
from .standalone import standalone
from .test_observability import TcpProxy


async def test_a_registration_s3_cannot_confirm_gets_a_quick_503_and_others_go_on(
    tams_stack: Stack, admin_headers: dict[str, str]
) -> None:
    proxy = TcpProxy(tams_stack.env["TAMS_S3_ENDPOINT_URL"])
    await proxy.start()
    env = {"TAMS_S3_ENDPOINT_URL": proxy.url}
    try:
        async with (
            standalone(tams_stack, ("catalog", "segments", "gateway"), env) as stack,
            aiohttp.ClientSession(base_url=stack.gateway_url, headers=admin_headers) as http,
        ):
            first, second = video_flow(), video_flow()
            for flow in (first, second):
                await put_flow(http, flow)
            registered, pending = await allocate_and_upload(
                http, first["id"], [b"registered" * 100, b"uploaded, not registered" * 100]
            )
            status, body = await post(
                http, first["id"], {"object_id": registered, "timerange": "[0:0_1:0)"}
            )
            assert status == 201, body

            await proxy.stop()  # S3 now refuses connections
            async with http.post(
                f"/flows/{first['id']}/segments",
                json={"object_id": pending, "timerange": "[1:0_2:0)"},
            ) as resp:
                # A 503 from the service, not the gateway's 504 at its 10 s reply deadline.
                assert resp.status == 503, await resp.text()
                error = await resp.json()
                assert resp.headers["Retry-After"] == "5"
            assert error["type"] == "ServiceUnavailable"
            assert pending in error["summary"] and "try again" in error["summary"]
            # A reuse of a registered object needs no S3: it is applied meanwhile.
            status, body = await post(
                http, second["id"], {"object_id": registered, "timerange": "[0:0_1:0)"}
            )
            assert status == 201, body
            async with http.get(f"/flows/{first['id']}/segments") as resp:
                assert [s["object_id"] for s in await resp.json()] == [registered]

            await proxy.start()
            status, body = await post(
                http, first["id"], {"object_id": pending, "timerange": "[1:0_2:0)"}
            )
            assert status == 201, body
    finally:
        await proxy.stop()
