"""Signed deliveries follow the Standard Webhooks scheme, so any of its libraries verifies them."""

from __future__ import annotations

from tams_webhooks.signing import signature_headers, signing_key


def test_the_standard_webhooks_test_vector() -> None:
    """The specification's published example: secret, message id, timestamp, body, signature."""
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = signature_headers(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", b'{"test": 2432232314}', now=1614265330
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_each_attempt_signs_its_own_time() -> None:
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    first = signature_headers(key, "e1", b"{}", now=1_000)
    retry = signature_headers(key, "e1", b"{}", now=1_060)
    assert first["webhook-id"] == retry["webhook-id"] == "e1"
    assert first["webhook-signature"] != retry["webhook-signature"]
