"""`.env.example` documents every setting the services read (the README says it lists them
all): each field of each settings class, by the environment variable it is read from."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from tams_analytics.settings import AnalyticsSettings
from tams_gateway.auth.settings import AuthSettings
from tams_gateway.settings import GatewaySettings
from tams_runtime import settings as runtime
from tams_store.settings import StoreSettings
from tams_store.vast.settings import VastSettings

ROOT = Path(__file__).resolve().parents[2]

SETTINGS: list[type[BaseSettings]] = [
    StoreSettings,
    VastSettings,
    GatewaySettings,
    AuthSettings,
    AnalyticsSettings,
    *(
        cls
        for cls in vars(runtime).values()
        if isinstance(cls, type) and issubclass(cls, BaseSettings) and cls is not BaseSettings
    ),
]


def environment_variables(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]  # the environment variable; the others are field names
        names.add((alias if isinstance(alias, str) else f"{prefix}{name}").upper())
    return names


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert len(SETTINGS) >= 16
    missing = {cls.__name__: sorted(environment_variables(cls) - documented) for cls in SETTINGS}
    assert not {k: v for k, v in missing.items() if v}, missing
