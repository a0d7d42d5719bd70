"""The rejection log (gateway/audit.py): over real HTTP to a running gateway, one line per
refused (401, 400, 404, 413, 429, 503) or quarantined webhook with its provider, account,
reason, client and request id, never a credential, a body or a full phone number; and under a
flood, at most the configured lines with a summary of the rest."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dlrhub_common.logs import JsonFormatter
from gateway.audit import RejectionLog, Source, reason_label
from gateway.auth import basic
from gateway.errors import Malformed, RateLimited, Unauthenticated
from gateway.providers import Parsed
from tests.gateway.conftest import ENV, PUBLIC_URL, Stack, StackFactory
from tests.gateway.test_intake import infobip_body, post_infobip
from tests.helpers.servers import running_gateway, running_statusd, statusd_settings

LOGGER = "gateway.audit"
PHONE = "41793026727"
WRONG = {"Authorization": basic.authorization("infobip:guess-secret")}
FIELDS = ("provider", "account", "reason_label", "reason", "client", "request_id", "status")


class Lines(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """The rejection log's records while the test runs."""
    logger = logging.getLogger(LOGGER)
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


def only(lines: list[logging.LogRecord], response: httpx.Response) -> logging.LogRecord:
    """The one line about ``response``, checked to carry every field and nothing secret."""
    request_id = response.headers["X-Request-Id"]
    (record,) = [line for line in lines if getattr(line, "request_id", "") == request_id]
    assert record.name == LOGGER
    for name in FIELDS:
        assert hasattr(record, name), name
    assert record.status == response.status_code  # type: ignore[attr-defined]
    assert record.client == "127.0.0.1"  # type: ignore[attr-defined]
    text = JsonFormatter().format(record)
    for secret in ("guess-secret", WRONG["Authorization"].split()[1], PHONE, "doneAt", "xxxx"):
        assert secret not in text, secret
    return record


def field(record: logging.LogRecord, name: str) -> object:
    return getattr(record, name)


async def test_each_refusal_writes_one_line(
    make_stack: StackFactory, lines: list[logging.LogRecord]
) -> None:
    settings = {"auth_failure_limit_per_minute": 2, "max_body_bytes": 1024}
    async with make_stack(**settings) as stack:
        forged = await post_infobip(stack, infobip_body("m-1"), headers=WRONG)
        record = only(lines, forged)
        assert record.levelno == logging.INFO
        assert (field(record, "provider"), field(record, "account")) == ("infobip", "")
        assert field(record, "reason_label") == "unauthorized/invalid"
        assert "credentials do not match" in str(field(record, "reason"))

        malformed = await post_infobip(stack, b'{"results": [' + PHONE.encode())
        assert field(only(lines, malformed), "reason_label") == "bad_request"

        large = await post_infobip(stack, infobip_body(*(f"m-{i}" for i in range(20))))
        assert (large.status_code, field(only(lines, large), "reason_label")) == (413, "too_large")

        await post_infobip(stack, infobip_body("m-1"), headers=WRONG)
        limited = await post_infobip(stack, infobip_body("m-1"), headers=WRONG)
        record = only(lines, limited)
        assert (limited.status_code, field(record, "reason_label")) == (429, "rate_limited/invalid")

        unknown = await stack.http.post(f"/webhooks/plivo/{PHONE}", content=b"x")
        record = only(lines, unknown)
        assert (field(record, "status"), field(record, "provider")) == (404, "plivo")
        assert field(record, "account") == "4179****727"
        assert "4179****727" in str(field(record, "reason"))
        assert await stack.stored_messages() == 0


async def test_a_request_refused_before_its_handler_writes_a_line(
    stack: Stack, lines: list[logging.LogRecord]
) -> None:
    response = await post_infobip(stack, infobip_body("m-1"), {**WRONG, "X-Big": "x" * 20_000})
    assert response.status_code == 413
    record = only(lines, response)
    # Sanic refuses it before reading its path: the provider is not known yet
    assert (field(record, "provider"), field(record, "reason_label")) == ("unknown", "too_large")


async def test_a_quarantined_webhook_writes_a_warning(
    stack: Stack, lines: list[logging.LogRecord]
) -> None:
    item = {"messageId": "q-1", "to": PHONE, "status": "not an object"}
    response = await post_infobip(stack, json.dumps({"results": [item]}).encode())
    assert (response.status_code, response.json()["quarantined"]) == (200, 1)
    record = only(lines, response)
    assert record.levelno == logging.WARNING
    assert field(record, "reason_label") == "quarantined"
    assert "1 item(s) quarantined: status is missing or not an object" in str(
        field(record, "reason")
    )


