"""Configuration plumbing: prefixes, *_FILE variants, comma lists, one-line errors, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from common.settings import BaseConfig, CommaList, ConfigError, Secrets, load


class Example(BaseConfig):
    port: int = Field(8080, ge=1, le=65535)
    names: CommaList = ()
    tokens: Secrets = ()


def test_env_prefix_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_PORT", "9000")
    monkeypatch.setenv("DLRHUB_NAMES", "a, b,,c ")
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
