"""Kept for imports of `tams_store.sqlite.cursor`: the cursors are shared by every adapter."""

from tams_store.cursor import decode, encode

__all__ = ["decode", "encode"]
