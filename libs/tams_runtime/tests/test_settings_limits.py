"""Settings whose documented limits the code enforces, so a wrong deployment fails at start
with a message naming the variable, not later with expired URLs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from tams_runtime.settings import (
    HttpSettings,
    KafkaSettings,
    MediaSettings,
    S3Settings,
    WebhookSettings,
    check_presigned_url_timeout,
)


def test_a_presigned_url_lasts_at_least_30_seconds() -> None:
    with pytest.raises(ValidationError, match="presigned_url_timeout_s"):
        S3Settings(presigned_url_timeout_s=29)
    assert S3Settings(presigned_url_timeout_s=30).presigned_url_timeout_s == 30


def test_a_presigned_url_may_not_outlive_the_objects_allocation() -> None:
    media = MediaSettings(min_object_timeout_s=600, object_gc_grace_s=60)
    check_presigned_url_timeout(S3Settings(presigned_url_timeout_s=600), media)
    with pytest.raises(ValueError, match="TAMS_S3_PRESIGNED_URL_TIMEOUT_S \\(601\\)"):
        check_presigned_url_timeout(S3Settings(presigned_url_timeout_s=601), media)
    # A URL lives up to a minute past its timeout: the collector's grace must cover that.
    no_grace = MediaSettings(min_object_timeout_s=600, object_gc_grace_s=59)
    with pytest.raises(ValueError, match="TAMS_MEDIA_OBJECT_GC_GRACE_S"):
        check_presigned_url_timeout(S3Settings(presigned_url_timeout_s=600), no_grace)
    check_presigned_url_timeout(S3Settings(presigned_url_timeout_s=540), no_grace)


@pytest.mark.parametrize(
    ("settings", "value"),
    [
        (KafkaSettings, {"reply_timeout_s": -1}),
        (KafkaSettings, {"max_poll_records": 0}),
        (KafkaSettings, {"session_timeout_ms": -5}),
        (KafkaSettings, {"session_timeout_ms": 2000, "heartbeat_interval_ms": 2000}),
        (HttpSettings, {"ready_timeout_s": 0}),
        (HttpSettings, {"port": 70000}),
        (WebhookSettings, {"timeout_s": -1}),
        (WebhookSettings, {"connect_timeout_s": 0}),
    ],
)
def test_values_that_cannot_work_are_refused_at_start(
    settings: type[BaseSettings], value: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        settings(**value)