async def test_a_stored_report_that_lost_fields_writes_a_line_per_field_class(
    stack: Stack, lines: list[logging.LogRecord]
) -> None:
    item = {
        "messageId": "d-1",
        "to": PHONE,
        "mccMnc": "2281",
        "messageCount": "one",
        "sentAt": "xxxx",
        "doneAt": "xxxx",
        "status": {"groupName": "DELIVERED"},
    }
    response = await post_infobip(stack, json.dumps({"results": [item]}).encode())
    assert (response.status_code, response.json()["stored"]) == (200, 1)
    request_id = response.headers["X-Request-Id"]
    mine = [line for line in lines if getattr(line, "request_id", "") == request_id]
    assert [field(line, "reason_label") for line in mine] == [
        "dropped/event_time",
        "dropped/mcc_mnc",
        "dropped/segments",
        "dropped/sent_time",
    ]
    assert all(line.levelno == logging.INFO and field(line, "status") == 200 for line in mine)
    assert field(mine[1], "reason") == (
        "1 report field(s) left out, kept raw: mccMnc is not 5 or 6 digits"
    )
    assert mine[0].getMessage() == "report fields left out"


async def test_statusd_unavailable_writes_a_warning(
    tmp_path: Path, lines: list[logging.LogRecord]
) -> None:
    async with running_statusd(statusd_settings(tmp_path)) as gone:
        port = gone.port
    async with (
        running_gateway(
            ENV, f"127.0.0.1:{port}", public_url=PUBLIC_URL, ingest_deadline_seconds=1
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as http,
    ):
        headers = {"Content-Type": "application/json", "X-Request-Id": "req-503"}
        response = await http.post(
            "/webhooks/infobip",
            content=infobip_body("m-1"),
            headers={**headers, "Authorization": basic.authorization("infobip:pw")},
        )
    assert response.status_code == 503
    record = only(lines, response)
    assert record.levelno == logging.WARNING
    assert (field(record, "request_id"), field(record, "reason_label")) == (
        "req-503",
        "unavailable",
    )


def of_forgeries(lines: list[logging.LogRecord]) -> tuple[int, list[int]]:
    """Lines written about the forgeries, and the counts their summaries report."""
    label = "unauthorized/invalid"
    refused = [line for line in lines if getattr(line, "reason_label", "") == label]
    written = sum(line.getMessage() == "webhook refused" for line in refused)
    summaries = [line for line in refused if line.getMessage().startswith("suppressed")]
    return written, [int(str(field(line, "suppressed"))) for line in summaries]


async def test_a_flood_is_capped_and_summarized(
    make_stack: StackFactory, lines: list[logging.LogRecord]
) -> None:
    settings = {
        "auth_failure_limit_per_minute": 0,
        "rejection_log_per_minute": 6,
        "rejection_log_summary_seconds": 0.2,
    }
    async with make_stack(**settings) as stack:
        for _ in range(60):
            assert (await post_infobip(stack, b"{}", headers=WRONG)).status_code == 401
        for _ in range(50):  # the last summary comes without further traffic
            if sum(of_forgeries(lines)[1]) == 54:
                break
            await asyncio.sleep(0.05)
        written, suppressed = of_forgeries(lines)
        assert (written, sum(suppressed)) == (6, 54)
        # another reason has its own budget
        malformed = await post_infobip(stack, b"[")
        assert field(only(lines, malformed), "reason_label") == "bad_request"
    summaries = [line for line in lines if line.getMessage().startswith("suppressed")]
    assert all(line.levelno == logging.WARNING for line in summaries)
    assert sum(of_forgeries(lines)[1]) == 54  # nothing counted twice at shutdown


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_refills_and_the_summary_empties(lines: list[logging.LogRecord]) -> None:
    clock = Clock()
    rejections = RejectionLog(per_minute=2, summary_seconds=60, clock=clock)
    source = Source("twilio", "eu", "203.0.113.9", "r-1")
    for _ in range(5):
        rejections.refused(Unauthenticated("twilio: no signature", label="missing"), source)
    assert len(lines) == 2
    rejections.summarize()
    assert lines[-1].getMessage() == "suppressed 3 similar lines"
    rejections.summarize()
    assert len(lines) == 3  # nothing new to report
    clock.now = 30.0  # one line's worth of budget
    rejections.refused(Unauthenticated("twilio: no signature", label="missing"), source)
    assert len(lines) == 4


def test_dropped_field_lines_are_limited_per_provider_and_field(
    lines: list[logging.LogRecord],
) -> None:
    rejections = RejectionLog(per_minute=1, summary_seconds=60, clock=Clock())
    source = Source("plivo", "", "203.0.113.9", "r-2")
    parsed = Parsed(dropped=[("sequence", "Sequence is not a whole number")] * 2)
    for _ in range(3):
        rejections.dropped(parsed, source)
    rejections.dropped(Parsed(dropped=[("price", "TotalAmount is not a number")]), source)
    assert [field(line, "reason_label") for line in lines] == ["dropped/sequence", "dropped/price"]
    assert field(lines[0], "reason") == (
        "2 report field(s) left out, kept raw: Sequence is not a whole number"
    )
    rejections.summarize()
    assert lines[-1].getMessage() == "suppressed 2 similar lines"


def test_reason_labels() -> None:
    failed = Unauthenticated("bad", label="stale")
    limited = RateLimited("too many", retry_after=1)
    limited.__cause__ = failed
    assert reason_label(failed) == "unauthorized/stale"
    assert reason_label(limited) == "rate_limited/stale"
    assert reason_label(RateLimited("too many", retry_after=1)) == "rate_limited"
    assert reason_label(Malformed("x")) == "bad_request"
