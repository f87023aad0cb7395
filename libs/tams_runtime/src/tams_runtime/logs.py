"""Structured JSON logs on stderr, one object per line, with credentials scrubbed.

Code never logs headers or query strings on purpose; the scrubbing is the second line of
defence for what slips into messages anyway (an HTTP client's error naming a URL with a token
or a presigned signature, a library echoing an `Authorization` header).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime

REDACTED = "[redacted]"
_SECRET_PARAMS = re.compile(
    r"(?i)\b(access_token|api_key_value|password|secret_key|access_key|token"
    r"|x-amz-signature|x-amz-credential|x-amz-security-token)=[^&\s\"'\\]+"
)
_AUTHORIZATION = re.compile(r"(?i)\b(basic|bearer) [A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"://[^/\s:@\"']+:[^/\s@\"']+@")


def scrub(text: str) -> str:
    """`text` with token-like query parameters, Authorization credentials and URL passwords
    replaced by `[redacted]`."""
    text = _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
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
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


def configure_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("TAMS_LOG_LEVEL", "INFO").upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
