"""Log lines never carry credentials, whatever slips into a message."""

from __future__ import annotations

import json
import logging
import sys

from tams_runtime.logs import JsonFormatter, scrub


def test_tokens_signatures_and_passwords_are_scrubbed() -> None:
    line = scrub(
        "GET https://user:hunter2@cdn.example.com/a.ts?access_token=eyJabc.def.ghi&x=1 failed; "
        "presigned ?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abcdef0123 "
        "headers {'Authorization': 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig'} "
        "Authorization: Basic YWRtaW46cGFzc3dvcmQ="
    )
    for secret in ("hunter2", "eyJabc", "AKIA", "abcdef0123", "eyJhbGci", "YWRtaW46"):
        assert secret not in line, secret
    assert "x=1" in line and "cdn.example.com/a.ts" in line


def test_the_formatter_scrubs_messages_extras_and_tracebacks() -> None:
    formatter = JsonFormatter("test")
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "msg %s", ("Bearer abcdefghijk",), None)
    try:
        raise ValueError("bad url https://h/?access_token=sekrit")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.url = "https://h/?X-Amz-Signature=deadbeef"
    line = formatter.format(record)
    assert "sekrit" not in line and "abcdefghijk" not in line and "deadbeef" not in line
    assert json.loads(line)["service"] == "test"
