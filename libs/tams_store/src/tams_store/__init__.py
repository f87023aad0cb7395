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


def open_store_from_env() -> Store:
    """The adapter selected by TAMS_STORE (`sqlite` default, `vast`)."""
    from tams_store.settings import StoreSettings

    settings = StoreSettings()
    if settings.store == "sqlite":
        from tams_store.sqlite import SqliteStore

        return SqliteStore(
            settings.sqlite_file,
            synchronous=settings.sqlite_synchronous,
            writer_cache_mb=settings.sqlite_writer_cache_mb,
        )
    if settings.store == "vast":
        # Imported only here: vastdb and pyarrow are the optional `tams-store[vast]` extra.
        from tams_store.vast import VastSettings, VastStore

        return VastStore(VastSettings())
    raise ValueError(f"unknown TAMS_STORE {settings.store!r} (supported: sqlite, vast)")
