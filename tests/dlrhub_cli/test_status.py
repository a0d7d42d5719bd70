"""``dlrhub status get|list|watch`` against real statusd and gateway processes, with bearer
tokens and TLS on: the CLI reads through its --token-file and --ca-file flags."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.certs import CertificateAuthority
from tests.helpers.processes import BIN, Stack

pytestmark = pytest.mark.e2e


class Cli:
    """Runs ``dlrhub`` against the stack, with the reader's credentials."""

    def __init__(self, stack: Stack, directory: Path, ca_file: Path) -> None:
        self.stack = stack
        token_file = directory / "reader.token"
        token_file.write_text("reader-secret\n")
        self.connection = [
            "--target",
            stack.target,
            "--token-file",
            str(token_file),
            "--ca-file",
            str(ca_file),
        ]
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")
        }
        self.env["DLRHUB_INFOBIP_BASIC_AUTH"] = stack.env["DLRHUB_INFOBIP_BASIC_AUTH"]
        self.env["DLRHUB_PLIVO_AUTH_TOKEN"] = stack.env["DLRHUB_PLIVO_AUTH_TOKEN"]
        self.env["DLRHUB_SINCH_WEBHOOK_SECRET"] = stack.env["DLRHUB_SINCH_WEBHOOK_SECRET"]
        self.directory = directory

    def command(self, *args: str, connect: bool = True) -> list[str]:
        return [str(BIN / "dlrhub"), *args, *(self.connection if connect else [])]

    def __call__(self, *args: str, connect: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args, connect=connect),
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def send(self, provider: str, message_id: str, status: str = "delivered") -> None:
        url = f"{self.stack.url}/webhooks/{provider}"
        sent = self(
            "send-sample",
            provider,
            "--url",
            url,
            "--message-id",
            message_id,
            "--status",
            status,
            connect=False,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "HTTP 200" in sent.stdout


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    directory = tmp_path_factory.mktemp("cli")
    ca = CertificateAuthority(directory)
    server = ca.issue("statusd", server=True)
    stack = Stack(
        directory,
        {
            "DLRHUB_INFOBIP_BASIC_AUTH": "acme:s3cret",
            "DLRHUB_PLIVO_AUTH_TOKEN": "plivo-token",
            "DLRHUB_SINCH_WEBHOOK_SECRET": "sinch-secret",
            "DLRHUB_INGEST_TOKENS": "gateway-secret",
            "DLRHUB_READ_TOKENS": "reader-secret",
            "DLRHUB_GATEWAY_INGEST_TOKEN": "gateway-secret",
            "DLRHUB_TLS_CERT_FILE": str(server.cert_file),
            "DLRHUB_TLS_KEY_FILE": str(server.key_file),
            "DLRHUB_STATUSD_TLS_CA_FILE": str(ca.file),
            "DLRHUB_LOG_FORMAT": "text",
        },
    ).start()
    try:
        made = Cli(stack, directory, ca.file)
        made.send("infobip", "cli-1")
        made.send("infobip", "cli-2", "sent")
        made.send("plivo", "cli-3")
        yield made
    finally:
        stack.stop()


def test_get(cli: Cli) -> None:
    shown = cli("status", "get", "infobip", "cli-1", "--full")
    assert shown.returncode == 0, shown.stderr
    assert "infobip cli-1: DELIVERED" in shown.stdout
    assert "DELIVERED_TO_HANDSET" in shown.stdout
    as_json = json.loads(cli("status", "get", "plivo", "cli-3", "--json").stdout)
    assert as_json["status"] == "DELIVERY_STATUS_DELIVERED"
    missing = cli("status", "get", "infobip", "nope")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr


def test_credentials_are_required(cli: Cli) -> None:
    anonymous = subprocess.run(
        [
            str(BIN / "dlrhub"),
            "status",
            "get",
            "infobip",
            "cli-1",
            "--target",
            cli.stack.target,
            "--ca-file",
            cli.connection[-1],
        ],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert anonymous.returncode == 1
    assert "UNAUTHENTICATED" in anonymous.stderr
    both = cli("status", "list", "--token", "x")
    assert both.returncode == 2
    assert "--token or --token-file" in both.stderr


def test_list_table_and_json(cli: Cli) -> None:
    table = cli("status", "list", "--page-size", "1")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "ACCOUNT", "MESSAGE"]
    assert [line.split()[2] for line in lines[1:4]] == ["cli-1", "cli-2", "cli-3"]
    assert lines[2].split()[3] == "SENT"
    as_json = cli("status", "list", "--json", "--status", "delivered")
    found = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [item["messageId"] for item in found][:2] == ["cli-1", "cli-3"]
    filtered = cli("status", "list", "--json", "--provider", "infobip", "--status", "SENT")
    assert [json.loads(line)["messageId"] for line in filtered.stdout.splitlines()] == ["cli-2"]
    limited = cli("status", "list", "--json", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 2


def test_an_empty_list_says_so(cli: Cli) -> None:
    """The notice goes to stderr; stdout holds the rows, here none (zero JSON lines)."""
    for extra in ([], ["--json"]):
        since = cli("status", "list", "--updated-since", "2999-01-01T00:00:00Z", *extra)
        assert (since.returncode, since.stdout) == (0, "")
        assert since.stderr.strip() == "no messages match"


def test_sinch_messages_by_batch_id_and_recipient(cli: Cli) -> None:
    """The id is formed by the gateway's own rule, so any spelling of the number finds it."""
    cli.send("sinch", "01FC66621VHDBN119Z8PMV1QPQ:447700900123")
    for spelling in ("+447700900123", "447700900123", "+44 7700 900123"):
        shown = cli(
            "status",
            "get",
            "sinch",
            "--batch-id",
            "01FC66621VHDBN119Z8PMV1QPQ",
            "--recipient",
            spelling,
        )
        assert shown.returncode == 0, shown.stderr
        assert "sinch 01FC66621VHDBN119Z8PMV1QPQ:+447700900123: DELIVERED" in shown.stdout
    for wrong in (
        ["sinch", "m-1", "--batch-id", "B"],
        ["sinch", "--batch-id", "B"],
        ["infobip", "--batch-id", "B", "--recipient", "+447700900123"],
        ["sinch"],
    ):
        refused = cli("status", "get", *wrong)
        assert refused.returncode == 2
        assert "--batch-id" in refused.stderr


@pytest.mark.parametrize("extra", [["--json"], []])
def test_a_closed_pipe_ends_a_listing_quietly(cli: Cli, extra: list[str]) -> None:
    """``dlrhub status list | head -1``, with the reader gone before the first row."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            cli.command("status", "list", *extra),
            cwd=cli.directory,
            env=cli.env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_head_reads_the_first_line_of_a_listing(cli: Cli) -> None:
    listing = subprocess.Popen(
        cli.command("status", "list", "--json"),
        cwd=cli.directory,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None
    head = subprocess.run(
        ["head", "-1"],
        stdin=listing.stdout,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listing.stdout.close()
    _, errors = listing.communicate(timeout=30)
    assert json.loads(head.stdout)["messageId"] == "cli-1"
    assert listing.returncode in (0, 141)
    assert errors == b""


def test_watch_while_reports_are_sent(cli: Cli) -> None:
    watchers = {
        "json": subprocess.Popen(
            cli.command("status", "watch", "--json", "--count", "3"),
            cwd=cli.directory,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        "lines": subprocess.Popen(
            cli.command("status", "watch", "--provider", "infobip", "--count", "2"),
            cwd=cli.directory,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    }
    try:
        for process in watchers.values():
            assert process.stderr is not None
            assert "watching" in process.stderr.readline()  # the stream is established
        cli.send("infobip", "live-1", "sent")
        cli.send("plivo", "live-2")
        cli.send("infobip", "live-1")
        outputs = {name: process.communicate(timeout=30) for name, process in watchers.items()}
    finally:
        for process in watchers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    changes = [json.loads(line) for line in outputs["json"][0].splitlines()]
    assert [(item["report"]["messageId"], item["report"]["status"]) for item in changes] == [
        ("live-1", "DELIVERY_STATUS_SENT"),
        ("live-2", "DELIVERY_STATUS_DELIVERED"),
        ("live-1", "DELIVERY_STATUS_DELIVERED"),
    ]
    assert all(item["resumeToken"] for item in changes)
    lines = outputs["lines"][0].splitlines()
    assert len(lines) == 2
    assert "infobip live-1  SENT" in lines[0]
    assert lines[1].endswith("now DELIVERED")
    assert "resume with: --resume-token" in outputs["lines"][1]
    assert outputs["lines"][1].rstrip().endswith(f" --target {cli.stack.target}")
