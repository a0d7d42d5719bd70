"""Store backends: :func:`open_store` picks one from the settings."""

from __future__ import annotations

from dlrhub_common.settings import ConfigError
from statusd.settings import StatusdSettings
from statusd.storage.base import (
    InvalidPosition,
    SchemaTooNew,
    Store,
    StoreError,
    StoreUnavailable,
)
from statusd.storage.sqlite import SqliteStore

__all__ = [
    "InvalidPosition",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def open_store(settings: StatusdSettings) -> Store:
    """MongoDB when ``DLRHUB_MONGODB_URI`` is set, else the SQLite file (not yet opened).

    A malformed URI is a :class:`ConfigError` naming the variable (never its value, which may
    hold a password); an unreachable server is not: statusd starts and retries.
    """
    if settings.mongodb_uri is None:
        return SqliteStore(settings.sqlite_path, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    from pymongo.errors import PyMongoError

    from statusd.storage.mongo import MongoStore, mongo_client

    uri = settings.mongodb_uri.get_secret_value()
    try:
        client = mongo_client(
            uri, server_selection_timeout=settings.mongodb_server_selection_timeout_seconds
        )
    except (PyMongoError, ValueError, TypeError, UserWarning) as exc:
        reason = str(exc).replace(uri, "<uri>")
        userinfo = uri.split("://", 1)[-1].rsplit("@", 1)[0] if "@" in uri else ""
        for secret in {userinfo, *userinfo.split(":")[1:]} - {""}:
            reason = reason.replace(secret, "<redacted>")
        raise ConfigError(
            f"DLRHUB_MONGODB_URI: not a usable MongoDB connection string: {reason}"
        ) from None
    return MongoStore(
        client,
        database=settings.mongodb_database,
        retention_days=settings.retention_days,
        timeout=settings.mongodb_timeout_seconds,
    )
