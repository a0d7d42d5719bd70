"""``dlrhub register``: registrations from flags, JSON Lines and CSV files (flags filling
what rows leave out), durations, and the usage errors that name the bad row. Registering
against running processes is tests/e2e/test_registrations.py."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dlrhub_cli import register
from dlrhub_cli.connect import UsageError
from dlrhub_cli.main import _parser, main


def parsed(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["register", *argv])


def test_from_flags() -> None:
    made = register.registrations(
        parsed(
            "--provider",
            "infobip",
            "--client-ref",
            "order-7",
            "--recipient",
            "+447700900123",
            "--submit-time",
            "2026-01-01T12:00:00Z",
            "--report-timeout",
            "24h",
            "m-1",
            "m-2",
        )
    )
    assert [(r.provider, r.message_id, r.client_ref) for r in made] == [
        ("infobip", "m-1", "order-7"),
        ("infobip", "m-2", "order-7"),
    ]
    assert made[0].submit_time.ToDatetime(UTC) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert made[0].report_timeout.ToTimedelta() == timedelta(hours=24)
    bare = register.registrations(parsed("--provider", "plivo", "m-3"))[0]
    assert not bare.HasField("submit_time")
    assert not bare.HasField("report_timeout")


def test_from_a_json_lines_file(tmp_path: Path) -> None:
    sent = tmp_path / "sent.jsonl"
    sent.write_text(
        '{"message_id": "a", "client_ref": "r-a", "report_timeout": "90s"}\n'
        "\n"
        '{"provider": "twilio", "message_id": "b", "submit_time": "2026-01-01T00:00:00+01:00"}\n'
    )
    made = register.registrations(parsed("--file", str(sent), "--provider", "infobip"))
    assert [(r.provider, r.message_id, r.client_ref) for r in made] == [
        ("infobip", "a", "r-a"),
        ("twilio", "b", ""),
    ]
    assert made[0].report_timeout.seconds == 90
    assert made[1].submit_time.ToDatetime(UTC) == datetime(2025, 12, 31, 23, tzinfo=UTC)


def test_from_a_csv_file(tmp_path: Path) -> None:
    sent = tmp_path / "sent.csv"
    sent.write_text(
        "provider,message_id,recipient,report_timeout\nsinch,x-1,+14155552671,2d\nsinch,x-2,,\n"
    )
    made = register.registrations(parsed("--file", str(sent), "--recipient", "+41790000000"))
    assert [(r.message_id, r.recipient) for r in made] == [
        ("x-1", "+14155552671"),
        ("x-2", "+41790000000"),
    ]
    assert made[0].report_timeout.ToTimedelta() == timedelta(days=2)
    assert not made[1].HasField("report_timeout")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"message_id": "a"}\nnot json\n', "line 2: not JSON"),
        ('{"message_id": "a", "colour": "red"}\n', "line 1: an object with keys"),
        ('{"message_id": "a", "report_timeout": "soon"}\n', "line 1: not a duration"),
        ('{"message_id": "a", "submit_time": "2026-01-01T00:00:00"}\n', "give a time zone"),
        ('{"client_ref": "r"}\n', "line 1: needs a provider (--provider) and a message_id"),
        ("message_id,colour\na,red\n", "unknown columns ['colour']"),
    ],
)
def test_a_bad_row_is_named(tmp_path: Path, content: str, problem: str) -> None:
    sent = tmp_path / "sent.txt"
    sent.write_text(content)
    with pytest.raises(UsageError) as caught:
        register.registrations(parsed("--file", str(sent), "--provider", "infobip"))
    assert problem in str(caught.value)


def test_durations() -> None:
    assert register.duration("90") == timedelta(seconds=90)
    assert register.duration("1.5h") == timedelta(minutes=90)
    assert register.duration(" 3d ") == timedelta(days=3)
    for bad in ("0", "-5m", "5w", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            register.duration(bad)


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register", "--provider", "infobip"]) == 2
    assert "nothing to register" in capsys.readouterr().err
    assert main(["register", "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "--file: cannot read" in capsys.readouterr().err
