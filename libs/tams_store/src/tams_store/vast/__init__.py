"""The VAST Database adapter (`TAMS_STORE=vast`). Importing it imports `vastdb` and
`pyarrow` (the `tams-store[vast]` extra); `open_store_from_env` does so only when asked."""

from tams_store.vast.database import VastStore
from tams_store.vast.settings import VastSettings

__all__ = ["VastSettings", "VastStore"]
