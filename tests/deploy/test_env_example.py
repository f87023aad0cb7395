"""`.env.example` documents every setting the services read (the README says it lists them
all): each field of each settings class, by the environment variable it is read from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, ValidationError
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


def field_variables(cls: type[BaseSettings]) -> dict[str, str]:
    """Each field of a settings class, with the environment variable it is read from."""
    prefix = cls.model_config.get("env_prefix", "")
    names = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]  # the environment variable; the others are field names
        names[name] = (alias if isinstance(alias, str) else f"{prefix}{name}").upper()
    return names


def environment_variables(cls: type[BaseSettings]) -> set[str]:
    return set(field_variables(cls).values())


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert len(SETTINGS) >= 16
    missing = {cls.__name__: sorted(environment_variables(cls) - documented) for cls in SETTINGS}
    assert not {k: v for k, v in missing.items() if v}, missing


def test_values_set_in_env_example_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An uncommented `NAME=value` line states the default: read through the setting, it
    gives what the setting gives with nothing set (a commented line is an example)."""
    text = (ROOT / ".env.example").read_text()
    stated = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    for name in stated:
        monkeypatch.delenv(name, raising=False)
    checked, drifted = 0, {}
    for cls in SETTINGS:
        try:
            defaults = cls()
        except ValidationError:
            continue  # needs other settings to be built at all (a VAST endpoint, say)
        for field, variable in field_variables(cls).items():
            if variable not in stated:
                continue
            with monkeypatch.context() as env:
                env.setenv(variable, stated[variable])
                value = getattr(cls(), field)
            checked += 1
            if value != getattr(defaults, field):
                drifted[variable] = (stated[variable], getattr(defaults, field))
    assert checked >= 60
    assert not drifted, drifted
