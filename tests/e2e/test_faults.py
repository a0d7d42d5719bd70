"""Nothing lost under faults. A simulated provider sends thousands of signed reports and
retries like a real one while statusd is SIGKILLed and restarted, then the gateway is, then
the SQLite file is locked by another process, then statusd gets SIGTERM under load.
Afterwards every acknowledged report is stored, every report is eventually stored, the
history has no duplicates and the counts are exact. Loopback only; bounded in time."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from statusd.storage.base import MessageFilter
from statusd.storage.sqlite import SqliteStore
from tests.helpers.processes import (
    CREDENTIALS,
    INFOBIP_BASIC_AUTH,
    PLIVO_AUTH_TOKEN,
    PUBLIC_URL,
    Stack,
    lock_database,
)
from tests.helpers.simulator import Delivery, Simulator, infobip_deliveries, plivo_deliveries

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {
        **CREDENTIALS,
        "DLRHUB_SQLITE_BUSY_TIMEOUT_MS": "300",
        "DLRHUB_INGEST_DEADLINE_SECONDS": "2",
        "DLRHUB_LOG_LEVEL": "warning",
    }


def fault_steps(stack: Stack, database: Path) -> list[tuple[float, str, Callable[[], object]]]:
    """The faults in order: pause (seconds) before the step, what the log says (``{}`` is the
    step's result), the blocking step itself."""
    lockers: list[subprocess.Popen[str]] = []
    return [
        (1.0, "statusd SIGKILL", stack.statusd.kill),
        (1.0, "statusd restarted", stack.start_statusd),
        (1.5, "gateway SIGKILL", stack.gateway.kill),
        (1.0, "gateway restarted", stack.start_gateway),
        (1.5, "store locked", lambda: lockers.append(lock_database(database, 2.5))),
        (0.0, "store unlocked", lambda: lockers.pop().communicate()),
        (1.0, "statusd SIGTERM exit {}", lambda: stack.statusd.stop(signal.SIGTERM)),
        (0.0, "statusd restarted", stack.start_statusd),
    ]


async def chaos(stack: Stack, database: Path, log: list[str]) -> None:
    loop = asyncio.get_running_loop()
    for pause, label, step in fault_steps(stack, database):
        await asyncio.sleep(pause)
        result = await loop.run_in_executor(None, step)
        log.append(label.format(result))


async def stored_state(database: Path) -> dict[tuple[str, str], tuple[int, int, list[str]]]:
    """(provider, message id) → (report count, distinct event ids, provider statuses)."""
    store = SqliteStore(database)
    await store.open()
    try:
        state = {}
        cursor = None
        while True:
            page = await store.list_messages(MessageFilter(), after=cursor, limit=500, full=True)
            for status in page.items:
                events = {report.event_id for report in status.history}
                state[(status.provider, status.message_id)] = (
                    status.report_count,
                    len(events),
                    [report.provider_status for report in status.history],
                )
            cursor = page.cursor
            if cursor is None:
                return state
    finally:
        await store.close()


def expected_reports(deliveries: list[Delivery]) -> Counter[tuple[str, str]]:
    return Counter(
        (provider, message) for delivery in deliveries for provider, message, _ in delivery.reports
    )


def test_nothing_is_lost_under_faults(stack: Stack, tmp_path: Path) -> None:
    database = tmp_path / "dlrhub.sqlite3"
    deliveries = infobip_deliveries(700, INFOBIP_BASIC_AUTH, random.Random(11)) + plivo_deliveries(
        250, PLIVO_AUTH_TOKEN, PUBLIC_URL
    )
    random.Random(3).shuffle(deliveries)
    simulator = Simulator(stack.url, deliveries, concurrency=8, pause=0.03, deadline=120)
    events: list[str] = []

    async def scenario() -> None:
        await asyncio.gather(simulator.run(), chaos(stack, database, events))

    started = time.monotonic()
    asyncio.run(scenario())
    elapsed = time.monotonic() - started
    stack.stop()

    reports_sent = sum(len(delivery.reports) for delivery in deliveries)
    answers = Counter(code for delivery in deliveries for code in delivery.answers)
    state = asyncio.run(stored_state(database))
    stored = sum(distinct_events for _, distinct_events, _ in state.values())
    lost = sum(  # reports whose status is missing from their message's history
        status not in state.get((provider, message), (0, 0, []))[2]
        for delivery in deliveries
        for provider, message, status in delivery.reports
    )
    print(  # the figures of the run, shown with -s
        f"\nfaults: {len(deliveries)} requests ({sum(d.acked for d in deliveries)} acked), "
        f"{reports_sent} reports, {stored} stored, {lost} lost, "
        f"{sum(d.attempts for d in deliveries)} attempts, {simulator.resent} provider resends, "
        f"answers {dict(sorted(answers.items()))}, {elapsed:.1f} s; {events}"
    )
    assert all(delivery.acked for delivery in deliveries), "every report is eventually acknowledged"
    assert answers[500] == 0
    # Every request is genuine: no 4xx, not even for a resend whose 200 was lost on the way.
    assert not [code for code in answers if 400 <= code < 500], answers
    assert sum(count for code, count in answers.items() if code >= 503) > 0, "the faults were felt"
    assert lost == 0

    expected = expected_reports(deliveries)
    assert set(state) == set(expected)
    for key, count in expected.items():
        report_count, distinct_events, _ = state[key]
        assert report_count == count, key  # exact: every distinct report counted once
        assert distinct_events == count, key  # the history has no duplicates
    newly_stored = sum(
        delivery.counts.get("stored", 0) + delivery.counts.get("stale", 0)
        for delivery in deliveries
    )
    assert newly_stored <= reports_sent  # a lost answer shows up later as a duplicate, never twice
    assert events[-1] == "statusd restarted"
    assert "statusd SIGTERM exit 0" in events
