"""Webhook delivery end to end: real receivers on loopback, real broker, store and services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from tams_stack.testing import SpecValidator

from .helpers import put_flow, video_flow
from .receivers import Webhooks, receiving


@pytest_asyncio.fixture
async def hooks(http: aiohttp.ClientSession) -> AsyncIterator[Webhooks]:
    webhooks = Webhooks(http)
    yield webhooks
    await webhooks.delete_all()


async def test_flow_created_is_delivered(
    http: aiohttp.ClientSession, hooks: Webhooks, spec: SpecValidator
) -> None:
    async with receiving() as receiver:
        flow = video_flow()
        await hooks.register(
            receiver.url,
            ["flows/created"],
            source_ids=[flow["source_id"]],
            api_key_name="X-Api-Key",
            api_key_value="s3cret",
        )
        await put_flow(http, flow)
        (got,) = await receiver.wait_for(1)
    assert got.event_type == "flows/created"
    assert got.headers["X-Api-Key"] == "s3cret"
    spec.validate(got.event["flow"], "flow-get.json")
