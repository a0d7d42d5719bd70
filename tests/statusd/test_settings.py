"""statusd's configuration (statusd/settings.py): defaults that make ``make run`` work on a
fresh machine, and start-up errors that name the variable at fault, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub_common.settings import ConfigError, load
from statusd.settings import StatusdSettings
from tests.helpers.certs import CertificateAuthority


def test_defaults_serve_the_embedded_store_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DLRHUB_MONGODB_URI", "DLRHUB_STATUSD_HOST", "DLRHUB_STATUSD_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load(StatusdSettings)
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.mongodb_uri is None
    assert settings.sqlite_path == Path("var/dlrhub.sqlite3")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DLRHUB_STATUSD_PORT", "70000"),
        ("DLRHUB_MONGODB_DATABASE", "bad/name"),
        ("DLRHUB_GROUP_COMMIT_WINDOW_MS", "-1"),
        ("DLRHUB_MULTIPART_POLICY", "best"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load(StatusdSettings)


def test_a_mongodb_uri_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_MONGODB_URI", "mongodb://user:hunter2@db.example:27017/")
    settings = load(StatusdSettings)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.redacted())


def test_tls_certificate_and_key_come_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    issued = CertificateAuthority(tmp_path).issue("statusd", server=True)
    monkeypatch.setenv("DLRHUB_TLS_CERT_FILE", str(issued.cert_file))
    with pytest.raises(ConfigError, match="DLRHUB_TLS_CERT and DLRHUB_TLS_KEY"):
        load(StatusdSettings)


def test_a_client_ca_needs_a_server_certificate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = CertificateAuthority(tmp_path)
    monkeypatch.setenv("DLRHUB_TLS_CLIENT_CA_FILE", str(authority.file))
    with pytest.raises(ConfigError, match="DLRHUB_TLS_CLIENT_CA"):
        load(StatusdSettings)


def test_report_timeouts_default_and_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_REPORT_TIMEOUT_HOURS_BY_PROVIDER", "twilio=24, sinch=0.5")
    settings = load(StatusdSettings)
    assert (settings.report_timeout_hours, settings.report_sweep_seconds) == (72.0, 30.0)
    assert settings.report_timeout_hours_by_provider == {"twilio": 24.0, "sinch": 0.5}
    assert settings.report_timeout_micros("twilio") == 24 * 3_600_000_000
    assert settings.report_timeout_micros("sinch") == 1_800_000_000
    assert settings.report_timeout_micros("plivo") == 72 * 3_600_000_000


@pytest.mark.parametrize(
    "value", ["twilio", "twilio=", "nope=5", "twilio=0", "twilio=1,twilio=2", "twilio=x"]
)
def test_a_bad_per_provider_timeout_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DLRHUB_REPORT_TIMEOUT_HOURS_BY_PROVIDER", value)
    with pytest.raises(ConfigError) as caught:
        load(StatusdSettings)
    assert "DLRHUB_REPORT_TIMEOUT_HOURS_BY_PROVIDER" in str(caught.value)
