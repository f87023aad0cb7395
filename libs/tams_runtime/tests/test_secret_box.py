"""Sealing webhook key values: encrypted when keys are configured, readable across rotations."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from tams_runtime.secret_box import SecretBox, SecretUnavailable
from tams_runtime.settings import WebhookSettings


def test_without_keys_values_are_kept_as_given() -> None:
    box = SecretBox([])
    assert not box.encrypting
    assert box.seal("Bearer x") == "plain:Bearer x"
    assert box.open("plain:Bearer x") == "Bearer x"


def test_with_keys_values_are_encrypted_and_survive_a_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox([old]).seal("Bearer x")
    assert sealed.startswith("fernet:") and "Bearer" not in sealed
    rotated = SecretBox.from_settings(WebhookSettings(secret_keys=f"{new}, {old}"))
    assert rotated.open(sealed) == "Bearer x"
    assert rotated.open("plain:stored before encryption") == "stored before encryption"
    with pytest.raises(SecretUnavailable, match="not in TAMS_WEBHOOKS_SECRET_KEYS"):
        SecretBox([new]).open(sealed)
    with pytest.raises(SecretUnavailable, match="not set"):
        SecretBox([]).open(sealed)
