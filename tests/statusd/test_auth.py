"""Roles over real gRPC: every method, every kind of credential; health stays open; statusd
refuses to start beyond loopback without tokens or with the built-in token key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from dlrhub.v1 import delivery_report_pb2 as pb
from dlrhub.v1 import ingest_service_pb2 as ingest_pb
from dlrhub.v1 import ingest_service_pb2_grpc as ingest_grpc
from dlrhub.v1 import status_service_pb2 as status_pb
from dlrhub_common.net import loopback
from dlrhub_common.settings import ConfigError
from statusd.auth import METHOD_ROLES, bearer_token
from statusd.cursors import BUILTIN_KEY, CursorCodec
from statusd.errors import InvalidArgument
from statusd.server import INGEST_SERVICE, STATUS_SERVICE, Statusd
from tests.helpers.reports import report
from tests.helpers.rpc import health, ingest, reflected_services, status_stub
from tests.helpers.servers import environment, running_statusd, statusd_settings

INGEST = "ingest-old-0123456789,ingest-new-0123456789"
READ = "reader-1-0123456789"
ADMIN = "admin-1-0123456789"
REGISTER = "sender-1-0123456789"
BOTH = "reads-and-administers-01"  # one token listed for two roles
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

Metadata = tuple[tuple[str, str], ...]
Call = Callable[[grpc.aio.Channel, Metadata], Awaitable[object]]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def statusd(tmp_path: Path) -> AsyncIterator[Statusd]:
    settings = statusd_settings(
        tmp_path,
        ingest_tokens=INGEST,
        read_tokens=f"{READ},{BOTH}",
        admin_tokens=f"{ADMIN},{BOTH}",
        register_tokens=REGISTER,
    )
    async with running_statusd(settings) as daemon:
        yield daemon


@pytest.fixture
async def channel(statusd: Statusd) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{statusd.port}") as opened:
        await ingest(opened, report("known"), token="ingest-new-0123456789")
        yield opened


def ingest_stub(channel: grpc.aio.Channel) -> ingest_grpc.IngestServiceAsyncStub:
    return ingest_grpc.IngestServiceStub(channel)


async def ingest_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = ingest_pb.IngestReportsRequest(reports=[report("via-ingest")])
    return await ingest_stub(channel).IngestReports(request, metadata=metadata)


async def list_quarantine_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = ingest_pb.ListQuarantinedItemsRequest()
    return await ingest_stub(channel).ListQuarantinedItems(request, metadata=metadata)


async def delete_quarantine_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = ingest_pb.DeleteQuarantinedItemsRequest(ids=["1"])
    return await ingest_stub(channel).DeleteQuarantinedItems(request, metadata=metadata)


async def get_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.GetMessageStatusRequest(provider="infobip", message_id="known")
    return await status_stub(channel).GetMessageStatus(request, metadata=metadata)


async def batch_get_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.BatchGetMessageStatusesRequest(
        keys=[pb.MessageKey(provider="infobip", message_id="known")]
    )
    return await status_stub(channel).BatchGetMessageStatuses(request, metadata=metadata)


async def list_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.ListMessageStatusesRequest()
    return await status_stub(channel).ListMessageStatuses(request, metadata=metadata)


async def watch_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    call = status_stub(channel).WatchMessageStatuses(
        status_pb.WatchMessageStatusesRequest(), metadata=metadata
    )
    try:
        return await call.read()  # the first heartbeat, or the refusal
    finally:
        call.cancel()


async def stats_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.GetDeliveryStatsRequest()
    request.start_time.FromSeconds(0)
    request.end_time.FromSeconds(86_400)
    try:
        return await status_stub(channel).GetDeliveryStats(request, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # the handler was reached: let through
            return None
        raise


async def register_call(channel: grpc.aio.Channel, metadata: Metadata) -> object:
    request = status_pb.RegisterMessagesRequest(
        registrations=[pb.MessageRegistration(provider="infobip", message_id="registered")]
    )
    return await status_stub(channel).RegisterMessages(request, metadata=metadata)


async def code_of(call: Call, channel: grpc.aio.Channel, metadata: Metadata) -> grpc.StatusCode:
    try:
        await call(channel, metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return OK


#: Every method, by the role it needs.
CALLS: dict[str, list[Call]] = {
    "ingest": [ingest_call],
    "read": [get_call, batch_get_call, list_call, watch_call, stats_call],
    "register": [register_call],
    "admin": [list_quarantine_call, delete_quarantine_call],
}
CREDENTIALS: dict[str, Metadata] = {
    "none": (),
    "wrong": bearer("not-a-token-0123456789"),
    "not bearer": (("authorization", "Basic cmVhZGVyLTE="),),
    "empty bearer": (("authorization", "Bearer "),),
    "reader": bearer(READ),
    "gateway": bearer("ingest-old-0123456789"),
    "gateway, rotated": bearer("ingest-new-0123456789"),
    "admin": bearer(ADMIN),
    "reader and admin": bearer(BOTH),
    "sender": bearer(REGISTER),
}
NOBODY = dict.fromkeys(("ingest", "read", "register", "admin"), UNAUTHENTICATED)
#: What each credential gets from the methods of each role.
EXPECTED: dict[str, dict[str, grpc.StatusCode]] = {
    "none": NOBODY,
    "wrong": NOBODY,
    "not bearer": NOBODY,
    "empty bearer": NOBODY,
    "reader": {"ingest": DENIED, "read": OK, "register": DENIED, "admin": DENIED},
    "gateway": {"ingest": OK, "read": DENIED, "register": DENIED, "admin": DENIED},
    "gateway, rotated": {"ingest": OK, "read": DENIED, "register": DENIED, "admin": DENIED},
    # replay ingests what it re-parsed
    "admin": {"ingest": OK, "read": DENIED, "register": DENIED, "admin": OK},
    "reader and admin": {"ingest": OK, "read": OK, "register": DENIED, "admin": OK},
    "sender": {"ingest": DENIED, "read": DENIED, "register": OK, "admin": DENIED},
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
async def test_role_matrix(channel: grpc.aio.Channel, credential: str) -> None:
    metadata = CREDENTIALS[credential]
    for role, calls in CALLS.items():
        for call in calls:
            expected = EXPECTED[credential][role]
            assert await code_of(call, channel, metadata) == expected, call.__name__


def test_every_method_has_a_role_and_the_matrix_calls_every_method() -> None:
    """A method added to the proto without a role is refused to everyone: this test says so
    before a deployment does."""
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (ingest_pb, status_pb)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(METHOD_ROLES) == methods
    assert sum(len(calls) for calls in CALLS.values()) == len(methods)
    assert {method for method, roles in METHOD_ROLES.items() if "admin" in roles} == {
        f"/{INGEST_SERVICE}/{name}"
        for name in ("IngestReports", "ListQuarantinedItems", "DeleteQuarantinedItems")
    }


async def test_refusals_explain_themselves(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get_call(channel, ())
    assert "authorization: Bearer" in (missing.value.details() or "")
    assert "role read" in (missing.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await delete_quarantine_call(channel, bearer("ingest-old-0123456789"))
    details = other.value.details() or ""
    assert "DeleteQuarantinedItems" in details
    assert "role ingest" in details
    assert "role admin" in details
    assert "ingest-old" not in details


async def test_health_and_reflection_stay_open(channel: grpc.aio.Channel) -> None:
    for service in ("", INGEST_SERVICE, STATUS_SERVICE):
        assert await health(channel, service) == health_pb2.HealthCheckResponse.SERVING
    assert {INGEST_SERVICE, STATUS_SERVICE} <= await reflected_services(channel)


async def test_a_role_without_tokens_is_closed(tmp_path: Path) -> None:
    settings = statusd_settings(tmp_path, ingest_tokens="only-ingest-0123456789")
    async with (
        running_statusd(settings) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        assert daemon.auth.roles == ("ingest",)
        gateway = bearer("only-ingest-0123456789")
        assert await code_of(ingest_call, channel, ()) == UNAUTHENTICATED
        assert await code_of(ingest_call, channel, gateway) == OK
        for call in CALLS["read"] + CALLS["admin"]:
            assert await code_of(call, channel, ()) == UNAUTHENTICATED, call.__name__
            assert await code_of(call, channel, gateway) == DENIED, call.__name__


async def test_loopback_without_tokens_stays_open(tmp_path: Path) -> None:
    """What `make run` and the tests rely on: no tokens, loopback only, everything answers."""
    async with (
        running_statusd(statusd_settings(tmp_path)) as daemon,
        grpc.aio.insecure_channel(f"127.0.0.1:{daemon.port}") as channel,
    ):
        assert not daemon.auth.enabled
        await ingest(channel, report("known"))
        for calls in CALLS.values():
            for call in calls:
                assert await code_of(call, channel, ()) == OK, call.__name__


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),  # noqa: S104 (the address refused here)
        ("::", False),
        ("10.1.2.3", False),
        ("statusd.sms.svc", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, local: bool) -> None:
    assert loopback(host) is local


#: Settings of a statusd on every interface; only constructed, never started or bound.
EXPOSED: dict[str, Any] = {"statusd_host": "0.0.0.0"}  # noqa: S104
TOKENS: dict[str, Any] = {
    "ingest_tokens": "ingest-0123456789abcdef",
    "read_tokens": "read-0123456789abcdef",
    "admin_tokens": "admin-0123456789abcdef",
}
KEYS: dict[str, Any] = {"token_signing_keys": "a-deployment-signing-key-0123456789"}


def exposed(tmp_path: Path, **overrides: Any) -> Statusd:
    """A statusd for 0.0.0.0, constructed (the start-up checks run) but never started."""
    return Statusd(statusd_settings(tmp_path, **(EXPOSED | overrides)))


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({**KEYS}, "DLRHUB_INGEST_TOKENS"),
        ({**KEYS, "statusd_insecure": False}, "DLRHUB_STATUSD_INSECURE"),
        ({**TOKENS}, "DLRHUB_TOKEN_SIGNING_KEYS"),
        ({**TOKENS, "token_signing_keys": BUILTIN_KEY.decode()}, "DLRHUB_TOKEN_SIGNING_KEYS"),
        ({**TOKENS, "token_signing_keys": "short"}, "DLRHUB_TOKEN_SIGNING_KEYS"),
        ({**KEYS, **TOKENS, "read_tokens": "short"}, "DLRHUB_READ_TOKENS"),
    ],
)
async def test_beyond_loopback_statusd_refuses_to_start_open(
    tmp_path: Path, overrides: dict[str, Any], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        exposed(tmp_path, **overrides)
    assert not (tmp_path / "statusd.sqlite3").exists()  # refused before the store was touched


async def test_beyond_loopback_with_tokens_and_keys_starts_closed(tmp_path: Path) -> None:
    daemon = exposed(tmp_path, **TOKENS, **KEYS)
    assert daemon.auth.roles == ("ingest", "read", "admin")
    assert daemon.reader.codec.keys == (KEYS["token_signing_keys"].encode(),)


async def test_tokens_of_the_built_in_key_are_never_accepted_beyond_loopback(
    tmp_path: Path,
) -> None:
    forged = CursorCodec([BUILTIN_KEY]).encode("page", {"c": "1", "f": ""})
    for overrides in ({**TOKENS, **KEYS}, {"statusd_insecure": True}):
        codec = exposed(tmp_path, **overrides).reader.codec
        assert BUILTIN_KEY not in codec.keys
        with pytest.raises(InvalidArgument, match="page_token"):
            codec.decode("page", forged, "page_token")


async def test_insecure_on_purpose_starts_open_and_says_so_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="statusd")
    daemon = exposed(tmp_path, statusd_insecure=True)
    assert not daemon.auth.enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("INSECURE" in line and "without credentials" in line for line in warnings)
    assert any("INSECURE" in line and "random key" in line for line in warnings)
    other = exposed(tmp_path, statusd_insecure=True)
    assert other.reader.codec.keys != daemon.reader.codec.keys  # per process, never fixed


def test_the_process_exits_naming_the_variables(tmp_path: Path) -> None:
    """``dlrhub-statusd`` on 0.0.0.0 without tokens exits at once (it binds nothing)."""
    env = {
        "DLRHUB_STATUSD_HOST": "0.0.0.0",  # noqa: S104 (refused before binding)
        "DLRHUB_STATUSD_PORT": "0",
        "DLRHUB_STATUSD_METRICS_PORT": "0",
        "DLRHUB_SQLITE_PATH": str(tmp_path / "statusd.sqlite3"),
    }
    with environment(env):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "dlrhub-statusd")],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "bad configuration" in done.stderr
    assert "DLRHUB_INGEST_TOKENS" in done.stderr
    assert "DLRHUB_STATUSD_INSECURE=true" in done.stderr
