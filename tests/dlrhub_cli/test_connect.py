"""The connection flags of ``dlrhub status`` and ``dlrhub quarantine``: token, TLS files,
target, and the usage errors for contradictory or unreadable ones."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dlrhub_cli.connect import (
    UsageError,
    add_flags,
    client_from,
    default_target,
    target_flag,
    tls_from,
    token_from,
)
from tests.helpers.certs import CertificateAuthority


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_token_from_the_flag_or_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert token_from(flags()) is None
    assert token_from(flags("--token", "t0ken")) == "t0ken"
    assert token_from(flags("--token-file", str(token_file))) == "from-file"
    token_file.write_text("\n")
    assert token_from(flags("--token-file", str(token_file))) is None


def test_token_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--token or --token-file, not both"):
        token_from(flags("--token", "a", "--token-file", "b"))
    with pytest.raises(UsageError, match=r"--token-file: cannot read .*missing"):
        token_from(flags("--token-file", str(tmp_path / "missing")))


def test_tls_only_when_asked_for(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    client = ca.issue("reader", server=False)
    assert tls_from(flags()) is None
    plain = tls_from(flags("--tls"))
    assert plain is not None
    assert (plain.ca, plain.cert) == (None, None)
    mutual = tls_from(
        flags("--cert-file", str(client.cert_file), "--key-file", str(client.key_file))
    )
    assert mutual is not None
    assert mutual.key == client.key_file.read_bytes()
    trusted = tls_from(flags("--ca-file", str(ca.file)))
    assert trusted is not None
    assert trusted.ca == ca.file.read_bytes()


def test_tls_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="go together"):
        tls_from(flags("--cert-file", "client.crt"))
    with pytest.raises(UsageError, match=r"cannot read .*missing\.pem"):
        tls_from(flags("--ca-file", str(tmp_path / "missing.pem")))


def test_default_target_is_statusds_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_STATUSD_PORT", "50999")
    assert default_target().endswith(":50999")


async def test_client_from_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_STATUSD_PORT", "50998")
    explicit = client_from(flags("--target", "127.0.0.1:50997", "--token", "t0ken"))
    defaulted = client_from(flags())
    try:
        assert explicit.target == "127.0.0.1:50997"
        assert explicit.metadata == (("authorization", "Bearer t0ken"),)
        assert defaulted.target.endswith(":50998")
        assert defaulted.metadata == ()
    finally:
        await explicit.close()
        await defaulted.close()
    with pytest.raises(UsageError):
        client_from(flags("--key-file", "client.key"))


def test_a_hint_names_the_target_unless_it_is_the_default() -> None:
    assert target_flag("127.0.0.1:50051") == ""
    assert target_flag("127.0.0.1:50999") == " --target 127.0.0.1:50999"
    assert target_flag("statusd.internal:50051") == " --target statusd.internal:50051"
