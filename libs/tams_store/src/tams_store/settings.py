"""Which store adapter to use and where its data lives."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAMS_", extra="ignore")

    store: str = "sqlite"
    data_dir: str = ".tams-data"
    sqlite_path: str | None = None
    # FULL survives power loss (~7k commits/s); NORMAL survives process crashes (~49k/s).
    sqlite_synchronous: str = "NORMAL"
    # The writing connection's page cache, at most (filled as pages are used). Registrations
    # insert into indexes at many places at once (segments by object, objects by id); with
    # SQLite's 2 MB default those pages are read back from the OS for every batch.
    sqlite_writer_cache_mb: int = Field(default=64, ge=1)
    # Run a write on the event loop when it can start at once (tams_store.sqlite.database).
    sqlite_writes_on_loop: bool = True
    # A command consumer applies a fetch in transactions of at most this many commands and
    # answers each as it commits, so the gateway turns the first replies into responses while
    # the rest are applied (docs/benchmarks.md, "A fetch in several transactions"). 0: one
    # transaction per fetch. SQLite only: a VAST transaction costs round trips.
    sqlite_commands_per_transaction: int = Field(default=6, ge=0)

    @property
    def commands_per_transaction(self) -> int:
        """For the command consumers (0: a whole fetch in one transaction)."""
        return self.sqlite_commands_per_transaction if self.store == "sqlite" else 0

    @property
    def sqlite_file(self) -> str:
        return self.sqlite_path or f"{self.data_dir}/tams.db"
