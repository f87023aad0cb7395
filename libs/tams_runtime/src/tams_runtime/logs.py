"""Structured JSON logs on stderr, one object per line, with credentials scrubbed.

Every line logged while a request or a command is handled carries `trace_id` and `span_id`
(the current OpenTelemetry span) and `correlation_id` (the command's correlation id, which
the gateway also returns as `X-Correlation-Id`), so one grep follows a write from the
gateway through Kafka to the service that applied it.

Code never logs headers or query strings on purpose; the scrubbing is the second line of
defence for what slips into messages anyway (an HTTP client's error naming a URL with a token
or a presigned signature, a library echoing an `Authorization` header).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

from aiohttp.http_exceptions import BadHttpMessage
from opentelemetry import trace

CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)


@contextlib.contextmanager
def correlated(correlation_id: str | None) -> Iterator[None]:
    """Log lines inside carry this correlation id."""
    token = CORRELATION_ID.set(correlation_id)
    try:
        yield
    finally:
        CORRELATION_ID.reset(token)


REDACTED = "[redacted]"
_SECRET_PARAMS = re.compile(
    r"(?i)\b(access_token|api_key_value|password|secret_key|access_key|token"
    r"|x-amz-signature|x-amz-credential|x-amz-security-token)=[^&\s\"'\\]+"
)
# Secret names (`client_secret`, `refresh_token`, `X-Amz-Security-Token` too) with a
# quoted value, as a dict or JSON prints them: `'password': 'x'`, `"api_key_value": "x"`,
# `token='x'`; the value runs to its closing quote past escaped ones, or to the end of a cut
# line.
_SECRET_NAME = (
    r"(?:[\w-]*[_-])?"
    r"(?:access_token|api_key_value|api_key|password|secret_key|secret|access_key|token)"
)
_SECRET_QUOTED = re.compile(
    rf"""(?i)(["']?)\b({_SECRET_NAME})\1(\s*[:=]\s*)(["'])(?:\\.|(?!\4)[^\\\n])*(?:\4|$)""",
    re.M,
)
_AUTHORIZATION = re.compile(r"(?i)\b(basic|bearer) [A-Za-z0-9._~+/=-]{8,}")
# SigV4 `Authorization` header parts (what an S3 client logs at DEBUG).
_SIGV4 = re.compile(r"(?i)\b(signature|credential)=[^,\s\"'\\]+")
_USERINFO = re.compile(r"://[^/\s:@\"']+:[^/\s@\"']+@")


def scrub(text: str) -> str:
    """`text` with token-like query parameters, Authorization credentials and URL passwords
    replaced by `[redacted]`."""
    text = _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _SECRET_QUOTED.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{REDACTED}{m.group(4)}"
        ),
        text,
    )
    text = _AUTHORIZATION.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SIGV4.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _USERINFO.sub(f"://{REDACTED}@", text)


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        correlation_id = CORRELATION_ID.get()
        if correlation_id is not None:
            entry["correlation_id"] = correlation_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


# Libraries whose DEBUG lines hold what must not be logged (an S3 client's string to sign
# and request signatures): INFO at most, whatever TAMS_LOG_LEVEL says.
CAPPED_AT_INFO = ("botocore", "aiobotocore", "s3transfer", "urllib3")


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse (a bad method, an over-long header) as an error
    with a traceback that quotes the request. Any client can send those: they are logged at
    info, with the reason only, as other 4xx answers are."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, BadHttpMessage) or not 400 <= error.code < 500:
            return True
        # Logged at error, so it passed the level check already: make it again at info.
        if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
            return False
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg = "malformed HTTP request answered %s (%s)"
        record.args = (error.code, type(error).__name__)
        record.exc_info = record.exc_text = None
        return True


def configure_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("TAMS_LOG_LEVEL", "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        logging.getLogger(__name__).critical(
            "TAMS_LOG_LEVEL is not a log level", extra={"value": level}
        )
        raise SystemExit(2)
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    for name in CAPPED_AT_INFO:
        if logging.getLogger(name).getEffectiveLevel() < logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequests())
