"""The embedded default store: SQLite in WAL mode (see docs/storage.md)."""

from tams_store.sqlite.database import SqliteStore

__all__ = ["SqliteStore"]
