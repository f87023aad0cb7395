"""How many commands a command consumer applies per transaction, by store."""

from __future__ import annotations

import pytest

from tams_store.settings import StoreSettings


def test_sqlite_applies_a_fetch_in_transactions_of_six(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAMS_SQLITE_COMMANDS_PER_TRANSACTION", raising=False)
    assert StoreSettings(store="sqlite").commands_per_transaction == 6


def test_vast_applies_a_whole_fetch_in_one_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each VAST transaction costs round trips; the SQLite setting does not apply to it.
    monkeypatch.setenv("TAMS_SQLITE_COMMANDS_PER_TRANSACTION", "2")
    assert StoreSettings(store="vast").commands_per_transaction == 0


def test_the_sqlite_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMS_SQLITE_COMMANDS_PER_TRANSACTION", "0")
    assert StoreSettings(store="sqlite").commands_per_transaction == 0
    monkeypatch.setenv("TAMS_SQLITE_COMMANDS_PER_TRANSACTION", "-1")
    with pytest.raises(ValueError):
        StoreSettings(store="sqlite")
