"""Settings derived from a provider's name and credentials class: the variable names stay
``DLRHUB_<PROVIDER>_<FIELD>``, ``*_FILE`` reads a file, ``*_ACCOUNTS`` adds named accounts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlrhub_common.settings import ConfigError, env_name, load
from gateway.providers import PROVIDERS
from gateway.providers.aws_sns import AwsSns
from gateway.providers.infobip import Infobip, InfobipCredentials
from gateway.providers.vonage_messages import VonageMessages


def test_variable_names_follow_the_provider_name() -> None:
    assert Infobip.env("basic_auth") == "DLRHUB_INFOBIP_BASIC_AUTH"
    assert VonageMessages.env("signature_secret") == "DLRHUB_VONAGE_MESSAGES_SIGNATURE_SECRET"
    assert AwsSns.env("topic_arns") == "DLRHUB_AWS_SNS_TOPIC_ARNS"
    for provider in PROVIDERS.values():
        settings = provider.settings_class
        assert settings.credentials_class is provider.credentials_class
        assert set(settings.model_fields) == {*provider.credentials_class.model_fields, "accounts"}
        prefix = "DLRHUB_" + provider.name.upper().replace("-", "_") + "_"
        assert env_name(settings, "accounts") == prefix + "ACCOUNTS"


def test_default_and_named_accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "basic").write_text("file:pw\n")
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH_FILE", str(tmp_path / "basic"))
    monkeypatch.setenv("DLRHUB_INFOBIP_ACCOUNTS", json.dumps({"eu": {"url_token": "t1,t2"}}))
    accounts = load(Infobip.settings_class).account_credentials()
    assert set(accounts) == {"", "eu"}
    assert all(isinstance(creds, InfobipCredentials) for creds in accounts.values())
    assert accounts[""].redacted_names() == ["basic_auth"]
    assert accounts["eu"].redacted_names() == ["url_token"]
    assert not InfobipCredentials().configured()


def test_an_unknown_account_field_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_INFOBIP_ACCOUNTS", json.dumps({"eu": {"colour": "blue"}}))
    with pytest.raises(ConfigError, match="DLRHUB_INFOBIP_ACCOUNTS"):
        load(Infobip.settings_class)
