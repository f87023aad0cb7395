"""Which event loop a service process runs on (TAMS_EVENT_LOOP)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from tams_runtime.service import event_loop_factory
from tams_runtime.settings import ProcessSettings


def loop_type(settings: ProcessSettings) -> type[asyncio.AbstractEventLoop]:
    loop = event_loop_factory(settings)()
    try:
        return type(loop)
    finally:
        loop.close()


def test_services_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAMS_EVENT_LOOP", raising=False)
    assert loop_type(ProcessSettings()) is uvloop.Loop


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMS_EVENT_LOOP", "asyncio")
    assert not issubclass(loop_type(ProcessSettings()), uvloop.Loop)


def test_an_unknown_loop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAMS_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        ProcessSettings()
