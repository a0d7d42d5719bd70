"""SIGTERM under load: requests in flight complete with their real answer, and the process
exits within its grace period. Commits are held back by a lock on the store, so the
requests are provably in flight when the signal arrives.

Stopping the gateway: every webhook it holds is answered 200 once statusd commits. Stopping
statusd: the IngestReports call it is already serving commits and answers 200; webhooks the
gateway had gathered for its next call find statusd refusing new calls and are answered 503
(the provider retries them). No answer is lost, and no 200 without the report stored.

Covers gateway/__main__.py: the gateway runs here as its own process, signals and all."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.processes import CREDENTIALS, INFOBIP_BASIC_AUTH, Stack, lock_database
from tests.helpers.requests import basic_json_headers

pytestmark = pytest.mark.e2e

GRACE = 8
HEADERS = basic_json_headers(INFOBIP_BASIC_AUTH)


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {
        **CREDENTIALS,
        "DLRHUB_SQLITE_BUSY_TIMEOUT_MS": "6000",
        "DLRHUB_INGEST_DEADLINE_SECONDS": "10",
        "DLRHUB_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }


def body(index: int) -> bytes:
    item = {
        "messageId": f"term-{index}",
        "status": {"groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
    }
    return json.dumps({"results": [item]}).encode()


def stored_message_ids(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return {row[0] for row in connection.execute("SELECT message_id FROM messages")}


@pytest.mark.parametrize("process", ["gateway", "statusd"])
def test_sigterm_lets_requests_in_flight_finish(stack: Stack, tmp_path: Path, process: str) -> None:
    locker = lock_database(tmp_path / "dlrhub.sqlite3", 1.5)
    pool = ThreadPoolExecutor(12)
    client = httpx.Client(base_url=stack.url, timeout=30)
    futures = [
        pool.submit(client.post, "/webhooks/infobip", content=body(i), headers=HEADERS)
        for i in range(12)
    ]
    time.sleep(0.5)  # the requests are now waiting on the locked store
    service = stack.gateway if process == "gateway" else stack.statusd
    started = time.monotonic()
    exited: list[int] = []
    stopper = threading.Thread(target=lambda: exited.append(service.stop(signal.SIGTERM)))
    stopper.start()
    answers = [future.result(timeout=30).status_code for future in futures]
    stopper.join(timeout=GRACE + 5)
    locker.communicate()
    pool.shutdown()
    client.close()
    assert exited == [0]
    if process == "gateway":
        assert answers == [200] * 12
    else:
        assert set(answers) <= {200, 503}
        assert answers.count(200) >= 1  # the call statusd was serving when the signal came
        stack.start_statusd()
        stored = stored_message_ids(tmp_path / "dlrhub.sqlite3")
        acked = {f"term-{index}" for index, code in enumerate(answers) if code == 200}
        assert acked <= stored
    assert time.monotonic() - started < GRACE + 2
