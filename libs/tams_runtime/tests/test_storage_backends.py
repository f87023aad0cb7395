"""Storage backends come from TAMS_S3_* plus an optional JSON list of extra backends."""

from __future__ import annotations

import json

import pytest

from tams_runtime.settings import S3Settings
from tams_runtime.storage import StorageBackends

ARCHIVE = "8f0a4b1e-2c7d-4e55-9a61-3b2f9d0c7e11"


def test_the_default_backend_is_described_by_the_s3_settings() -> None:
    backends = StorageBackends.from_settings(S3Settings(bucket="media", storage_label="main"))
    (only,) = backends.all
    assert backends.default is only
    assert only.descriptor() == {
        "id": S3Settings().storage_id,
        "label": "main",
        "store_type": "http_object_store",
        "provider": "SeaweedFS",
        "store_product": "SeaweedFS",
        "region": "us-east-1",
        "default_storage": True,
    }


def test_extra_backends_inherit_what_they_leave_out() -> None:
    extra = [{"id": ARCHIVE, "label": "archive", "bucket": "tams-archive", "tags": {"t": "x"}}]
    settings = S3Settings(access_key="k", secret_key="s", extra_backends=json.dumps(extra))
    backends = StorageBackends.from_settings(settings)
    archive = backends.get(ARCHIVE)
    assert archive is not None and not archive.default_storage
    assert (archive.access_key, archive.endpoint_url) == ("k", settings.endpoint_url)
    assert backends.s3_settings(ARCHIVE).bucket == "tams-archive"
    assert archive.url_fields()["tags"] == {"t": "x"}
    assert backends.presigner(ARCHIVE).presign_get("k").split("?")[0].endswith("/tams-archive/k")


@pytest.mark.parametrize(
    "extra",
    [
        "not json",
        '{"id": "x"}',
        '[{"id": "x", "label": "l"}]',
        f'[{{"id": "{ARCHIVE}", "label": "local-s3", "bucket": "b"}}]',
        f'[{{"id": "{ARCHIVE}", "label": "a", "bucket": "b", "colour": "red"}}]',
    ],
)
def test_a_bad_backend_list_is_refused_at_start(extra: str) -> None:
    with pytest.raises(ValueError):
        StorageBackends.from_settings(S3Settings(extra_backends=extra))


def test_the_default_backend_takes_deploy_time_tags() -> None:
    tags = {"auth_classes": ["archive"], "site": "north"}
    backends = StorageBackends.from_settings(S3Settings(storage_tags=json.dumps(tags)))
    assert backends.all[0].descriptor()["tags"] == tags
    for bad in ("[]", '{"a": 1}', "nope"):
        with pytest.raises(ValueError):
            StorageBackends.from_settings(S3Settings(storage_tags=bad))
