"""The gateway's configuration: enabled endpoints, insecure mode, accounts, bad values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dlrhub_common.settings import ConfigError, load
from gateway.settings import GatewayConfig, GatewaySettings


def test_providers_without_credentials_are_disabled() -> None:
    config = GatewayConfig.load()
    assert config.endpoints == {}


def test_credentials_and_accounts_enable_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", "u:p")
    monkeypatch.setenv(
        "DLRHUB_PLIVO_ACCOUNTS", '{"eu": {"auth_token": "t1,t2"}, "us": {"auth_token": "t3"}}'
    )
    config = GatewayConfig.load()
    assert sorted(config.endpoints) == [("infobip", ""), ("plivo", "eu"), ("plivo", "us")]


def test_insecure_providers_are_accepted_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLRHUB_INSECURE_PROVIDERS", "plivo")
    config = GatewayConfig.load()
    assert config.endpoints[("plivo", "")].insecure


def test_insecure_means_unverified_even_with_credentials_and_says_so_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Development credentials written by `dlrhub run` must not silently undo the choice.
    monkeypatch.setenv("DLRHUB_INSECURE_PROVIDERS", "plivo")
    monkeypatch.setenv("DLRHUB_PLIVO_AUTH_TOKEN", "t")
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", "u:p")
    config = GatewayConfig.load()
    assert config.endpoints[("plivo", "")].insecure
    assert not config.endpoints[("infobip", "")].insecure
    with caplog.at_level(logging.INFO, logger="gateway.settings"):
        config.describe()
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    text = warning.getMessage()
    assert text.startswith("INSECURE: /webhooks/plivo accepts webhooks WITHOUT verification")
    assert "(auth_token) are NOT checked" in text
    assert "remove it from DLRHUB_INSECURE_PROVIDERS" in text


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("10.0.0.5", False),
    ],
)
def test_insecure_providers_only_on_a_loopback_bind(
    monkeypatch: pytest.MonkeyPatch, host: str, allowed: bool
) -> None:
    monkeypatch.setenv("DLRHUB_INSECURE_PROVIDERS", "plivo")
    monkeypatch.setenv("DLRHUB_GATEWAY_HOST", host)
    if allowed:
        assert GatewayConfig.load().endpoints[("plivo", "")].insecure
        return
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.load()
    assert "DLRHUB_INSECURE_PROVIDERS accepts unverified webhooks" in str(caught.value)
    assert f"binds {host}" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("DLRHUB_INSECURE_PROVIDERS", "nosuch", "DLRHUB_INSECURE_PROVIDERS"),
        ("DLRHUB_GATEWAY_PORT", "70000", "DLRHUB_GATEWAY_PORT"),
        ("DLRHUB_PUBLIC_URL", "not a url", "DLRHUB_PUBLIC_URL"),
        ("DLRHUB_PLIVO_ACCOUNTS", "{not json", "DLRHUB_PLIVO_ACCOUNTS"),
        ("DLRHUB_PLIVO_ACCOUNTS", '{"a b": {"auth_token": "t"}}', "DLRHUB_PLIVO_ACCOUNTS"),
        ("DLRHUB_INFOBIP_ACCOUNTS", '{"x": {"basic": "u:p"}}', "DLRHUB_INFOBIP_ACCOUNTS"),
    ],
)
def test_bad_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.load()
    assert named in str(caught.value)


def test_public_url_defaults_to_the_gateway_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_GATEWAY_PORT", "9090")
    assert load(GatewaySettings).public_base == "http://127.0.0.1:9090"
    monkeypatch.setenv("DLRHUB_PUBLIC_URL", "https://dlr.example.com/base/")
    assert load(GatewaySettings).public_base == "https://dlr.example.com/base"


def test_statusd_client_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_STATUSD_TLS_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="DLRHUB_STATUSD_TLS_CLIENT_KEY"):
        load(GatewaySettings)


def test_ingest_token_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("DLRHUB_GATEWAY_INGEST_TOKEN_FILE", str(secret))
    token = load(GatewaySettings).gateway_ingest_token
    assert token is not None
    assert token.get_secret_value() == "from-a-file"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "10.0.0.7:50051"),
        ("dns:///dlrhub-statusd-headless.default.svc:50051", None),
        ("ipv4:127.0.0.1:50051,127.0.0.1:50052", None),
        ("statusd:7000", None),
        ("[::1]:7000", None),
    ],
)
def test_statusd_target_names_the_replicas(
    monkeypatch: pytest.MonkeyPatch, target: str | None, expected: str | None
) -> None:
    monkeypatch.setenv("DLRHUB_STATUSD_HOST", "10.0.0.7")
    if target is not None:
        monkeypatch.setenv("DLRHUB_STATUSD_TARGET", target)
    assert load(GatewaySettings).grpc_target == (expected or target)


@pytest.mark.parametrize(
    "target", ["statusd", "statusd:port", "http://statusd:80", "dns:", "a b:1"]
)
def test_bad_statusd_target_is_refused(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.setenv("DLRHUB_STATUSD_TARGET", target)
    with pytest.raises(ConfigError, match="DLRHUB_STATUSD_TARGET"):
        load(GatewaySettings)


def test_a_per_ip_limit_without_trusted_proxies_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warning = "DLRHUB_RATE_LIMIT_PER_IP limits each TCP peer"
    GatewayConfig.load(load(GatewaySettings, rate_limit_per_ip=5)).describe()
    assert warning in caplog.text
    caplog.clear()
    settings = load(GatewaySettings, rate_limit_per_ip=5, trusted_proxies=("10.0.0.0/8",))
    GatewayConfig.load(settings).describe()
    assert warning not in caplog.text
