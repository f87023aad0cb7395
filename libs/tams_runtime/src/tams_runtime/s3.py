"""S3 access: an aiobotocore client factory and a fast local SigV4 presigner.

A page of 100 segments needs 100 presigned GET URLs. botocore's presigner rebuilds the
request machinery for every URL (tens of microseconds to milliseconds each); a SigV4 query
signature is one SHA-256 and one HMAC once the day's signing key is known. So reads sign
locally with `Presigner`, and nothing on the read path talks to S3. URLs are signed for
one-minute windows: the date in the URL is the start of the window and the expiry covers the
window plus the promised validity, so every URL is valid for at least `min_valid_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from tams_runtime.metrics import S3_SECONDS
from tams_runtime.settings import PRESIGNED_WINDOW_S, S3Settings
from tams_runtime.tracing import tracer

_UNRESERVED = "-_.~"
WINDOW_S = PRESIGNED_WINDOW_S


def object_key(object_id: str) -> str:
    """Where an object's bytes live: independent of flow and time, so objects can be reused
    by any flow; sharded by the id's first characters to spread keys."""
    return f"objects/{object_id[:2]}/{object_id}"


def client_config() -> Any:
    from botocore.config import Config

    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        # Checksums only when an operation requires them: several S3 products (older VAST
        # releases among them) reject the newer default checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )


@asynccontextmanager
async def s3_client(settings: S3Settings, public: bool = False) -> AsyncIterator[Any]:
    """An aiobotocore S3 client; `public=True` signs for the client-facing endpoint."""
    from aiobotocore.session import get_session

    endpoint = settings.public_endpoint_url if public and settings.public_endpoint_url else None
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint or settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        config=client_config(),
    ) as client:
        yield client


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Presigner:
    """SigV4 query-string presigning of GET URLs for one endpoint, bucket and key pair."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str,
        min_valid_s: int,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.host = parts.netloc
        self.path_prefix = f"{parts.path.rstrip('/')}/{quote(bucket, safe=_UNRESERVED)}/"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.expires = min_valid_s + WINDOW_S
        if self.expires > 7 * 24 * 3600:
            raise ValueError("presigned URLs cannot be valid for more than 7 days")
        self._window = -1
        self._amz_date = ""
        self._scope = ""
        self._key = b""
        self._query_prefix = ""

    @classmethod
    def from_settings(cls, settings: S3Settings, min_valid_s: int) -> Presigner:
        return cls(
            settings.public_endpoint_url or settings.endpoint_url,
            settings.bucket,
            settings.access_key,
            settings.secret_key,
            settings.region,
            min_valid_s,
        )

    def _refresh(self, now: float) -> None:
        window = int(now) // WINDOW_S
        if window == self._window:
            return
        moment = datetime.fromtimestamp(window * WINDOW_S, UTC)
        day = moment.strftime("%Y%m%d")
        self._amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
        self._scope = f"{day}/{self.region}/s3/aws4_request"
        key = _hmac(f"AWS4{self.secret_key}".encode(), day)
        key = _hmac(key, self.region)
        key = _hmac(key, "s3")
        self._key = _hmac(key, "aws4_request")
        credential = quote(f"{self.access_key}/{self._scope}", safe=_UNRESERVED)
        self._query_prefix = (
            f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}"
            f"&X-Amz-Date={self._amz_date}&X-Amz-Expires={self.expires}"
            "&X-Amz-SignedHeaders=host"
        )
        self._window = window

    def presign_get(self, key: str, now: float | None = None) -> str:
        return self._presign("GET", key, None, now)

    def presign_put(self, key: str, content_type: str, now: float | None = None) -> str:
        """A PUT URL that only accepts this Content-Type (it is part of the signature)."""
        return self._presign("PUT", key, content_type, now)

    def _presign(self, method: str, key: str, content_type: str | None, now: float | None) -> str:
        self._refresh(time.time() if now is None else now)
        path = self.path_prefix + quote(key, safe="/" + _UNRESERVED)
        if content_type is None:
            signed, headers, query = "host", f"host:{self.host}\n", self._query_prefix
        else:
            signed = "content-type;host"
            headers = f"content-type:{content_type.strip()}\nhost:{self.host}\n"
            query = self._query_prefix.replace(
                "X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=content-type%3Bhost"
            )
        canonical = f"{method}\n{path}\n{query}\n{headers}\n{signed}\nUNSIGNED-PAYLOAD"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{self._amz_date}\n{self._scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self.base}{path}?{query}&X-Amz-Signature={signature}"


_STARTED = "tams_started"
_SPAN = "tams_span"
# The request the current task is waiting on (botocore's call context): a caller's deadline
# cancels the call before botocore's after-call hooks run, and `abandon_request` records it.
_IN_FLIGHT: ContextVar[tuple[str, dict[str, Any]] | None] = ContextVar("s3_in_flight", default=None)


# Set while `/ready` asks S3: measured, but not traced (a trace per probe every few seconds
# buried the traces of requests).
_PROBING: ContextVar[bool] = ContextVar("s3_probing", default=False)


def _finish(model_name: str, context: dict[str, Any], outcome: str, status: int | None) -> None:
    """The request's latency sample and the end of its span, once (the context keeps them)."""
    from opentelemetry.trace import Status, StatusCode

    in_flight = _IN_FLIGHT.get()
    if in_flight is not None and in_flight[1] is context:
        _IN_FLIGHT.set(None)
    started = context.pop(_STARTED, None)
    if started is not None:
        S3_SECONDS.labels(model_name, outcome).observe(time.perf_counter() - started)
    span = context.pop(_SPAN, None)
    if span is not None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if outcome in ("server_error", "unreachable"):
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


