"""``dlrhub send-sample``: a sample signed with the configured credentials is accepted by a
real gateway; a wrong secret is answered 401; unknown providers, accounts and missing
credentials are clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dlrhub_cli.sample import SampleError, main, send_sample, status_command
from dlrhub_common.net import free_port
from tests.helpers.processes import CREDENTIALS, INFOBIP_BASIC_AUTH
from tests.helpers.servers import BackgroundStack


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with BackgroundStack(tmp_path_factory.mktemp("sample"), CREDENTIALS) as stack:
        yield stack.url


def test_a_signed_sample_is_stored(gateway_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
    code, body, message_id = send_sample(
        "infobip", gateway_url + "/webhooks/infobip", message_id="sample-1"
    )
    assert (code, message_id) == (200, "sample-1")
    assert '"stored":1' in body.replace(" ", "")
    code, _, generated = send_sample("infobip", gateway_url + "/webhooks/infobip")
    assert code == 200
    assert generated.startswith("sample-")


def test_a_wrong_secret_is_refused(gateway_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", "acme:guess")
    code, _, _ = send_sample("infobip", gateway_url + "/webhooks/infobip")
    assert code == 401


def test_errors_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhooks/infobip"
    with pytest.raises(SampleError, match=r"unknown provider 'nosuch'; known: .*infobip"):
        send_sample("nosuch", url)
    with pytest.raises(SampleError, match="no credentials configured for infobip"):
        send_sample("infobip", url)
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
    with pytest.raises(SampleError, match="no account 'eu' configured for infobip"):
        send_sample("infobip", url, account="eu")
    with pytest.raises(SampleError, match="cannot reach"):
        send_sample("infobip", url)


def test_main_prints_the_answer(
    gateway_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", INFOBIP_BASIC_AUTH)
    url = gateway_url + "/webhooks/infobip"
    assert main("infobip", url, account="", message_id="sample-2", status="sent") == 0
    out = capsys.readouterr().out
    assert f"sent infobip report for message sample-2 (sent) to {url}" in out
    assert "HTTP 200" in out
    assert "read its status: dlrhub status get infobip sample-2" in out
    monkeypatch.setenv("DLRHUB_INFOBIP_BASIC_AUTH", "acme:guess")
    assert main("infobip", url, account="", message_id="", status="sent") == 1
    assert main("nosuch", url, account="", message_id="", status="sent") == 2
    assert "dlrhub send-sample: unknown provider" in capsys.readouterr().err


def test_the_status_hint_names_statusd_when_it_is_not_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DLRHUB_STATUSD_HOST", "DLRHUB_STATUSD_PORT", "DLRHUB_STATUSD_TARGET"):
        monkeypatch.delenv(name, raising=False)
    assert status_command("plivo", "m-1") == "dlrhub status get plivo m-1"
    assert status_command("plivo", "m 1", "eu") == "dlrhub status get plivo 'm 1' --account eu"
    monkeypatch.setenv("DLRHUB_STATUSD_PORT", "50999")
    assert status_command("plivo", "m-1") == (
        "dlrhub status get plivo m-1 --target 127.0.0.1:50999"
    )
    monkeypatch.setenv("DLRHUB_STATUSD_TARGET", "dns:///statusd-headless:50051")
    assert status_command("plivo", "m-1").endswith("--target dns:///statusd-headless:50051")
