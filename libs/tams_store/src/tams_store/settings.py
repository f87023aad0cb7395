"""Which store adapter to use and where its data lives."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_", extra="ignore")

    store: str = "sqlite"
    data_dir: str = ".tams-data"
    sqlite_path: str | None = None
    # FULL survives power loss (~7k commits/s); NORMAL survives process crashes (~49k/s).
    sqlite_synchronous: str = "NORMAL"

    @property
    def sqlite_file(self) -> str:
        return self.sqlite_path or f"{self.data_dir}/tams.db"