def abandon_request() -> None:
    """The current task gave up on its S3 request (its deadline passed): counted as
    `unreachable`, as botocore would have once its own timeouts and retries ran out."""
    in_flight = _IN_FLIGHT.get()
    if in_flight is not None:
        _finish(*in_flight, "unreachable", None)


def observe_requests(client: Any) -> None:
    """A span and a latency sample (`tams_s3_request_seconds`) for every request the client
    makes, retries included, through botocore's before-call / after-call events (and
    `abandon_request`, for a call its caller's deadline cut short)."""
    from opentelemetry.trace import SpanKind

    def before(model: Any, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.perf_counter()
        if not _PROBING.get():
            context[_SPAN] = tracer().start_span(
                f"S3 {model.name}",
                kind=SpanKind.CLIENT,
                attributes={
                    "rpc.system": "aws-api",
                    "rpc.service": "S3",
                    "rpc.method": model.name,
                },
            )
        _IN_FLIGHT.set((model.name, context))

    def after(http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        status = int(http_response.status_code)
        outcome = "ok" if status < 400 else "client_error" if status < 500 else "server_error"
        _finish(model.name, context, outcome, status)

    def failed(context: dict[str, Any], event_name: str, **_: Any) -> None:
        _finish(event_name.rsplit(".", 1)[-1], context, "unreachable", None)

    events = client.meta.events
    events.register("before-call.s3", before)
    events.register("after-call.s3", after)
    events.register("after-call-error.s3", failed)


class S3Client:
    """An aiobotocore client with the start/stop shape of a service component."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._context: Any = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Client.start() was not awaited")
        return self._client

    async def start(self) -> None:
        self._context = s3_client(self.settings)
        self._client = await self._context.__aenter__()
        observe_requests(self._client)

    async def stop(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
        self._context = self._client = None

    async def healthy(self) -> bool:
        probing = _PROBING.set(True)
        try:
            await self.client.head_bucket(Bucket=self.settings.bucket)
        except asyncio.CancelledError:
            abandon_request()  # the readiness deadline passed
            raise
        except Exception:
            return False
        finally:
            _PROBING.reset(probing)
        return True
