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
        {"default_page_limit": 5000},  # over the default maximum (1000)
        {"max_page_limit": 0},
        {"public_url": "not-a-url"},
        {"analytics_url": "127.0.0.1:8001"},
        {"analytics_timeout_s": -5},
    ],
)
def test_values_that_cannot_work_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(value))):
        GatewaySettings(**value)


def test_urls_and_limits_that_work_are_kept() -> None:
    settings = GatewaySettings(
        public_url="https://tams.example.com/api",
        analytics_url="http://analytics:8001",
        default_page_limit=1000,
    )
    assert settings.public_url == "https://tams.example.com/api"
    assert settings.default_page_limit == settings.max_page_limit == 1000
