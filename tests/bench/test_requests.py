"""The benchmark's pre-signed requests: the wrk file format, unique message ids, and
signatures a real gateway accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from bench.requests import ENV, Request, infobip, plivo, write
from gateway.providers.fields import e164
from tests.helpers.servers import BackgroundStack

PUBLIC_URL = "https://bench.example.com"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**ENV, "DLRHUB_PUBLIC_URL": PUBLIC_URL}
    with BackgroundStack(tmp_path_factory.mktemp("bench"), env) as stack:
        yield stack.url


def test_line_is_tab_separated() -> None:
    request = Request("r-1", "POST", "/webhooks/x", {"A": "1", "B": "2"}, "{}", (("x", "m"),))
    assert request.line() == "r-1\tPOST\t/webhooks/x\tA=1;B=2\t{}"


def test_infobip_batches_carry_unique_ids() -> None:
    requests = list(infobip("scn", 3, 4))
    assert [request.request_id for request in requests] == ["scn-0", "scn-1", "scn-2"]
    ids = [pair for request in requests for pair in request.message_ids]
    assert len(ids) == len(set(ids)) == 12
    results = json.loads(requests[1].body)["results"]
    assert [item["messageId"] for item in results] == [m for _, m in requests[1].message_ids]


def test_each_request_has_its_own_possible_recipient() -> None:
    found = [json.loads(each.body)["results"][0]["to"] for each in infobip("scn", 500, 1)]
    found += [dict(parse_qsl(each.body))["To"] for each in plivo("scn", 500, PUBLIC_URL)]
    assert len(set(found)) == len(found) == 1000
    assert all(e164(number) == "+" + number for number in found)


def test_write_indexes_the_requests(tmp_path: Path) -> None:
    path = tmp_path / "scn.requests"
    index = write(plivo("scn", 2, PUBLIC_URL), path)
    assert index == {"scn-0": (("plivo", "scn-0"),), "scn-1": (("plivo", "scn-1"),)}
    lines = path.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["scn-0", "scn-1"]
    assert all(len(line.split("\t")) == 5 for line in lines)


@pytest.mark.parametrize("make", [lambda: infobip("ok", 2, 3), lambda: plivo("ok", 2, PUBLIC_URL)])
def test_a_gateway_accepts_them(gateway_url: str, make: object) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10) as http:
        for request in make():  # type: ignore[operator]
            response = http.request(
                request.method, request.path, content=request.body, headers=request.headers
            )
            assert response.status_code == 200, response.text
            assert response.json()["stored"] == len(request.message_ids)
