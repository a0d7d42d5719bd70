"""Store backends: :func:`open_store` picks one from the settings."""

from __future__ import annotations

from common.settings import ConfigError
from statusd.settings import StatusdSettings
from statusd.storage.base import Store, StoreError, StoreUnavailable
from statusd.storage.sqlite import SqliteStore

__all__ = ["Store", "StoreError", "StoreUnavailable", "open_store"]


def open_store(settings: StatusdSettings) -> Store:
    """MongoDB when ``DLRHUB_MONGODB_URI`` is set, else the SQLite file (not yet opened)."""
    if settings.mongodb_uri is not None:
        raise ConfigError(
            "DLRHUB_MONGODB_URI: the MongoDB store is not part of this build yet; "
            "unset it to use the embedded SQLite store"
        )
    return SqliteStore(settings.sqlite_path, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
