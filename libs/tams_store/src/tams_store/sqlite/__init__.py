"""The embedded default store: SQLite in WAL mode (`database.py` says how it is used;
docs/operations.md, "What to watch", what to expect of its WAL)."""

from tams_store.sqlite.database import SqliteStore

__all__ = ["SqliteStore"]
