"""Gateway settings that cannot work are refused at start, naming the variable."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tams_gateway.settings import GatewaySettings


@pytest.mark.parametrize(
    "value",
    [
        {"port": 99999},
        {"default_page_limit": -3},
        {"max_page_limit": 0},
        {"public_url": "not-a-url"},
        {"analytics_url": "127.0.0.1:8001"},
        {"analytics_timeout_s": -5},
    ],
)
def test_values_that_cannot_work_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(value))):
        GatewaySettings(**value)


def test_a_maximum_page_below_the_default_lowers_the_default() -> None:
    settings = GatewaySettings(max_page_limit=50)
    assert settings.default_page_limit == 50
    assert GatewaySettings(default_page_limit=5000).default_page_limit == 1000


def test_a_bad_url_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(public_url="tams.example.com:secret@x")
    assert "secret" not in str(refused.value.errors(include_input=False))


def test_urls_and_limits_that_work_are_kept() -> None:
    settings = GatewaySettings(
        public_url="https://tams.example.com/api",
        analytics_url="http://analytics:8001",
        default_page_limit=1000,
    )
    assert settings.public_url == "https://tams.example.com/api"
    assert settings.default_page_limit == settings.max_page_limit == 1000
