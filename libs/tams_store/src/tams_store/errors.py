"""Errors a store adapter raises, in TAMS terms."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for store failures."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or is busy; the same work may succeed if retried."""
