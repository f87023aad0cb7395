"""Log lines never carry credentials, whatever slips into a message."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import LineTooLong

from tams_runtime.logs import CAPPED_AT_INFO, JsonFormatter, configure_logging, scrub


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


def test_quoted_secrets_are_scrubbed_as_a_dict_or_json_prints_them() -> None:
    line = scrub(
        """{'password': 'hunter2', "api_key_value": "k3y", 'label': 'x'} token='t0k'"""
        """ access_token = "a1" password:'p4ss' """
        '"password": "it\'s-a-s3cret"'
    )
    for secret in ("hunter2", "k3y", "t0k", "a1", "p4ss", "s3cret"):
        assert secret not in line, (secret, line)
    assert "'label': 'x'" in line and "'password': '[redacted]'" in line
    # Escaped quotes, other names a secret goes by, a line cut short; counts stay.
    others = scrub(
        json.dumps({"password": 'ab"cd-SECRET1', "refresh_token": "SECRET2", "token_count": 5})
        + str({"X-Amz-Security-Token": "SECRET3", "client_secret": "SECRET4"})
        + " password='SECRET5 and the line was cut"
    )
    for n in range(1, 6):
        assert f"SECRET{n}" not in others, (n, others)
    assert '"token_count": 5' in others


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


def test_an_s3_clients_signing_lines_are_scrubbed() -> None:
    line = scrub(
        "{'Authorization': b'AWS4-HMAC-SHA256 Credential=tams-local/20261126/us-east-1/s3/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=36b947aa01'}"
    )
    assert "tams-local" not in line and "36b947aa01" not in line
    assert "SignedHeaders=host" in line


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """`configure_logging` changes process-wide state: put it back for the other tests."""
    root = logging.getLogger()
    names = ("aiokafka", "aiohttp.server", *CAPPED_AT_INFO)
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    filters = logging.getLogger("aiohttp.server").filters[:]
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger("aiohttp.server").filters[:] = filters


def malformed_request_logged() -> None:
    try:
        raise LineTooLong("Bearer sekrit-token-start", 8190)
    except LineTooLong:
        logging.getLogger("aiohttp.server").exception("Error handling request")


@pytest.mark.usefixtures("logging_restored")
def test_s3_client_debug_lines_are_off_and_malformed_requests_are_info(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAMS_LOG_LEVEL", "DEBUG")
    configure_logging("test")
    assert not logging.getLogger("botocore.auth").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("tams_runtime").isEnabledFor(logging.DEBUG)
    malformed_request_logged()
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "info" and "exception" not in entry, entry
    assert entry["message"] == "malformed HTTP request answered 400 (LineTooLong)"
    assert "sekrit" not in line


@pytest.mark.usefixtures("logging_restored")
def test_malformed_requests_follow_the_log_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAMS_LOG_LEVEL", "WARNING")
    configure_logging("test")
    malformed_request_logged()
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("logging_restored")
def test_a_bad_log_level_stops_the_service_with_a_json_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAMS_LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit) as stopped:
        configure_logging("test")
    assert stopped.value.code == 2
    assert json.loads(capsys.readouterr().err)["value"] == "LOUD"
