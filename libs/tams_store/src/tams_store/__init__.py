"""The TAMS metadata store port and its adapters."""

from tams_store.errors import StoreError, StoreUnavailable
from tams_store.port import (
    AccessFilter,
    FlowQuery,
    Page,
    ReadTx,
    SourceQuery,
    Store,
    TagFilter,
    WriteTx,
)

__all__ = [
    "AccessFilter",
    "FlowQuery",
    "Page",
    "ReadTx",
    "SourceQuery",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TagFilter",
    "WriteTx",
]


def open_store_from_env(*, writes_on_loop: bool = True) -> Store:
    """The adapter selected by TAMS_STORE (`sqlite` default, `vast`). `writes_on_loop=False`:
    a service whose loop has other work to do while it writes keeps SQLite's writes on the
    writer thread (TAMS_SQLITE_WRITES_ON_LOOP=false does so for every service)."""
    from tams_store.settings import StoreSettings

    settings = StoreSettings()
    if settings.store == "sqlite":
        from tams_store.sqlite import SqliteStore

        return SqliteStore(
            settings.sqlite_file,
            synchronous=settings.sqlite_synchronous,
            writer_cache_mb=settings.sqlite_writer_cache_mb,
            writes_on_loop=writes_on_loop and settings.sqlite_writes_on_loop,
        )
    if settings.store == "vast":
        # Imported only here: vastdb and pyarrow are the optional `tams-store[vast]` extra.
        from tams_store.vast import VastSettings, VastStore

        return VastStore(VastSettings())
    raise ValueError(f"unknown TAMS_STORE {settings.store!r} (supported: sqlite, vast)")
