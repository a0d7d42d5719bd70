"""Configuration plumbing: prefixes, *_FILE variants, comma lists, one-line errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from dlrhub_common.settings import (
    BaseConfig,
    BasicPairs,
    CommaList,
    ConfigError,
    Pem,
    Secrets,
    load,
)


class Example(BaseConfig):
    port: int = Field(8080, ge=1, le=65535)
    names: CommaList = ()
    tokens: Secrets = ()
    basic_auth: BasicPairs = ()
    cert: Pem | None = None


def test_env_prefix_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_PORT", "9000")
    monkeypatch.setenv("DLRHUB_NAMES", " a, b,c ")
    monkeypatch.setenv("DLRHUB_TOKENS", "one,two")
    settings = load(Example)
    assert settings.port == 9000
    assert settings.names == ("a", "b", "c")
    assert [token.get_secret_value() for token in settings.tokens] == ["one", "two"]


def test_file_variant_and_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("from-file,rotated\n")
    monkeypatch.setenv("DLRHUB_TOKENS_FILE", str(secret))
    assert [token.get_secret_value() for token in load(Example).tokens] == ["from-file", "rotated"]
    monkeypatch.setenv("DLRHUB_TOKENS", "from-env")
    assert [token.get_secret_value() for token in load(Example).tokens] == ["from-env"]


def test_unreadable_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DLRHUB_TOKENS_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="DLRHUB_TOKENS_FILE"):
        load(Example)


def test_bad_value_names_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_PORT", "secret-looking-99999")
    with pytest.raises(ConfigError) as caught:
        load(Example)
    assert str(caught.value).startswith("DLRHUB_PORT: ")
    assert "secret-looking" not in str(caught.value)


def test_redacted_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_TOKENS", "very-secret")
    dumped = load(Example).redacted()
    assert dumped["tokens"] == ("**********",)
    assert "very-secret" not in repr(dumped)
    assert "very-secret" not in repr(load(Example))


@pytest.mark.parametrize("value", ["a,,b", "a,b,", ",a", "a, ,b"])
def test_an_empty_item_in_a_list_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DLRHUB_TOKENS", value)
    with pytest.raises(ConfigError) as caught:
        load(Example)
    assert str(caught.value) == (
        "DLRHUB_TOKENS: Value error, an empty item in the comma-separated list "
        "(a doubled or trailing comma)"
    )


def test_a_blank_list_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_NAMES", "  ")
    assert load(Example).names == ()


def test_a_basic_pair_without_a_colon_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLRHUB_BASIC_AUTH", "acme:s3cret,acme-s3cret")
    with pytest.raises(ConfigError) as caught:
        load(Example)
    assert str(caught.value) == (
        "DLRHUB_BASIC_AUTH: Value error, item 2 is not a user:password pair"
    )
    monkeypatch.setenv("DLRHUB_BASIC_AUTH", "acme:s3cret,other:pass:word")
    pairs = [pair.get_secret_value() for pair in load(Example).basic_auth]
    assert pairs == ["acme:s3cret", "other:pass:word"]


def test_text_that_is_not_pem_suggests_the_file_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_CERT", "/etc/tls/cert.pem")
    with pytest.raises(ConfigError) as caught:
        load(Example)
    assert str(caught.value) == (
        "DLRHUB_CERT: not PEM text (no -----BEGIN line); to read it from a file, "
        "set DLRHUB_CERT_FILE to the file's path instead"
    )


def test_a_file_that_is_not_pem_is_named_without_the_file_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert = tmp_path / "cert.der"
    cert.write_text("MIIB-not-pem")
    monkeypatch.setenv("DLRHUB_CERT_FILE", str(cert))
    with pytest.raises(ConfigError) as caught:
        load(Example)
    assert str(caught.value) == f"DLRHUB_CERT_FILE: {cert} is not PEM text (no -----BEGIN line)"
