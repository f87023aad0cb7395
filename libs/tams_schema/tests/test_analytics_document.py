"""The analytics OpenAPI document is written by hand: its format enum is the models' own."""

from __future__ import annotations

import yaml

from tams_schema.models.common import CONTENT_FORMATS
from tams_schema.openapi import ANALYTICS_OPENAPI


def test_the_format_parameter_lists_the_tams_format_urns() -> None:
    document = yaml.safe_load(ANALYTICS_OPENAPI.read_text())
    enum = document["components"]["parameters"]["format"]["schema"]["enum"]
    assert sorted(enum) == sorted(CONTENT_FORMATS)
