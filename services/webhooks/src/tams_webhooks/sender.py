"""One delivery attempt: an HTTP POST to a receiver, within the egress policy and limits.

The POST itself is made by `http1.Http1Client` (a lean keep-alive HTTP/1.1 client: a fan-out
to every webhook makes CPU per request the latency that matters).

* Only destinations the egress policy allows (tams_runtime.egress): the resolver of this
  client refuses internal addresses, literal addresses are checked before each request.
* Connect and total timeouts; redirects are not followed (a 3xx is a failed attempt: a
  redirect could point anywhere); the response body is read up to a size cap and the
  connection dropped beyond it.
* At most `max_concurrent_deliveries` requests in flight over all webhooks, so thousands of
  webhooks cannot exhaust sockets; each webhook has at most `max_in_flight_per_webhook`
  (each about another flow or source: one flow's events go one at a time). Retries,
  and first attempts to a destination (scheme, host, port) whose last attempt failed, take
  their slot from a second pool of the same size: receivers that hang or fail hold up one
  another, never the healthy ones. Else 128 webhooks pointing at receivers that never answer
  held every slot for their whole timeout, attempt after attempt, and delayed every other
  webhook's deliveries by seconds.
* Success is any 2xx. The result says why an attempt failed, in words fit for the webhook's
  `error` object, and never with the key value or the URL's query string.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from yarl import URL

from tams_runtime.egress import DestinationRefused, EgressPolicy, GuardedResolver
from tams_runtime.settings import WebhookSettings
from tams_webhooks.http1 import ConnectFailed, Http1Client, ProtocolError

USER_AGENT = "tams-webhooks/1"
# Checked URLs remembered (a webhook's URL is checked once, not on every delivery).
URL_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Attempt:
    ok: bool
    summary: str
    # True when trying again cannot help (the destination is refused by policy).
    permanent: bool = False
    # Not sent: the webhook's configuration changed while the attempt waited for a slot.
    superseded: bool = False
    # The receiver's `Retry-After` (a 429 or 503), in seconds.
    retry_after_s: float | None = None


class Sender:
    def __init__(
        self,
        settings: WebhookSettings,
        policy: EgressPolicy,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.ssl_context = ssl_context
        self.limit = asyncio.Semaphore(settings.max_concurrent_deliveries)
        self.failing_limit = asyncio.Semaphore(settings.max_concurrent_deliveries)
        # Destinations whose last attempt failed (bounded like the URL cache).
        self._failing: set[tuple[str, str | None, int | None]] = set()
        self._client: Http1Client | None = None
        self._checked: dict[str, URL | DestinationRefused] = {}

    async def start(self) -> None:
        self._client = Http1Client(
            GuardedResolver(self.policy),
            connect_timeout_s=self.settings.connect_timeout_s,
            max_body=self.settings.max_response_bytes,
            ssl_context=self.ssl_context,
            idle_per_host=self.settings.max_concurrent_deliveries,
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        retry: bool = False,
        current: Callable[[], bool] | None = None,
    ) -> Attempt:
        """One attempt; `retry` when an earlier attempt of the same delivery failed. With
        `current`, checked once a slot is free: False means the request was made for a
        configuration that has been replaced meanwhile, and it is not sent (superseded)."""
        checked = self._check(url)
        if isinstance(checked, DestinationRefused):
            return Attempt(False, f"destination refused: {checked}", permanent=True)
        destination = (checked.scheme, checked.host, checked.port)
        failing = retry or destination in self._failing
        async with self.failing_limit if failing else self.limit:
            if current is not None and not current():
                return Attempt(False, "superseded by a new configuration", superseded=True)
            result = await self._post(checked, body, headers)
        if result.ok:
            self._failing.discard(destination)
        else:
            if len(self._failing) >= URL_CACHE_SIZE:
                self._failing.clear()
            self._failing.add(destination)
        return result

    async def _post(self, checked: URL, body: bytes, headers: dict[str, str]) -> Attempt:
        assert self._client is not None, "Sender.start() was not awaited"
        all_headers = {"User-Agent": USER_AGENT, **headers}
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                answer = await self._client.post(checked, body, all_headers)
        except TimeoutError:
            return Attempt(
                False, f"no complete answer within {self.settings.timeout_s:g} s (timeout)"
            )
        except DestinationRefused as exc:
            return Attempt(False, f"destination refused: {exc}", permanent=True)
        except UnicodeEncodeError:
            return Attempt(False, "a header value is not ISO-8859-1 text", permanent=True)
        except ConnectFailed as exc:
            return Attempt(False, f"could not connect: {exc}")
        except ProtocolError as exc:
            return Attempt(False, f"the receiver's answer is not valid HTTP: {exc}")
        except OSError as exc:
            return Attempt(False, f"request failed: {type(exc).__name__}: {exc}")
        if 200 <= answer.status < 300:
            return Attempt(True, f"HTTP {answer.status}")
        if answer.retry_after_s is not None:
            return Attempt(
                False,
                f"the receiver answered HTTP {answer.status}, "
                f"Retry-After {answer.retry_after_s:g} s",
                retry_after_s=answer.retry_after_s,
            )
        return Attempt(False, f"the receiver answered HTTP {answer.status}")

    def _check(self, url: str) -> URL | DestinationRefused:
        """The URL parsed and checked against the policy (host names: at connect time)."""
        checked = self._checked.get(url)
        if checked is None:
            try:
                checked = self.policy.check_url(url)
            except DestinationRefused as exc:
                checked = exc
            if len(self._checked) >= URL_CACHE_SIZE:
                self._checked.clear()
            self._checked[url] = checked
        return checked
