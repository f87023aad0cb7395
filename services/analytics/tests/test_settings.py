"""Analytics settings that cannot work are refused at start, naming the variable; a
maximum below its default lowers the default, so a request that names no limit works."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tams_analytics.settings import AnalyticsSettings


@pytest.mark.parametrize(
    "value",
    [
        {"default_page_limit": 0},
        {"max_page_limit": -1},
        {"default_gap_limit": -1},
        {"max_gap_limit": -5},
        {"gauge_interval_s": 0},
    ],
)
def test_values_that_cannot_work_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=next(iter(value))):
        AnalyticsSettings(**value)


def test_a_maximum_below_the_default_lowers_the_default() -> None:
    settings = AnalyticsSettings(max_page_limit=50, max_gap_limit=20)
    assert (settings.default_page_limit, settings.default_gap_limit) == (50, 20)
    settings = AnalyticsSettings(default_page_limit=5000, default_gap_limit=20000)
    assert (settings.default_page_limit, settings.default_gap_limit) == (1000, 10000)
