"""The local presigner's URLs work against the real S3 server, without credentials."""

from __future__ import annotations

import aiohttp

from tams_runtime.s3 import Presigner, object_key, s3_client
from tams_runtime.settings import S3Settings
from tams_stack.stack import Stack


def settings_for(infra: Stack) -> S3Settings:
    return S3Settings(
        endpoint_url=infra.env["TAMS_S3_ENDPOINT_URL"],
        access_key=infra.env["TAMS_S3_ACCESS_KEY"],
        secret_key=infra.env["TAMS_S3_SECRET_KEY"],
    )


async def test_presigned_get_downloads_the_object_and_tampering_fails(tams_infra: Stack) -> None:
    settings = settings_for(tams_infra)
    key = object_key("5a1c0f5e-presign-test")
    body = b"media bytes \x00\x01" * 100
    async with s3_client(settings) as s3:
        await s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
    url = Presigner.from_settings(settings, min_valid_s=600).presign_get(key)
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == body
        async with http.get(url.replace(key, key + "x")) as resp:
            assert resp.status == 403
        async with http.get(url.split("?")[0]) as resp:
            assert resp.status == 403  # no anonymous access


async def test_presigned_urls_from_an_old_window_still_work(tams_infra: Stack) -> None:
    """A URL signed up to one window ago is valid for at least min_valid_s from now."""
    settings = settings_for(tams_infra)
    key = object_key("6b2d-window-test")
    async with s3_client(settings) as s3:
        await s3.put_object(Bucket=settings.bucket, Key=key, Body=b"x")
    import time

    url = Presigner.from_settings(settings, min_valid_s=600).presign_get(key, now=time.time() - 59)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200


async def test_presigned_put_accepts_only_its_content_type(tams_infra: Stack) -> None:
    settings = settings_for(tams_infra)
    key = object_key("7c3e-put-test")
    url = Presigner.from_settings(settings, min_valid_s=600).presign_put(key, "video/mp2t")
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=b"ts", headers={"Content-Type": "video/mp4"}) as resp:
            assert resp.status == 403
        async with http.put(url, data=b"ts bytes", headers={"Content-Type": "video/mp2t"}) as resp:
            assert resp.status == 200, await resp.text()
    async with s3_client(settings) as s3:
        head = await s3.head_object(Bucket=settings.bucket, Key=key)
    assert head["ContentType"] == "video/mp2t"
    assert head["ContentLength"] == len(b"ts bytes")
