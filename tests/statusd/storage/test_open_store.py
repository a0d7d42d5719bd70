"""Covers statusd/storage/__init__.py: open_store, SQLite by default, MongoDB when
DLRHUB_MONGODB_URI is set, and a clear configuration error (never the password) for a URI that
cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub_common.settings import ConfigError
from statusd.storage import open_store
from statusd.storage.mongo import MongoStore
from statusd.storage.sqlite import SqliteStore
from tests.helpers.servers import statusd_settings


def test_sqlite_unless_a_mongodb_uri_is_set(tmp_path: Path) -> None:
    assert isinstance(open_store(statusd_settings(tmp_path)), SqliteStore)
    store = open_store(
        statusd_settings(
            tmp_path,
            mongodb_uri="mongodb://dlrhub:s3cret@127.0.0.1:1/?replicaSet=rs0",
            mongodb_database="dlr_prod",
        )
    )
    assert isinstance(store, MongoStore)
    assert store.database == "dlr_prod"


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:27017",
        "mongodb://dlrhub:s3cret:more@127.0.0.1",
        "mongodb://dlrhub:s3cret@127.0.0.1:port/",
        "mongodb://dlrhub:s3cret@127.0.0.1:99999/",
        "mongodb://dlrhub:s3cret@127.0.0.1/?w=banana&journal=maybe",
    ],
)
def test_an_unusable_uri_names_the_variable_and_hides_the_password(
    tmp_path: Path, uri: str
) -> None:
    with pytest.raises(ConfigError, match=r"^DLRHUB_MONGODB_URI: ") as raised:
        open_store(statusd_settings(tmp_path, mongodb_uri=uri))
    assert "s3cret" not in str(raised.value)


def test_a_bad_database_name_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DLRHUB_MONGODB_DATABASE"):
        statusd_settings(tmp_path, mongodb_database="dlr.hub")
