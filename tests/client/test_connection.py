"""Channels to statusd: TLS settings from PEM files, bearer metadata, and a channel that
reaches a real statusd with the default options overridable."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from dlrhub.client.connection import DEFAULT_OPTIONS, TLSConfig, bearer_metadata, open_channel
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub.v1 import status_service_pb2_grpc as status_grpc
from statusd.server import Statusd
from tests.helpers.certs import CertificateAuthority


def test_bearer_metadata() -> None:
    assert bearer_metadata("s3cret") == (("authorization", "Bearer s3cret"),)
    assert bearer_metadata(None) == ()
    assert bearer_metadata("") == ()


def test_a_certificate_needs_its_key() -> None:
    with pytest.raises(ValueError, match="needs its key"):
        TLSConfig(cert=b"cert")
    with pytest.raises(ValueError, match="needs its key"):
        TLSConfig(key=b"key")
    assert TLSConfig().ca is None


def test_from_files_reads_the_files_given(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    client = ca.issue("reader", server=False)
    config = TLSConfig.from_files(ca.file, client.cert_file, client.key_file)
    assert config.ca == ca.file.read_bytes()
    assert config.cert == client.cert_file.read_bytes()
    assert config.key == client.key_file.read_bytes()
    assert isinstance(config.credentials(), grpc.ChannelCredentials)
    assert TLSConfig.from_files(ca_file=ca.file).cert is None
    with pytest.raises(FileNotFoundError, match=r"missing\.pem"):
        TLSConfig.from_files(tmp_path / "missing.pem")


def test_default_options_reconnect_quickly() -> None:
    options = dict(DEFAULT_OPTIONS)
    assert options["grpc.initial_reconnect_backoff_ms"] <= 100
    assert options["grpc.max_reconnect_backoff_ms"] <= 5_000


async def test_open_channel_reaches_statusd(statusd: Statusd) -> None:
    async with open_channel(f"127.0.0.1:{statusd.port}") as channel:
        stub = status_grpc.StatusServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetMessageStatus(
                status_pb.GetMessageStatusRequest(provider="infobip", message_id="none"),
                timeout=5,
            )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_later_options_override_the_defaults(statusd: Statusd) -> None:
    options = [("grpc.max_send_message_length", 64)]  # the default allows 16 MiB
    async with open_channel(f"127.0.0.1:{statusd.port}", options=options) as channel:
        stub = status_grpc.StatusServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetMessageStatus(
                status_pb.GetMessageStatusRequest(provider="infobip", message_id="x" * 200),
                timeout=5,
            )
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
