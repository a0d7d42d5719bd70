"""TLS and mutual TLS on statusd's gRPC port, with certificates made for the test (covers
statusd/server.py's TLS binding and statusd/settings.py's certificate settings)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from dlrhub.client import Backoff, DlrhubClient, DlrhubError, TLSConfig
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common.settings import ConfigError, load
from statusd.server import Statusd
from statusd.settings import StatusdSettings
from tests.helpers.certs import CertificateAuthority, Issued
from tests.helpers.processes import free_port
from tests.helpers.reports import report
from tests.helpers.rpc import health, ingest, status_stub
from tests.helpers.servers import running_statusd, statusd_settings

ONCE = Backoff(attempts=1)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


@pytest.fixture
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("statusd", server=True)


async def reads(target: str, tls: TLSConfig | None, token: str | None = None) -> grpc.StatusCode:
    """What a Get of a stored message answers through this TLS configuration."""
    async with DlrhubClient(target, tls=tls, token=token, timeout=5, backoff=ONCE) as client:
        try:
            found = await client.get("infobip", "m-1")
        except DlrhubError as exc:
            return exc.code
    assert found is not None
    return grpc.StatusCode.OK


async def test_tls(tmp_path: Path, ca: CertificateAuthority, server_cert: Issued) -> None:
    settings = statusd_settings(
        tmp_path, tls_cert=server_cert.cert.decode(), tls_key=server_cert.key.decode()
    )
    stranger = CertificateAuthority(tmp_path, "another CA")
    async with running_statusd(settings) as daemon:
        target = f"127.0.0.1:{daemon.port}"
        trusted = TLSConfig(ca=ca.pem)
        async with grpc.aio.secure_channel(target, trusted.credentials()) as channel:
            await ingest(channel, report("m-1"))
        assert await reads(target, trusted) == grpc.StatusCode.OK
        assert await reads(target, TLSConfig.from_files(ca_file=ca.file)) == grpc.StatusCode.OK
        assert await reads(target, None) == grpc.StatusCode.UNAVAILABLE  # plaintext
        assert await reads(target, TLSConfig(ca=stranger.pem)) == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls(tmp_path: Path, ca: CertificateAuthority, server_cert: Issued) -> None:
    settings = statusd_settings(
        tmp_path,
        tls_cert=server_cert.cert.decode(),
        tls_key=server_cert.key.decode(),
        tls_client_ca=ca.pem.decode(),
    )
    reader = ca.issue("reader", server=False)
    stranger = CertificateAuthority(tmp_path, "another CA").issue("intruder", server=False)
    async with running_statusd(settings) as daemon:
        target = f"127.0.0.1:{daemon.port}"
        with_cert = TLSConfig.from_files(ca.file, reader.cert_file, reader.key_file)
        async with grpc.aio.secure_channel(target, with_cert.credentials()) as channel:
            await ingest(channel, report("m-1"))
        assert await reads(target, with_cert) == grpc.StatusCode.OK
        assert await reads(target, TLSConfig(ca=ca.pem)) == grpc.StatusCode.UNAVAILABLE
        foreign = TLSConfig(ca=ca.pem, cert=stranger.cert, key=stranger.key)
        assert await reads(target, foreign) == grpc.StatusCode.UNAVAILABLE


def test_settings_read_pem_files(
    monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority, server_cert: Issued
) -> None:
    monkeypatch.setenv("DLRHUB_TLS_CERT_FILE", str(server_cert.cert_file))
    monkeypatch.setenv("DLRHUB_TLS_KEY_FILE", str(server_cert.key_file))
    monkeypatch.setenv("DLRHUB_TLS_CLIENT_CA_FILE", str(ca.file))
    settings = load(StatusdSettings)
    assert settings.tls_cert is not None
    assert settings.tls_cert.strip() == server_cert.cert.decode().strip()
    assert settings.tls_key is not None
    assert "PRIVATE KEY" in settings.tls_key.get_secret_value()
    assert "PRIVATE KEY" not in repr(settings)
    assert settings.tls_client_ca is not None


def test_incomplete_or_bad_tls_settings_name_the_variables(
    monkeypatch: pytest.MonkeyPatch, server_cert: Issued
) -> None:
    monkeypatch.setenv("DLRHUB_TLS_CERT_FILE", str(server_cert.cert_file))
    with pytest.raises(ConfigError, match="DLRHUB_TLS_KEY"):
        load(StatusdSettings)
    monkeypatch.setenv("DLRHUB_TLS_KEY", "not a key")
    with pytest.raises(ConfigError, match=r"DLRHUB_TLS_KEY: .*PEM"):
        load(StatusdSettings)


def test_client_tls_needs_cert_and_key_together() -> None:
    with pytest.raises(ValueError, match="key"):
        TLSConfig(cert=b"-----BEGIN CERTIFICATE-----")


async def test_plaintext_health_port_beside_tls(tmp_path: Path, server_cert: Issued) -> None:
    """Kubernetes' gRPC probes cannot speak TLS: the health port answers them in plaintext
    and serves nothing else."""
    settings = statusd_settings(
        tmp_path,
        tls_cert=server_cert.cert.decode(),
        tls_key=server_cert.key.decode(),
        statusd_health_port=free_port(),
    )
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.health_port}") as channel,
    ):
        for service in ("", "dlrhub.v1.StatusService"):
            assert await health(channel, service) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await status_stub(channel).GetMessageStatus(
                status_pb.GetMessageStatusRequest(provider="infobip", message_id="m-1")
            )
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


READER = "reader-token-0123456789"
GATEWAY = "gateway-token-0123456789"


async def test_tokens_still_decide_over_mutual_tls(
    tmp_path: Path, ca: CertificateAuthority, server_cert: Issued
) -> None:
    """A client certificate proves a caller may connect, not what it may do: the role of
    its token still decides."""
    settings = statusd_settings(
        tmp_path,
        tls_cert=server_cert.cert.decode(),
        tls_key=server_cert.key.decode(),
        tls_client_ca=ca.pem.decode(),
        ingest_tokens=GATEWAY,
        read_tokens=READER,
    )
    client = ca.issue("client", server=False)
    async with running_statusd(settings) as daemon:
        target = f"127.0.0.1:{daemon.port}"
        tls = TLSConfig.from_files(ca.file, client.cert_file, client.key_file)
        async with grpc.aio.secure_channel(target, tls.credentials()) as channel:
            await ingest(channel, report("m-1"), token=GATEWAY)
        assert await reads(target, tls, READER) == grpc.StatusCode.OK
        assert await reads(target, tls) == grpc.StatusCode.UNAUTHENTICATED
        assert await reads(target, tls, GATEWAY) == grpc.StatusCode.PERMISSION_DENIED


async def test_mutual_tls_does_not_replace_tokens_beyond_loopback(
    tmp_path: Path, ca: CertificateAuthority, server_cert: Issued
) -> None:
    settings = statusd_settings(
        tmp_path,
        statusd_host="0.0.0.0",  # noqa: S104 (refused before anything binds)
        tls_cert=server_cert.cert.decode(),
        tls_key=server_cert.key.decode(),
        tls_client_ca=ca.pem.decode(),
    )
    with pytest.raises(ConfigError, match="DLRHUB_INGEST_TOKENS"):
        Statusd(settings)
