"""One delivery attempt: an HTTP POST to a receiver, within the egress policy and limits.

* Only destinations the egress policy allows (tams_runtime.egress): the resolver of this
  client refuses internal addresses, literal addresses are checked before each request.
* Connect and total timeouts; redirects are not followed (a 3xx is a failed attempt: a
  redirect could point anywhere); the response body is read up to a size cap and the
  connection dropped beyond it.
* At most `max_concurrent_deliveries` requests in flight over all webhooks, so thousands of
  webhooks cannot exhaust sockets; each webhook has at most one (its queue is FIFO).
* Success is any 2xx. The result says why an attempt failed, in words fit for the webhook's
  `error` object, and never with the key value or the URL's query string.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from tams_runtime.egress import DestinationRefused, EgressPolicy, GuardedResolver
from tams_runtime.settings import WebhookSettings

USER_AGENT = "tams-webhooks/1"


@dataclass(frozen=True)
class Attempt:
    ok: bool
    summary: str
    # True when trying again cannot help (the destination is refused by policy).
    permanent: bool = False


class Sender:
    def __init__(self, settings: WebhookSettings, policy: EgressPolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.limit = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy), limit=0, ttl_dns_cache=10
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.settings.timeout_s, sock_connect=self.settings.connect_timeout_s
            ),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,  # no proxies from the environment: the policy decides
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        assert self._session is not None, "Sender.start() was not awaited"
        try:
            self.policy.check_url(url)
        except DestinationRefused as exc:
            return Attempt(False, f"destination refused: {exc}", permanent=True)
        async with self.limit:
            try:
                async with self._session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await self._drain(response)
                    if 200 <= response.status < 300:
                        return Attempt(True, f"HTTP {response.status}")
                    return Attempt(False, f"the receiver answered HTTP {response.status}")
            except TimeoutError:
                return Attempt(
                    False, f"no complete answer within {self.settings.timeout_s:g} s (timeout)"
                )
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, DestinationRefused):
                    return Attempt(False, f"destination refused: {exc.os_error}", permanent=True)
                return Attempt(False, f"could not connect: {exc.os_error}")
            except (aiohttp.ClientError, OSError) as exc:
                return Attempt(False, f"request failed: {type(exc).__name__}: {exc}")

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Read the answer (so the connection can be reused) up to the size cap."""
        budget = self.settings.max_response_bytes
        while True:
            chunk = await response.content.readany()
            if not chunk:
                return
            budget -= len(chunk)
            if budget < 0:
                response.close()  # too big: do not read on, do not reuse the connection
                return
